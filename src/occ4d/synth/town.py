"""The procedural town: a road graph on an irregular grid, its lanes, walkways and the connectors
through every node, and the traffic signals of the intersections.

Roads run along the rows and columns of a grid with random spacing; dropping random edges gives
T intersections (3 roads), corners become curves (2 perpendicular roads, drawn as an arc) and
the rest are 4-way crossings. Traffic keeps right. Every road has 1 or 2 lanes per direction
(2-lane roads may have a raised median), 1-lane roads may have parking strips, and both sides
have a sidewalk. Pedestrians walk on the right-hand half of each sidewalk and cross at
intersections during their own signal phase.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from occ4d.synth.paths import bezier

LANE_WIDTH = 3.5  # m
PARKING_WIDTH = 2.5  # m
MEDIAN_HALF = 0.8  # m, half width of a raised median

# Signal phases of an intersection, in cycle order (-1 = all red, so the box clears).
X_STRAIGHT, X_LEFT, Y_STRAIGHT, Y_LEFT, WALK = 0, 1, 2, 3, 4
CYCLE = (
    (X_STRAIGHT, 14.0),
    (-1, 3.0),
    (X_LEFT, 6.0),
    (-1, 3.0),
    (Y_STRAIGHT, 14.0),
    (-1, 3.0),
    (Y_LEFT, 6.0),
    (-1, 3.0),
    (WALK, 16.0),
    (-1, 3.0),
)


@dataclass(frozen=True)
class TownConfig:
    nodes: tuple[int, int] = (5, 5)  # grid nodes along x and y
    block: tuple[float, float] = (65.0, 115.0)  # m between neighbouring nodes
    drop_edge: float = 0.12  # probability of dropping an interior edge (makes T junctions)
    two_lanes: float = 0.5  # probability a street has 2 lanes per direction
    median: float = 0.6  # probability a 2-lane street has a raised median
    parking: float = 0.7  # probability a 1-lane street has parking strips
    sidewalk: tuple[float, float] = (3.0, 4.5)  # m

    def __post_init__(self) -> None:
        if min(self.nodes) < 2:
            raise ValueError(f"a town needs at least 2x2 nodes, got {self.nodes}")
        if not 30.0 <= self.block[0] <= self.block[1]:
            raise ValueError(f"block spacing must satisfy 30 <= min <= max, got {self.block}")


@dataclass
class Edge:
    a: int
    b: int
    axis: int  # 0: along x, 1: along y
    lanes: int  # per direction
    median: bool
    parking: bool
    sidewalk: float

    @property
    def half_width(self) -> float:
        """Half width of the carriageway (kerb to centre), m."""
        return MEDIAN_HALF * self.median + self.lanes * LANE_WIDTH + PARKING_WIDTH * self.parking


@dataclass
class Track:
    """A directed straight lane or walkway along one edge: ``start`` -> ``end`` (2,)."""

    id: int
    edge: int
    node_from: int
    node_to: int
    index: int  # lane index from the centre (0 = inner); -1 for walkways
    start: np.ndarray
    end: np.ndarray
    walk: bool

    @property
    def heading(self) -> np.ndarray:
        d = self.end - self.start
        return d / np.linalg.norm(d)

    @property
    def length(self) -> float:
        return float(np.linalg.norm(self.end - self.start))


@dataclass
class Connector:
    """A move through a node from one track's end to another's start; dense points (K, 2)."""

    node: int
    src: int
    dst: int
    kind: str  # straight, left, right, curve
    points: np.ndarray
    phase: int  # signal phase that allows it, -1 when the node has no signal


@dataclass
class Town:
    nodes: np.ndarray  # (N, 2) m
    kind: list[str]  # cross, tee, curve, through
    edges: list[Edge]
    tracks: list[Track]
    connectors: list[Connector]
    trim: dict[tuple[int, int], float]  # (node, edge) -> distance from the node where tracks stop
    curve_radius: dict[int, float]
    signal_offset: np.ndarray  # (N,) s, phase of each node's cycle at t = 0
    signal_hold: dict[int, tuple[int, float, float]] = field(default_factory=dict)
    out: dict[int, list[int]] = field(default_factory=dict)  # track -> connector ids

    def edges_at(self, n: int) -> list[int]:
        return [i for i, e in enumerate(self.edges) if n in (e.a, e.b)]

    def phase_at(self, n: int, t: float) -> int:
        """The signal phase of node ``n`` at time ``t`` (s); -1 is all red."""
        return self.phase_window(n, t)[0]

    def phase_window(self, n: int, t: float) -> tuple[int, float]:
        """(phase, seconds left in it) of node ``n`` at time ``t``.

        A hold (``signal_hold[n] = (phase, t0, t1)``) keeps one phase green over [t0, t1): the
        ego's own movement gets its green, the cycle resumes afterwards.
        """
        if n in self.signal_hold:
            ph, t0, t1 = self.signal_hold[n]
            if t0 - 3.0 <= t < t0:
                return -1, t0 - t
            if t0 <= t < t1:
                return ph, t1 - t
            if t >= t1:
                t = t - t1  # the cycle restarts from its first phase after the hold
        total = sum(d for _, d in CYCLE)
        u = (t + self.signal_offset[n]) % total
        for ph, d in CYCLE:
            if u < d:
                return ph, d - u
            u -= d
        return CYCLE[-1][0], 0.0

    def right_normal(self, track: Track) -> np.ndarray:
        h = track.heading
        return np.array([h[1], -h[0]])


def _connected(n: int, edges: list[tuple[int, int]]) -> bool:
    adj: dict[int, list[int]] = {i: [] for i in range(n)}
    for a, b in edges:
        adj[a].append(b)
        adj[b].append(a)
    seen, todo = {0}, [0]
    while todo:
        for m in adj[todo.pop()]:
            if m not in seen:
                seen.add(m)
                todo.append(m)
    return len(seen) == n


def build_town(rng: np.random.Generator, cfg: TownConfig = TownConfig()) -> Town:
    """Draw a town: node positions, road attributes, tracks, connectors and signal offsets."""
    nx, ny = cfg.nodes
    xs = np.concatenate([[0.0], np.cumsum(rng.uniform(*cfg.block, size=nx - 1))])
    ys = np.concatenate([[0.0], np.cumsum(rng.uniform(*cfg.block, size=ny - 1))])
    xs -= xs.mean()
    ys -= ys.mean()
    nodes = np.array([(x, y) for x in xs for y in ys])
    idx = lambda i, j: i * ny + j  # noqa: E731

    pairs = [(idx(i, j), idx(i + 1, j), 0) for i in range(nx - 1) for j in range(ny)]
    pairs += [(idx(i, j), idx(i, j + 1), 1) for i in range(nx) for j in range(ny - 1)]
    keep = list(pairs)
    degree = np.zeros(len(nodes), int)
    for a, b, _ in pairs:
        degree[a] += 1
        degree[b] += 1
    for k in rng.permutation(len(pairs)):
        a, b, ax = pairs[k]
        if rng.random() >= cfg.drop_edge or degree[a] <= 3 or degree[b] <= 3:
            continue  # keep border nodes as T junctions; only interior crossings lose roads
        trial = [p for p in keep if p != pairs[k]]
        if _connected(len(nodes), [(p[0], p[1]) for p in trial]):
            keep = trial
            degree[a] -= 1
            degree[b] -= 1

    # Street attributes are per grid line (row or column), so a street keeps its lanes.
    line_attr = {}
    for key in [(0, j) for j in range(ny)] + [(1, i) for i in range(nx)]:
        lanes = 2 if rng.random() < cfg.two_lanes else 1
        line_attr[key] = (
            lanes,
            lanes == 2 and rng.random() < cfg.median,
            lanes == 1 and rng.random() < cfg.parking,
            float(rng.uniform(*cfg.sidewalk)),
        )
    edges = []
    for a, b, ax in keep:
        line = (0, a % ny) if ax == 0 else (1, a // ny)
        lanes, med, park, sw = line_attr[line]
        edges.append(Edge(a, b, ax, lanes, med, park, sw))

    at = {n: [i for i, e in enumerate(edges) if n in (e.a, e.b)] for n in range(len(nodes))}
    kind = []
    for n in range(len(nodes)):
        axes = {edges[i].axis for i in at[n]}
        d = len(at[n])
        kind.append("cross" if d == 4 else "tee" if d == 3 else "curve" if len(axes) == 2 else "through")

    trim: dict[tuple[int, int], float] = {}
    radius: dict[int, float] = {}
    for n in range(len(nodes)):
        for i in at[n]:
            if kind[n] in ("cross", "tee"):
                cross = [edges[j] for j in at[n] if edges[j].axis != edges[i].axis]
                trim[(n, i)] = max(e.half_width + e.sidewalk for e in cross) + 1.0
            elif kind[n] == "curve":
                other = next(edges[j] for j in at[n] if j != i)
                lengths = [np.linalg.norm(nodes[edges[j].a] - nodes[edges[j].b]) for j in at[n]]
                r = float(np.clip(0.3 * min(lengths), edges[i].half_width + other.half_width + 6.0, 30.0))
                radius[n] = r
                trim[(n, i)] = r
            else:
                trim[(n, i)] = 0.0

    tracks: list[Track] = []
    for ei, e in enumerate(edges):
        for src, dst in ((e.a, e.b), (e.b, e.a)):
            h = (nodes[dst] - nodes[src]) / np.linalg.norm(nodes[dst] - nodes[src])
            right = np.array([h[1], -h[0]])
            p0 = nodes[src] + h * trim[(src, ei)]
            p1 = nodes[dst] - h * trim[(dst, ei)]
            for k in range(e.lanes):
                off = MEDIAN_HALF * e.median + (k + 0.5) * LANE_WIDTH
                tracks.append(Track(len(tracks), ei, src, dst, k, p0 + right * off, p1 + right * off, False))
            # Walkway: the right-hand part of the sidewalk, ending at the corner square's middle.
            off = e.half_width + 0.65 * e.sidewalk
            w0 = nodes[src] + h * _walk_trim(src, ei, kind, at, edges, trim)
            w1 = nodes[dst] - h * _walk_trim(dst, ei, kind, at, edges, trim)
            tracks.append(Track(len(tracks), ei, src, dst, -1, w0 + right * off, w1 + right * off, True))

    connectors: list[Connector] = []
    for t_in in tracks:
        n = t_in.node_to
        for t_out in tracks:
            if t_out.node_from != n or t_out.walk != t_in.walk or t_out.edge == t_in.edge:
                continue
            h0, h1 = t_in.heading, t_out.heading
            cross = h0[0] * h1[1] - h0[1] * h1[0]
            turn = "straight" if h0 @ h1 > 0.9 else ("left" if cross > 0 else "right")
            if kind[n] in ("curve", "through"):
                ok = t_out.index == min(t_in.index, edges[t_out.edge].lanes - 1) or t_in.walk
                move = "curve" if kind[n] == "curve" else "straight"
                phase = -1
            else:
                move = turn
                if t_in.walk:
                    ok = turn in ("straight", "right")
                    phase = WALK if turn == "straight" else -1
                else:
                    lanes_in, lanes_out = edges[t_in.edge].lanes, edges[t_out.edge].lanes
                    ok = {
                        "straight": t_out.index == min(t_in.index, lanes_out - 1),
                        "left": t_in.index == 0 and t_out.index == 0,
                        "right": t_in.index == lanes_in - 1 and t_out.index == lanes_out - 1,
                    }[turn]
                    axis = edges[t_in.edge].axis
                    phase = 2 * axis + (1 if turn == "left" else 0)
            if not ok:
                continue
            if move == "straight":
                pts = np.linspace(
                    t_in.end, t_out.start, max(int(np.linalg.norm(t_out.start - t_in.end) / 0.1), 2)
                )
            else:
                pts = bezier(t_in.end, h0, t_out.start, h1)
            connectors.append(Connector(n, t_in.id, t_out.id, move, pts, phase))
    out: dict[int, list[int]] = {t.id: [] for t in tracks}
    for ci, c in enumerate(connectors):
        out[c.src].append(ci)
    total = sum(d for _, d in CYCLE)
    offsets = rng.uniform(0.0, total, size=len(nodes))
    return Town(nodes, kind, edges, tracks, connectors, trim, radius, offsets, out=out)


def _walk_trim(n, ei, kind, at, edges, trim) -> float:
    """Where a walkway stops before node ``n``: the middle of the corner square at crossings."""
    if kind[n] in ("cross", "tee"):
        cross = [edges[j] for j in at[n] if edges[j].axis != edges[ei].axis]
        return max(e.half_width + 0.5 * e.sidewalk for e in cross)
    return trim[(n, ei)]


def centrelines(town: Town) -> list[tuple[int, np.ndarray]]:
    """Road centrelines as dense polylines, one per edge plus one arc per curve node.

    Edges run node to node at crossings (their bands overlap into the junction box) and stop at
    the arc's tangent points at curves.
    """
    out = []
    for ei, e in enumerate(town.edges):
        pa, pb = town.nodes[e.a], town.nodes[e.b]
        h = (pb - pa) / np.linalg.norm(pb - pa)
        ta = town.curve_radius.get(e.a, 0.0)
        tb = town.curve_radius.get(e.b, 0.0)
        p0, p1 = pa + h * ta, pb - h * tb
        n = max(int(np.linalg.norm(p1 - p0) / 0.1), 2)
        out.append((ei, np.linspace(p0, p1, n)))
    for n, r in town.curve_radius.items():
        e0, e1 = town.edges_at(n)
        ends = []
        for ei in (e0, e1):
            e = town.edges[ei]
            other = e.b if e.a == n else e.a
            h = (town.nodes[other] - town.nodes[n]) / np.linalg.norm(town.nodes[other] - town.nodes[n])
            ends.append((town.nodes[n] + h * r, h))
        (p0, h0), (p1, h1) = ends
        out.append((e0, bezier(p0, -h0, p1, h1)))
    return out
