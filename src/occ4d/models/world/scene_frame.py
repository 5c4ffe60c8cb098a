"""Scene-centric clips for the generator: every frame in one reference ego frame, and back.

A generator that makes clips in each frame's own ego frame must move the whole scene the way the
prompt drives, from an embedding of the trajectory alone; at a CPU budget it does not learn to
(README, World models: 6-8 m error per 0.5 s step, no better than its unconditional branch).
Conditioned on the geometry instead, it makes the clip in one reference ego frame (the window's
middle frame, as the pose-aligned tokenizers do), where the static scene stands still and only
the traffic moves, and each frame is then resampled into its own ego frame with the prompt's
relative pose. The ego motion of the clip is then the prompt's by construction, up to the
nearest-column resampling (COME's scene-centric forecasting applies the same idea to a
forecaster's input).

Columns of a frame that the reference grid does not cover are filled as motion-extrude fills the
area entering the grid: the ground classes of the nearest border column continue, everything else
is free.
"""

from __future__ import annotations

import torch

from occ4d.core.grid import OCC3D, GridSpec
from occ4d.core.vocab import OCC3D_DYNAMIC, OCC3D_VOCAB
from occ4d.models.tokenizers.align import reference_index  # the middle frame, as the tokenizers align
from occ4d.models.world.baselines import warp_grid
from occ4d.models.world.embed import rebase_traj
from occ4d.models.world.motion import GROUND

__all__ = ["check_traj", "from_reference", "reference_index", "share_static", "to_reference"]


def check_traj(traj: torch.Tensor, frames: int) -> None:
    """A (B, >= frames, 3) finite trajectory, or a one-line ValueError saying what is wrong."""
    if traj.ndim != 3 or traj.shape[-1] != 3:
        raise ValueError(f"trajectory must be (B, T, 3) x, y, yaw rows, got {tuple(traj.shape)}")
    if traj.shape[1] < frames:
        raise ValueError(f"trajectory has {traj.shape[1]} rows, fewer than the clip's {frames} frames")
    if not torch.isfinite(traj).all():
        raise ValueError("trajectory holds NaN or infinite values")


def to_reference(
    occ: torch.Tensor, traj: torch.Tensor, ref: int, *, grid: GridSpec = OCC3D, fill: int = OCC3D_VOCAB.free
) -> torch.Tensor:
    """(B, T, X, Y, Z) labels, each in its own ego frame -> the same frames in frame ``ref``'s.

    ``traj`` (B, >= T, 3) holds the poses of the frames in any common frame (row t is frame t's);
    ``ref`` may index a row past the last frame. Columns outside frame t's grid take ``fill``."""
    b, t = occ.shape[:2]
    check_traj(traj, max(t, ref + 1))
    traj = traj.double()
    # pose of the reference frame expressed in frame t: resamples frame t into the reference frame
    ref_in_t = torch.stack([rebase_traj(traj, k)[:, ref] for k in range(t)], dim=1)  # (B, T, 3)
    out = warp_grid(occ.flatten(0, 1), ref_in_t.flatten(0, 1), grid=grid, fill=fill)
    return out.reshape(occ.shape)


def from_reference(
    occ_ref: torch.Tensor,
    traj: torch.Tensor,
    ref: int,
    *,
    grid: GridSpec = OCC3D,
    fill: int = OCC3D_VOCAB.free,
    extrude: tuple[int, ...] = GROUND,
) -> torch.Tensor:
    """(B, T, X, Y, Z) frames in frame ``ref``'s ego frame -> each frame t in its own, moved by
    ``traj`` (B, >= T, 3). Columns the reference grid does not cover take ``fill``, or continue the
    ``extrude`` classes of the nearest border column (motion-extrude's rule)."""
    b, t = occ_ref.shape[:2]
    check_traj(traj, max(t, ref + 1))
    t_in_ref = rebase_traj(traj.double(), ref)[:, :t]  # (B, T, 3): frame t in the reference frame
    out = warp_grid(occ_ref.flatten(0, 1), t_in_ref.flatten(0, 1), grid=grid, fill=fill, extrude=extrude)
    return out.reshape(occ_ref.shape)


def share_static(scene: torch.Tensor, ref: int, *, free: int = OCC3D_VOCAB.free,
                 dynamic: tuple[int, ...] = tuple(int(c) for c in OCC3D_DYNAMIC)) -> torch.Tensor:
    """(B, T, X, Y, Z) frames in one reference ego frame -> every frame with the static scene of
    frame ``ref`` and its own road users (the ``dynamic`` classes): the world does not move, so
    in a common frame only the traffic may differ between frames. Frame ``ref``'s own road users
    are removed from the others (free), so a car that drove on is not left behind."""
    dyn = torch.as_tensor(dynamic, dtype=scene.dtype, device=scene.device)
    base = scene[:, ref : ref + 1]
    still = torch.where(torch.isin(base, dyn), torch.full_like(base, free), base)  # (B, 1, X, Y, Z)
    moving = torch.isin(scene, dyn)
    return torch.where(moving, scene, still.expand_as(scene))
