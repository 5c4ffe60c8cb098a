"""Object shapes: what each kind of road user and street object looks like as oriented boxes.

A shape is a list of parts ``(dx, length, width, z0, z1, cls)``: a box centred ``dx`` metres
ahead of the object's centre along its heading, spanning heights ``z0..z1`` in the ego/world
frame (the road surface is at z = -0.6 m, the top of the first Occ3D layer, as in the real data
where driveable surface sits in layer 0; PROTOCOLS §1.1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from occ4d.core.vocab import Occ3D

ROAD_TOP = -0.6  # m: top of layer 0 (z from -1.0 to -0.6); every walkable surface is at this height
Z_MIN, DZ, NZ = -1.0, 0.4, 16  # the Occ3D z axis (core.grid.OCC3D)


@dataclass(frozen=True)
class Kind:
    """A class of road user: Occ3D class, size ranges (m) and motion limits (m/s, m/s^2)."""

    name: str
    cls: int
    length: tuple[float, float]
    width: tuple[float, float]
    height: tuple[float, float]
    v_max: tuple[float, float]
    accel: float
    decel: float
    headway: float  # s, desired time gap to the one ahead
    min_gap: float  # m, standstill gap
    walker: bool = False


KINDS: dict[str, Kind] = {
    "car": Kind("car", Occ3D.CAR, (3.9, 4.9), (1.7, 2.0), (1.4, 1.75), (9.0, 13.5), 2.0, 3.0, 1.3, 2.0),
    "truck": Kind("truck", Occ3D.TRUCK, (6.0, 8.5), (2.3, 2.55), (2.8, 3.6), (8.0, 11.0), 1.2, 2.5, 1.6, 2.5),
    "tractor": Kind(
        "tractor", Occ3D.TRUCK, (5.5, 6.5), (2.4, 2.55), (3.0, 3.6), (7.5, 10.0), 1.0, 2.2, 1.8, 3.0
    ),
    "trailer": Kind(
        "trailer", Occ3D.TRAILER, (7.0, 10.0), (2.4, 2.55), (3.0, 3.8), (0.0, 0.0), 0.0, 0.0, 0.0, 0.0
    ),
    "bus": Kind("bus", Occ3D.BUS, (10.5, 12.5), (2.5, 2.55), (3.0, 3.4), (8.0, 11.0), 1.0, 2.5, 1.6, 2.5),
    "construction_vehicle": Kind(
        "construction_vehicle",
        Occ3D.CONSTRUCTION_VEHICLE,
        (5.0, 7.0),
        (2.3, 2.6),
        (2.8, 3.6),
        (4.0, 7.0),
        0.8,
        2.0,
        1.8,
        3.0,
    ),
    "motorcycle": Kind(
        "motorcycle", Occ3D.MOTORCYCLE, (1.9, 2.3), (0.7, 0.9), (1.3, 1.6), (10.0, 14.0), 2.5, 4.0, 1.0, 1.5
    ),
    "bicycle": Kind(
        "bicycle", Occ3D.BICYCLE, (1.6, 1.9), (0.6, 0.7), (1.5, 1.8), (3.5, 6.0), 0.8, 2.0, 1.0, 1.5
    ),
    "pedestrian": Kind(
        "pedestrian",
        Occ3D.PEDESTRIAN,
        (0.5, 0.7),
        (0.5, 0.7),
        (1.55, 1.9),
        (1.0, 1.6),
        0.7,
        1.5,
        0.6,
        0.6,
        walker=True,
    ),
}


def parts(kind: str, length: float, width: float, height: float, z0: float = ROAD_TOP) -> list[tuple]:
    """The boxes of one object of ``kind`` standing on a surface at height ``z0``."""
    cls = int(KINDS[kind].cls)
    top = z0 + height
    if kind == "car":
        return [
            (0.0, length, width, z0 + 0.15, z0 + 0.55 * height, cls),
            (-0.05 * length, 0.6 * length, 0.92 * width, z0 + 0.55 * height, top, cls),
        ]
    if kind in ("truck", "tractor", "construction_vehicle"):
        cab = 0.28 * length
        return [
            ((length - cab) / 2, cab, width, z0 + 0.2, top - 0.5, cls),
            (-cab / 2, length - cab, width, z0 + 0.2, top, cls),
        ]
    if kind == "trailer":
        return [(0.0, length, width, z0 + 0.8, top, cls)]
    return [(0.0, length, width, z0, top, cls)]


def layer_range(z0: float, z1: float) -> tuple[int, int]:
    """Layers ``[k0, k1)`` whose centres lie in ``[z0, z1]`` (centre of layer k: -0.8 + 0.4 k)."""
    k0 = int(np.ceil((z0 - Z_MIN) / DZ - 0.5 - 1e-9))
    k1 = int(np.floor((z1 - Z_MIN) / DZ - 0.5 + 1e-9)) + 1
    return max(k0, 0), min(k1, NZ)


def draw_size(kind: str, rng: np.random.Generator) -> tuple[float, float, float]:
    k = KINDS[kind]
    return float(rng.uniform(*k.length)), float(rng.uniform(*k.width)), float(rng.uniform(*k.height))


def boxes(
    kind: str, x: float, y: float, yaw: float, size: tuple[float, float, float], z0: float = ROAD_TOP
) -> np.ndarray:
    """Oriented boxes (P, 8): cx, cy, yaw, length, width, z0, z1, cls of one object in the world."""
    c, s = np.cos(yaw), np.sin(yaw)
    out = []
    for dx, length, width, za, zb, cls in parts(kind, *size, z0=z0):
        out.append((x + c * dx, y + s * dx, yaw, length, width, za, zb, cls))
    return np.asarray(out, dtype=np.float64)
