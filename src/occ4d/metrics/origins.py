"""RayIoU ray origins (from a scene's poses) and the 14,040 fixed ray directions.

Both follow SparseOcc's evaluation to the float precision it uses (PROTOCOLS §3.7a, §3.7b):
origins are computed in float64, with the relative LiDAR position cast to float32 before it is
moved into the reference ego frame; directions are computed in float64 and stored as float32.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from occ4d.core.errors import DataError

MAX_ORIGINS = 8  # origins kept per sample (§3.7a step 5)
ORIGIN_BOUND = 39.0  # metres; |x| and |y| must be strictly below it (§3.7a step 4)
PITCH_LIMIT = 0.21  # radians; pitches are extended while the last one is below it (§3.7b)


@lru_cache(maxsize=1)
def _ray_directions() -> np.ndarray:
    pitches = [-(math.pi / 2 - math.atan(k)) for k in range(1, 11)]
    while pitches[-1] < PITCH_LIMIT:
        pitches.append(pitches[-1] + (pitches[-1] - pitches[-2]))
    rays = []
    # Scalar NumPy calls, one ray at a time, exactly as the reference: vectorised cos/sin may use
    # SIMD code paths whose last bit differs (it would only matter at float32 rounding ties).
    for pitch in pitches:
        for deg in np.arange(0, 360, 1):
            az = np.deg2rad(deg)
            rays.append((np.cos(pitch) * np.cos(az), np.cos(pitch) * np.sin(az), np.sin(pitch)))
    out = np.array(rays, dtype=np.float32)
    out.setflags(write=False)
    return out


def ray_directions() -> np.ndarray:
    """Unit ray directions (14040, 3) float32, pitch-major: index = pitch * 360 + azimuth (deg).

    39 pitches from -0.785398 to +0.219 rad (ten at -(pi/2 - atan(k)), k = 1..10, then constant
    steps while below 0.21); azimuths 0..359 degrees. Read-only; identical for every origin.
    """
    return _ray_directions()


def lidar_pose(ego2global: np.ndarray, lidar2ego: np.ndarray) -> np.ndarray:
    """P(f) = ego2global(f) . lidar2ego(f), the LiDAR-to-global pose (4, 4) float64."""
    return np.asarray(ego2global, dtype=np.float64).dot(np.asarray(lidar2ego, dtype=np.float64))


def ray_origins(
    ref: int,
    ego2global: Sequence[np.ndarray] | np.ndarray,
    lidar2ego: Sequence[np.ndarray] | np.ndarray,
    max_origins: int = MAX_ORIGINS,
    bound: float = ORIGIN_BOUND,
    source: str | None = None,
) -> np.ndarray:
    """Ray origins (T, 3) float64, 1 <= T <= 8, in the ego frame of frame ``ref`` of a scene.

    ``ego2global`` and ``lidar2ego`` hold one 4x4 pose per keyframe of the scene, **in time
    order** (the order decides which origins survive the 8-origin rule). Every frame's LiDAR
    position is expressed in the reference LiDAR frame (a general 4x4 inverse), cast to float32,
    then moved into the reference ego frame in float64; origins with |x| or |y| >= 39 m are
    dropped, and of more than 8 the ones at round(linspace(0, K-1, 8)) are kept.
    """
    e2g = np.asarray(ego2global, dtype=np.float64)
    l2e = np.asarray(lidar2ego, dtype=np.float64)
    if e2g.ndim != 3 or e2g.shape[1:] != (4, 4) or l2e.shape != e2g.shape:
        raise DataError(source, f"need (K, 4, 4) ego2global and lidar2ego, got {e2g.shape} and {l2e.shape}")
    if not 0 <= ref < len(e2g):
        raise DataError(source, f"reference frame {ref} outside the scene's {len(e2g)} frames")
    ref_lidar_from_global = np.linalg.inv(lidar_pose(e2g[ref], l2e[ref]))
    ref_ego_from_lidar = l2e[ref]
    kept = []
    for f in range(len(e2g)):
        if f == ref:
            p = np.zeros(3, dtype=np.float32)
        else:
            rel = ref_lidar_from_global.dot(lidar_pose(e2g[f], l2e[f]))
            p = np.array(rel[:3, 3], dtype=np.float32)
        pad = np.ones(4)
        pad[:3] = p
        o = np.dot(ref_ego_from_lidar[:3], pad.T).T
        if np.abs(o[0]) < bound and np.abs(o[1]) < bound:
            kept.append(o)
    if not kept:
        raise DataError(source, f"no ray origin within {bound} m (the reference frame's own should be)")
    if len(kept) > max_origins:
        pick = np.round(np.linspace(0, len(kept) - 1, max_origins)).astype(np.int64)
        kept = [kept[i] for i in pick]
    return np.stack(kept).astype(np.float64)


def scene_origins(
    ego2global: Sequence[np.ndarray] | np.ndarray,
    lidar2ego: Sequence[np.ndarray] | np.ndarray,
    source: str | None = None,
) -> list[np.ndarray]:
    """Origins of every frame of one time-ordered scene: ``[ray_origins(r, ...) for r]``."""
    return [ray_origins(r, ego2global, lidar2ego, source=source) for r in range(len(ego2global))]


def origins_by_token(records) -> dict[str, np.ndarray]:
    """RayIoU origins of every frame record (``occ4d.data.index.FrameRecord``), by token.

    Records are grouped by scene and put in time order first, since a frame's origins come from
    the poses of its whole scene (the 8-origin rule).
    """
    from occ4d.data.index import group_by_scene

    out = {}
    for scene in group_by_scene(records).values():
        e2g = [r.ego2global for r in scene]
        l2e = [r.lidar2ego for r in scene]
        for i, r in enumerate(scene):
            out[r.token] = ray_origins(i, e2g, l2e, source=str(r.path))
    return out
