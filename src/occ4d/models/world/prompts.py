"""Named ego-trajectory prompts for generation: straight, left, right, stop, accelerate.

Each prompt is a kinematic profile sampled at the dataset rate (2 Hz) and returned as (T, 3)
rows of x, y [m] and yaw [rad] relative to the first frame, the frame a generated clip starts in.
Speeds are urban: 6 m/s cruising; turns at 4.5 m/s with a 12 m radius (0.375 rad/s), which
turns about 90 degrees in 4 s; ``stop`` brakes at 2 m/s^2 to a standstill; ``accelerate`` goes
from 2 m/s at 1.5 m/s^2.

:func:`prompt_obstacle` checks a prompt against the frame it starts in: ``occ4d generate`` refuses
a prompt whose ego box would cross a wall, a tree, a barrier or a cone of a real opening.
"""

from __future__ import annotations

import numpy as np
import torch

from occ4d.core.grid import OCC3D, GridSpec
from occ4d.core.vocab import OCC3D_VOCAB, Occ3D

PROMPTS = ("straight", "left", "right", "stop", "accelerate")


def _integrate(speed: np.ndarray, yaw_rate: np.ndarray, dt: float) -> np.ndarray:
    """Unicycle integration of per-step speed [m/s] and yaw rate [rad/s] from the origin (midpoint rule)."""
    t = len(speed) + 1
    out = np.zeros((t, 3))
    for k in range(1, t):
        yaw_mid = out[k - 1, 2] + 0.5 * yaw_rate[k - 1] * dt
        out[k, 0] = out[k - 1, 0] + speed[k - 1] * dt * np.cos(yaw_mid)
        out[k, 1] = out[k - 1, 1] + speed[k - 1] * dt * np.sin(yaw_mid)
        out[k, 2] = out[k - 1, 2] + yaw_rate[k - 1] * dt
    return out


def prompt_trajectory(name: str, frames: int, hz: float = 2.0) -> np.ndarray:
    """(frames, 3) float64 trajectory of the named prompt, relative to its first frame."""
    if name not in PROMPTS:
        raise ValueError(f"unknown trajectory prompt {name!r}; choose one of {PROMPTS} or pass a file")
    if frames < 1:
        raise ValueError(f"frames must be positive, got {frames}")
    dt = 1.0 / hz
    t = np.arange(frames - 1) * dt + 0.5 * dt  # mid-step times
    speed = np.full(frames - 1, 6.0)
    yaw_rate = np.zeros(frames - 1)
    if name in ("left", "right"):
        speed[:] = 4.5
        yaw_rate[:] = (1 if name == "left" else -1) * 4.5 / 12.0
    elif name == "stop":
        speed = np.maximum(6.0 - 2.0 * t, 0.0)
    elif name == "accelerate":
        speed = 2.0 + 1.5 * t
    return _integrate(speed, yaw_rate, dt)


# Static classes the ego cannot drive through (parked vehicles are left out: they may drive off).
BLOCKING = tuple(int(c) for c in (Occ3D.BARRIER, Occ3D.TRAFFIC_CONE, Occ3D.MANMADE, Occ3D.VEGETATION))
# Occ3D layers of the ego's body: centres from -0.4 to 0.8 m, i.e. from just above the road
# (whose top is layer 0) to the roof of a 1.6 m car; tree crowns and awnings above it do not block.
BODY_LAYERS = (1, 5)


def prompt_obstacle(
    current: np.ndarray, path: np.ndarray, *, grid: GridSpec = OCC3D, layers: tuple[int, int] = BODY_LAYERS
) -> tuple[int, str, float, float] | None:
    """The first pose of ``path`` whose ego box covers a static obstacle of the ``current`` frame.

    Args:
        current: (X, Y, Z) labels of the frame the path starts in (its ego frame).
        path: (T, 3) x, y, yaw relative to that frame; row 0 is the ego now and is not checked.
        layers: the [first, last) layers an obstacle must fill to block the ego (``BODY_LAYERS``).

    Returns:
        (step, class name, x, y) of the first blocked pose, or None. Poses outside the grid are not
        checked (nothing is known there), nor are vehicles, which may move away.
    """
    from occ4d.metrics.control import ego_box_hits

    current = np.asarray(current)
    if current.shape != tuple(grid.shape):
        raise ValueError(f"the current frame must be {tuple(grid.shape)} labels, got {current.shape}")
    path = np.asarray(path, dtype=np.float64)
    if path.ndim != 2 or path.shape[1] != 3 or not np.isfinite(path).all():
        raise ValueError(f"path must be finite (T, 3) x, y, yaw rows, got {path.shape}")
    body = current[:, :, layers[0] : layers[1]]
    maps = {c: torch.from_numpy((body == c).any(-1)) for c in BLOCKING if (body == c).any()}
    for k in range(1, len(path)):
        for c, blocked in maps.items():
            if ego_box_hits(blocked, path[k], grid):
                return k, OCC3D_VOCAB.names[c], float(path[k, 0]), float(path[k, 1])
    return None
