"""Named ego-trajectory prompts for generation: straight, left, right, stop, accelerate.

Each prompt is a kinematic profile sampled at the dataset rate (2 Hz) and returned as (T, 3)
rows of x, y [m] and yaw [rad] relative to the first frame, the frame a generated clip starts in.
Speeds are urban: 6 m/s cruising; turns at 4.5 m/s with a 12 m radius (0.375 rad/s), which
turns about 90 degrees in 4 s; ``stop`` brakes at 2 m/s^2 to a standstill; ``accelerate`` goes
from 2 m/s at 1.5 m/s^2.
"""

from __future__ import annotations

import numpy as np

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
