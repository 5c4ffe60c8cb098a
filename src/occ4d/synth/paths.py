"""Polylines sampled at a fixed arc-length step: the lanes, walkways and routes everything moves on.

Every moving thing in the synthetic world (the ego, vehicles, pedestrians) follows a :class:`Path`
by arc length ``s``; its pose at ``s`` is an interpolation, so motion is as smooth as the path.
Paths are built from straight pieces and cubic Bézier connectors whose end tangents match the
pieces they join, so heading is continuous everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

STEP = 0.5  # m between path samples
# A cubic Bézier with handles of this fraction of the corner distance approximates a quarter circle.
_KAPPA = 0.5523


@dataclass(frozen=True)
class Path:
    """Samples ``xy`` (N, 2) every :data:`STEP` metres; ``yaw`` (N,) radians, ``curvature`` (N,) 1/m."""

    xy: np.ndarray
    yaw: np.ndarray
    curvature: np.ndarray

    @property
    def length(self) -> float:
        return STEP * (len(self.xy) - 1)

    def pose(self, s) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """x, y, yaw at arc length(s) ``s`` (clamped to the path)."""
        s = np.clip(np.asarray(s, dtype=np.float64), 0.0, self.length)
        f = s / STEP
        i = np.minimum(f.astype(np.int64), len(self.xy) - 2)
        w = f - i
        xy = self.xy[i] * (1 - w)[..., None] + self.xy[i + 1] * w[..., None]
        dyaw = np.angle(np.exp(1j * (self.yaw[i + 1] - self.yaw[i])))
        return xy[..., 0], xy[..., 1], self.yaw[i] + w * dyaw


def bezier(p0, h0, p3, h3, corner_gain: float = _KAPPA) -> np.ndarray:
    """Dense points (K, 2) of a cubic joining ``p0`` (heading ``h0``) to ``p3`` (heading ``h3``).

    Handles point along the headings to where the two lines meet, scaled by ``corner_gain``, so a
    right-angle join is close to a circular arc; parallel headings give a straight S-free join.
    """
    p0, h0, p3, h3 = (np.asarray(a, dtype=np.float64) for a in (p0, h0, p3, h3))
    dist = float(np.linalg.norm(p3 - p0))
    cross = h0[0] * h3[1] - h0[1] * h3[0]
    if abs(cross) < 1e-6:
        d0 = d3 = dist / 3.0
    else:
        # Solve p0 + a*h0 = p3 - b*h3 for the corner point's distances a, b.
        a, b = np.linalg.solve(np.stack([h0, h3], axis=1), p3 - p0)
        d0, d3 = corner_gain * abs(a), corner_gain * abs(b)
    ctrl = np.stack([p0, p0 + h0 * d0, p3 - h3 * d3, p3])
    n = max(int(np.ceil(dist / 0.1)), 2)
    t = np.linspace(0.0, 1.0, n + 1)[:, None]
    return (
        (1 - t) ** 3 * ctrl[0]
        + 3 * (1 - t) ** 2 * t * ctrl[1]
        + 3 * (1 - t) * t**2 * ctrl[2]
        + t**3 * ctrl[3]
    )


def resample(points: np.ndarray) -> Path:
    """A :class:`Path` through a dense polyline (K, 2), resampled every :data:`STEP` metres."""
    pts = np.asarray(points, dtype=np.float64)
    seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    keep = np.concatenate([[True], seg > 1e-9])
    pts = pts[keep]
    seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    if len(pts) < 2:
        raise ValueError("a path needs two distinct points")
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    s = np.arange(0.0, cum[-1] + 1e-9, STEP)  # uniform: the last sample is within STEP of the end
    xy = np.stack([np.interp(s, cum, pts[:, 0]), np.interp(s, cum, pts[:, 1])], axis=1)
    if len(xy) < 3:
        xy = np.stack([np.interp(np.linspace(0, cum[-1], 3), cum, pts[:, k]) for k in range(2)], axis=1)
    d = np.gradient(xy, axis=0)
    yaw = np.unwrap(np.arctan2(d[:, 1], d[:, 0]))
    curvature = np.abs(np.gradient(yaw)) / STEP
    return Path(xy, yaw, curvature)


def join(pieces: list[np.ndarray]) -> Path:
    """One path through consecutive dense polylines (each piece starts where the last ended)."""
    return resample(np.concatenate(pieces, axis=0))


def speed_limits(path: Path, v_max: float, lateral_accel: float, decel: float) -> np.ndarray:
    """Per-sample speed cap (N,): curvature-limited (v^2 * kappa <= lateral_accel), then smoothed
    backwards so the cap can always be reached braking at ``decel``."""
    k = np.maximum(path.curvature, 1e-6)
    cap = np.minimum(v_max, np.sqrt(lateral_accel / k))
    _brake_back(cap, 2 * decel * STEP)
    return cap


@numba.njit(cache=True)
def _brake_back(cap, two_b_ds: float) -> None:
    for i in range(len(cap) - 2, -1, -1):
        cap[i] = min(cap[i], np.sqrt(cap[i + 1] ** 2 + two_b_ds))
