"""Road users: routes through the town and where each one starts.

A route is a chain of tracks and connectors drawn at random (straight ahead more often than a
turn), long enough for the whole scene. Vehicles use lanes, cyclists ride near the right edge of
the outer lane, pedestrians use walkways and crosswalks; tractors tow trailers along their own
route. Nobody starts on the ego's path ahead of it or closer than a safe gap to anyone else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from occ4d.synth.paths import STEP, Path, join, resample
from occ4d.synth.shapes import KINDS, draw_size
from occ4d.synth.town import Connector, Town

# Share of each kind among moving vehicles ("tractor" brings a trailer).
VEHICLE_MIX = {
    "car": 0.6,
    "truck": 0.07,
    "tractor": 0.04,
    "bus": 0.06,
    "construction_vehicle": 0.03,
    "motorcycle": 0.09,
    "bicycle": 0.11,
}
TOW_GAP = 1.0  # m between a tractor's rear and its trailer's front
BIKE_OFFSET = 1.0  # m right of the lane centre


@dataclass
class Route:
    """A path plus where its signal stop lines are: ``stops`` rows (s, node, phase, crossing m)."""

    path: Path
    stops: list[tuple[float, int, int, float]]
    tracks: list[int]
    starts: list[float]  # arc length where each track begins


@dataclass
class Agent:
    kind: str
    size: tuple[float, float, float]  # length, width, height (m)
    route: Route
    s: float  # m along the route (centre of the agent)
    v: float  # m/s
    v_max: float
    tow: int = -1  # index of the tractor towing this trailer
    tow_offset: float = 0.0


def _piece(town: Town, tid: int) -> np.ndarray:
    t = town.tracks[tid]
    n = max(int(t.length / 0.1), 2)
    return np.linspace(t.start, t.end, n)


def default_choice(rng: np.random.Generator) -> Callable[[list[Connector]], int]:
    weights = {"straight": 0.55, "left": 0.2, "right": 0.25, "curve": 1.0}

    def choose(options: list[Connector]) -> int:
        w = np.array([weights[c.kind] for c in options])
        return int(rng.choice(len(options), p=w / w.sum()))

    return choose


def build_route(
    town: Town,
    tracks: list[int],
    length: float,
    choose: Callable[[list[Connector]], int],
    offset: float = 0.0,
) -> Route:
    """A route starting at the first of ``tracks`` (followed in order), extended with ``choose``
    at every node until it is at least ``length`` metres long. ``offset`` shifts it sideways
    (m, positive to the right)."""
    tracks = list(tracks)
    pieces, stops, starts, s = [], [], [], 0.0
    i = 0
    while True:
        tid = tracks[i]
        starts.append(s)
        pieces.append(_piece(town, tid))
        s += town.tracks[tid].length
        if s >= length and i == len(tracks) - 1:
            break
        options = [town.connectors[c] for c in town.out[tid]]
        if i + 1 < len(tracks):
            match = [c for c in options if c.dst == tracks[i + 1]]
            if not match:
                raise ValueError(f"tracks {tid} and {tracks[i + 1]} are not connected")
            conn = match[0]
        else:
            if not options:
                break
            conn = options[choose(options)]
            tracks.append(conn.dst)
        if conn.phase >= 0:
            crossing = float(np.sum(np.linalg.norm(np.diff(conn.points, axis=0), axis=1)))
            stops.append((s, conn.node, conn.phase, crossing))
        pieces.append(conn.points)
        s += float(np.sum(np.linalg.norm(np.diff(conn.points, axis=0), axis=1)))
        i += 1
    path = join(pieces)
    if offset:
        path = shifted(path, offset)
    return Route(path, stops, tracks, starts)


def shifted(path: Path, offset: float) -> Path:
    """The path moved ``offset`` metres to its right."""
    right = np.stack([np.sin(path.yaw), -np.cos(path.yaw)], axis=1)
    return resample(path.xy + right * offset)


def predecessors(town: Town, tid: int, straight_first: bool = True) -> list[int]:
    """Tracks that lead into track ``tid`` (straight-ahead ones first)."""
    into = [c for c in town.connectors if c.dst == tid]
    into.sort(key=lambda c: (c.kind != "straight") if straight_first else 0)
    return [c.src for c in into]


def spawn_traffic(
    town: Town,
    bounds,
    duration: float,
    rng: np.random.Generator,
    keep_out: Path,
    keep_out_from: float,
    density: float = 1.0,
) -> list[Agent]:
    """Vehicles on lanes and pedestrians on walkways inside ``bounds`` (x0, y0, x1, y1).

    No one starts within 3 m of ``keep_out`` (the ego's path) beyond arc length
    ``keep_out_from`` - 20 m, so the ego never starts inside or right behind another agent.
    """
    x0, y0, x1, y1 = bounds
    guard = keep_out.xy[max(int((keep_out_from - 20.0) / STEP), 0) :: 2]
    agents: list[Agent] = []
    choose = default_choice(rng)
    kinds = list(VEHICLE_MIX)
    mix = np.array([VEHICLE_MIX[k] for k in kinds])
    for track in town.tracks:
        mid = 0.5 * (track.start + track.end)
        if not (x0 <= mid[0] <= x1 and y0 <= mid[1] <= y1):
            continue
        mean_gap = (22.0 if track.walk else 30.0) / density
        s = rng.exponential(mean_gap / 2)
        while s < track.length - 2.0:
            kind = "pedestrian" if track.walk else kinds[int(rng.choice(len(kinds), p=mix / mix.sum()))]
            if not track.walk and kind == "bicycle" and track.index != town.edges[track.edge].lanes - 1:
                kind = "car"  # cyclists keep to the outer lane
            size = draw_size(kind, rng)
            trailer = draw_size("trailer", rng) if kind == "tractor" else None
            need = size[0] + (trailer[0] + TOW_GAP if trailer else 0.0)
            head = s + need
            if head > track.length:
                break
            centre = s + (trailer[0] + TOW_GAP if trailer else 0.0) + size[0] / 2
            point = track.start + track.heading * centre
            tail = track.start + track.heading * s
            if (
                len(guard)
                and min(
                    np.min(np.linalg.norm(guard - point, axis=1)),
                    np.min(np.linalg.norm(guard - tail, axis=1)),
                )
                < 4.0
            ):
                s = head + rng.exponential(mean_gap)
                continue
            spec = KINDS[kind]
            v_max = float(rng.uniform(*spec.v_max))
            length = centre + v_max * duration * 1.2 + 40.0
            offset = BIKE_OFFSET if kind == "bicycle" else 0.0
            route = build_route(town, [track.id], length, choose, offset)
            v = v_max * float(rng.uniform(0.4, 0.9))
            agents.append(Agent(kind, size, route, centre, v, v_max))
            if trailer:
                off = size[0] / 2 + TOW_GAP + trailer[0] / 2
                agents.append(Agent("trailer", trailer, route, centre - off, v, v_max, len(agents) - 1, off))
            s = head + 2.0 + rng.exponential(mean_gap)
    return agents
