"""Trajectory-steered generation by forecasting: an opening continued along a given ego path.

DOME's controllable generation: a forecaster that takes the past frames and a *designed* future
ego trajectory makes a clip follow that trajectory. :func:`rollout` continues an opening of
``past`` frames (real keyframes, or the first frames of a generator's clip) window by window:

1. the last ``past`` frames made are the window's history; the trajectory rows from the oldest of
   them to ``future`` frames ahead are re-expressed in the newest one's ego frame (the forecasters'
   convention: the current frame is row ``past - 1``);
2. the forecaster predicts ``future`` frames, which are appended (the last window keeps only what
   the clip still needs);
3. repeat until the clip has ``frames`` frames.

Any model with ``forecast(past_occ, traj, **sampling)`` works: a diffusion forecaster run, the
autoregressive one, or a baseline (``fused-warp`` and ``motion-extrude`` continue the road into
the area entering the grid; ``ego-warp`` leaves it free). The warp inside these forecasters
moves the scene along the trajectory, so the clip's ego motion is the one asked for; the
benchmark's controllability table measures it (``benchmarks/worldmodels.py``).
"""

from __future__ import annotations

import numpy as np
import torch

from occ4d.models.world.embed import extend_traj, rebase_traj


def compose_traj(opening: np.ndarray, path: np.ndarray) -> np.ndarray:
    """Poses of an opening (P, 3), then ``path`` (M, 3) started at the opening's last pose.

    ``path`` is relative to its own first row (a prompt); the result (P + M - 1, 3) is relative
    to the opening's first frame, with the path's first row on the opening's last pose.
    """
    opening = np.asarray(opening, dtype=np.float64)
    path = np.asarray(path, dtype=np.float64)
    if opening.ndim != 2 or opening.shape[1] != 3 or path.ndim != 2 or path.shape[1] != 3:
        raise ValueError(f"poses must be (N, 3) x, y, yaw rows, got {opening.shape} and {path.shape}")
    x0, y0, yaw0 = opening[-1]
    c, s = np.cos(yaw0), np.sin(yaw0)
    rel = path - path[:1]
    moved = np.stack(
        [x0 + c * rel[:, 0] - s * rel[:, 1], y0 + s * rel[:, 0] + c * rel[:, 1], yaw0 + rel[:, 2]], axis=1
    )
    return np.concatenate([opening, moved[1:]])


@torch.no_grad()
def rollout(
    model,
    opening: torch.Tensor,
    traj: torch.Tensor,
    frames: int,
    *,
    past: int,
    future: int,
    generator: torch.Generator | None = None,
    **sampling,
) -> torch.Tensor:
    """Continue ``opening`` (B, past, X, Y, Z) along ``traj`` (B, >= 1, 3) to (B, frames, X, Y, Z).

    ``traj`` is relative to the opening's first frame (row t = frame t); a shorter one is continued
    at constant velocity and turn rate. ``sampling`` (sampler, steps, guidance_scale) goes to the
    forecaster with ``generator``, so a seed gives the same clip.
    """
    if opening.ndim != 5 or opening.shape[1] != past:
        raise ValueError(f"opening must be (B, {past}, X, Y, Z), got {tuple(opening.shape)}")
    if traj.ndim != 3 or traj.shape[-1] != 3 or traj.shape[0] != opening.shape[0]:
        raise ValueError(f"traj must be ({opening.shape[0]}, T, 3), got {tuple(traj.shape)}")
    if not torch.isfinite(traj).all():
        raise ValueError("trajectory has NaN or infinite poses")
    if frames < past:
        raise ValueError(f"frames ({frames}) must be at least the opening's {past}")
    made = [opening[:, t] for t in range(past)]
    traj = extend_traj(traj.double(), max(frames + future, traj.shape[1])).float()
    while len(made) < frames:
        cur = len(made) - 1
        window = rebase_traj(traj[:, cur - past + 1 : cur + future + 1], past - 1)
        history = torch.stack(made[-past:], dim=1)
        pred = model.forecast(history, window.to(opening.device), generator=generator, **sampling)
        made.extend(pred[:, k].to(opening.dtype) for k in range(min(future, frames - len(made))))
    return torch.stack(made, dim=1)
