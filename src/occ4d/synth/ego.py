"""Ego behaviours: a route through the town and a planned speed profile for one manoeuvre.

Every behaviour is a route plus a target speed over time; the planned speed follows the target
with bounded acceleration (<= 2.5 m/s^2) and braking (<= 3.5 m/s^2), and never exceeds what the
path's curvature allows (lateral acceleration <= 2.5 m/s^2), so yaw rate stays bounded too.
Turns happen at signalised junctions, whose signal is held green for the ego's movement around
its planned arrival; lane changes blend between two parallel lanes with a quintic smoothstep.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from occ4d.synth.agents import Agent, Route, build_route, predecessors
from occ4d.synth.paths import STEP, Path, resample, speed_limits
from occ4d.synth.town import Connector, Town
from occ4d.synth.traffic import DT, LATERAL_ACCEL

BEHAVIOURS = ("straight", "left_turn", "right_turn", "lane_change", "stop_and_go", "accelerate", "brake")
EGO_SIZE = (4.1, 1.8, 1.6)  # m: length, width, height of a compact car
ACCEL, DECEL = 2.5, 3.5  # m/s^2 limits of the plan


@dataclass
class EgoPlan:
    behaviour: str
    route: Route
    s0: float  # m: start arc length on the route
    speed: np.ndarray  # (steps + 1,) planned speed per simulation step, m/s
    holds: dict[int, tuple[int, float, float]] = field(default_factory=dict)
    event_time: float = 0.0  # s: when the manoeuvre happens

    def agent(self) -> Agent:
        return Agent(
            "car", EGO_SIZE, self.route, self.s0, float(self.speed[0]), float(self.speed.max()) + 1.0
        )


def _straight_first(options: list[Connector]) -> int:
    order = {"straight": 0, "curve": 1, "right": 2, "left": 3}
    return min(range(len(options)), key=lambda i: order[options[i].kind])


def _profile(
    path: Path, s0: float, v_init: float, target, steps: int, accel: float = ACCEL, decel: float = DECEL
) -> tuple[np.ndarray, np.ndarray]:
    """Speeds and arc lengths (steps + 1,) following ``target(t)`` under the limits and curvature."""
    cap = speed_limits(path, 40.0, LATERAL_ACCEL, 2.0)
    v, s = np.empty(steps + 1), np.empty(steps + 1)
    v[0], s[0] = min(v_init, cap[min(int(s0 / STEP), len(cap) - 1)]), s0
    for k in range(steps):
        want = min(target(k * DT), cap[min(int(s[k] / STEP), len(cap) - 1)])
        v[k + 1] = float(np.clip(want, v[k] - decel * DT, v[k] + accel * DT))
        v[k + 1] = max(v[k + 1], 0.0)
        s[k + 1] = s[k] + 0.5 * (v[k] + v[k + 1]) * DT
    return v, s


def _straight_run(town: Town, tid: int, need: float) -> float:
    """Metres of road ahead from the start of track ``tid`` without a turn or curve (up to ``need``)."""
    total = 0.0
    while total < need:
        total += town.tracks[tid].length
        ahead = [town.connectors[c] for c in town.out[tid] if town.connectors[c].kind == "straight"]
        if not ahead:
            break
        total += float(np.linalg.norm(ahead[0].points[-1] - ahead[0].points[0]))
        tid = ahead[0].dst
    return total


def _straight_back(town: Town, tid: int, need: float) -> float:
    """Metres of straight road behind the end of track ``tid`` (up to ``need``)."""
    total = 0.0
    while total < need:
        total += town.tracks[tid].length
        into = [c for c in town.connectors if c.dst == tid and c.kind == "straight"]
        if not into:
            break
        tid = into[0].src
    return total


def _straight_start(town: Town, lanes: list, need: float, rng: np.random.Generator):
    """A random lane with ``need`` metres of straight road ahead (else the one with the most)."""
    runs = np.array([_straight_run(town, t.id, need) for t in lanes])
    ok = np.nonzero(runs >= need)[0]
    if len(ok):
        return lanes[int(ok[rng.integers(len(ok))])]
    return lanes[int(np.argmax(runs))]


def _back(town: Town, tid: int, need: float) -> list[int]:
    """Tracks ending in ``tid`` reaching at least ``need`` metres behind its start (straight first)."""
    chain, total = [tid], 0.0
    while total < need:
        prev = predecessors(town, chain[0])
        if not prev:
            break
        chain.insert(0, prev[0])
        total += town.tracks[prev[0]].length
    return chain


def _holds(town: Town, route: Route, s: np.ndarray) -> dict[int, tuple[int, float, float]]:
    """Hold each signal on the route green for the ego from 8 s before to 8 s after it arrives."""
    holds = {}
    for s_line, node, phase, _ in route.stops:
        k = int(np.searchsorted(s, s_line - EGO_SIZE[0] / 2))
        if k < len(s) and node not in holds:
            t = k * DT
            holds[node] = (phase, max(t - 8.0, 0.0), t + 8.0)
    return holds


def plan_ego(town: Town, behaviour: str, duration: float, rng: np.random.Generator) -> EgoPlan:
    """Draw a route and speed profile for ``behaviour`` lasting ``duration`` seconds."""
    if behaviour not in BEHAVIOURS:
        raise ValueError(f"unknown ego behaviour {behaviour!r}; choose from {BEHAVIOURS}")
    steps = int(round(duration / DT))
    lanes = [t for t in town.tracks if not t.walk]
    frac = float(rng.uniform(0.3, 0.5))
    event = frac * duration

    if behaviour in ("left_turn", "right_turn"):
        want = behaviour.split("_")[0]
        conns = [c for c in town.connectors if c.kind == want and c.phase >= 0]
        v_c = float(rng.uniform(8.0, 11.0))
        lead = v_c * event + 3.0
        after = v_c * (duration - event) + 20.0
        # Straight road before and after the turn, so the turn is the scene's only one.
        room = np.array(
            [
                min(_straight_run(town, c.dst, after) / after, _straight_back(town, c.src, lead) / lead)
                for c in conns
            ]
        )
        ok = np.nonzero(room >= 1.0)[0]
        conn = conns[int(ok[rng.integers(len(ok))])] if len(ok) else conns[int(np.argmax(room))]
        chain = _back(town, conn.src, lead)
        tracks = chain + [conn.dst]
        route = build_route(town, tracks, lead + 150.0 + v_c * duration + 60.0, _straight_first)
        before = route.starts[len(chain) - 1] + town.tracks[conn.src].length
        s0 = max(before - lead, 2.0 + EGO_SIZE[0])
        v, s = _profile(route.path, s0, v_c, lambda t: v_c, steps)
        return EgoPlan(behaviour, route, s0, v, _holds(town, route, s), event)

    if behaviour == "lane_change":
        two = [t for t in lanes if town.edges[t.edge].lanes == 2] or lanes
        track = _straight_start(town, two, 13.0 * duration + 20.0, rng)
        return _lane_change(town, track, duration, steps, event, rng)

    track = _straight_start(town, lanes, 13.0 * duration + 0.4 * 120.0 + 10.0, rng)
    s0 = float(rng.uniform(EGO_SIZE[0], max(track.length * 0.4, EGO_SIZE[0] + 0.1)))
    if behaviour == "straight":
        v_c = float(rng.uniform(6.0, 12.0))
        v_init, target = v_c, (lambda t: v_c)
    elif behaviour == "accelerate":
        v_init, v_c = float(rng.uniform(0.0, 2.0)), float(rng.uniform(10.0, 13.0))
        a = float(rng.uniform(1.2, 2.0))
        v_init, target = v_init, (lambda t: min(v_init + a * t, v_c))
    elif behaviour == "brake":
        v_init = float(rng.uniform(9.0, 13.0))
        b = float(rng.uniform(2.0, 3.2))
        target = lambda t: v_init if t < event else max(v_init - b * (t - event), 0.0)  # noqa: E731
    else:  # stop_and_go
        v_init = float(rng.uniform(6.0, 10.0))
        wait = float(rng.uniform(2.0, 4.0))
        b, a = float(rng.uniform(1.5, 2.5)), float(rng.uniform(1.2, 2.0))
        t_stop = event - v_init / b

        def target(t, v_init=v_init, b=b, a=a, t_stop=t_stop, wait=wait):
            if t < t_stop:
                return v_init
            if t < event:
                return max(v_init - b * (t - t_stop), 0.0)
            if t < event + wait:
                return 0.0
            return min(a * (t - event - wait), v_init)

    route = build_route(town, [track.id], s0 + max(v_init, 13.0) * duration + 40.0, _straight_first)
    v, s = _profile(route.path, s0, v_init, target, steps)
    return EgoPlan(behaviour, route, s0, v, _holds(town, route, s), event)


def _lane_change(town: Town, track, duration: float, steps: int, event: float, rng) -> EgoPlan:
    v_c = float(rng.uniform(8.0, 12.0))
    t_lc = float(rng.uniform(4.0, 5.0))  # s the manoeuvre takes
    edge = town.edges[track.edge]
    sibling = [
        t
        for t in town.tracks
        if t.edge == track.edge and not t.walk and t.node_from == track.node_from and t.index != track.index
    ]
    length = 2.0 * EGO_SIZE[0] + v_c * duration + 60.0
    route_a = build_route(town, [track.id], length, _straight_first)
    if edge.lanes < 2 or not sibling:
        s0 = EGO_SIZE[0]
        v, s = _profile(route_a.path, s0, v_c, lambda t: v_c, steps)
        return EgoPlan("straight", route_a, s0, v, _holds(town, route_a, s), event)
    # Same sequence of edges on the neighbouring lane (straight connectors keep the lane index).
    tracks_b = [sibling[0].id]
    for tid in route_a.tracks[1:]:
        t = town.tracks[tid]
        twin = [
            u
            for u in town.tracks
            if u.edge == t.edge
            and u.node_from == t.node_from
            and not u.walk
            and u.index == min(1 - track.index, town.edges[t.edge].lanes - 1)
        ]
        if not twin or not any(town.connectors[c].dst == twin[0].id for c in town.out[tracks_b[-1]]):
            break
        tracks_b.append(twin[0].id)
    route_b = build_route(town, tracks_b, length, _straight_first)
    # Start so the change begins at the event time and ends before the track does.
    s_begin = min(v_c * event + EGO_SIZE[0], track.length - v_c * t_lc - 2.0)
    s0 = max(s_begin - v_c * event, EGO_SIZE[0])
    i0 = max(int(s_begin / STEP), int(s0 / STEP) + 1)
    i1 = i0 + int(v_c * t_lc / STEP)
    n = min(len(route_a.path.xy), len(route_b.path.xy))
    if i1 >= n:
        i1 = n - 1
    u = np.clip((np.arange(i0, i1) - i0) / max(i1 - i0, 1), 0.0, 1.0)
    w = (10 * u**3 - 15 * u**4 + 6 * u**5)[:, None]
    blend = route_a.path.xy[i0:i1] * (1 - w) + route_b.path.xy[i0:i1] * w
    xy = np.concatenate([route_a.path.xy[:i0], blend, route_b.path.xy[i1:]])
    stops = [st for st in route_a.stops if st[0] < i0 * STEP] + [
        st for st in route_b.stops if st[0] >= i1 * STEP
    ]
    route = Route(resample(xy), stops, route_b.tracks, route_b.starts)
    v, s = _profile(route.path, s0, v_c, lambda t: v_c, steps)
    t_event = float(np.searchsorted(s, i0 * STEP)) * DT
    return EgoPlan("lane_change", route, s0, v, _holds(town, route, s), t_event)
