"""Forecasting baselines that learn nothing: copy the last frame, and warp it along the ego path.

Both share the forecasters' call ``forecast(past_occ, traj) -> (B, future, X, Y, Z)`` so the
evaluation treats every model the same way.

Ego-warp assumes a static world: the future frame at ego pose ``P_k = (x, y, yaw)`` (expressed
in the current frame, as :class:`~occ4d.core.Trajectory` rows are) sees the current frame's
voxels moved into its own ego frame. Each output voxel centre ``q`` (in frame k) maps to
``p = R(yaw) q + (x, y)`` in the current frame and takes the label of the voxel containing
``p`` (nearest-neighbour resampling, heights unchanged); voxels whose source lies outside the
grid become free, since nothing is known about them.

``warp_grid(..., extrude=classes)`` instead lets those voxels copy the listed classes (the ground:
driveable surface, other flat, sidewalk, terrain) from the nearest border column of the source
grid (the source index clamped to the grid). Moving forward, that continues the road, its
sidewalks and verges straight ahead into the area entering the grid; motion-warp offers it
(``MotionConfig.extrude``).
"""

from __future__ import annotations

import torch
from torch import nn

from occ4d.core.grid import OCC3D, GridSpec
from occ4d.core.vocab import OCC3D_VOCAB, Vocabulary
from occ4d.models.columns import source_columns


def warp_grid(
    occ: torch.Tensor,
    pose: torch.Tensor,
    *,
    grid: GridSpec = OCC3D,
    fill: int = OCC3D_VOCAB.free,
    extrude: tuple[int, ...] = (),
) -> torch.Tensor:
    """Resample label grids into another ego frame.

    Args:
        occ: (B, X, Y, Z) labels in the source frame.
        pose: (B, 3) x, y [m], yaw [rad] of the target frame expressed in the source frame.
        grid: geometry of the grid (voxel size and minimum corner in x and y are used).
        fill: label for voxels whose source is outside the grid.
        extrude: classes that voxels whose source is outside the grid copy from the nearest border
            column instead (any other class there becomes ``fill``).

    Returns:
        (B, X, Y, Z) labels in the target frame, same dtype as ``occ``.
    """
    b, nx, ny, _ = occ.shape
    dev = occ.device
    ix, iy, inside = source_columns(pose.to(dev, torch.float64), nx, ny, grid)
    bi = torch.arange(b, device=dev)[:, None, None].expand_as(ix)
    out = occ[bi, ix, iy]  # (B, X, Y, Z)
    outside = torch.full_like(out, fill)
    if extrude:
        keep = torch.isin(out, torch.as_tensor(extrude, dtype=out.dtype, device=dev))
        outside = torch.where(keep, out, outside)
    return torch.where(inside[..., None], out, outside)


def unseen_columns(traj: torch.Tensor, past: int, *, grid: GridSpec = OCC3D) -> torch.Tensor:
    """The columns of each future frame that the current frame never saw.

    Args:
        traj: (B, past + future, 3) poses relative to the current frame (row ``past - 1``).
        past: history frames in ``traj``.

    Returns:
        (B, future, X, Y) bool, True where the column's centre lies outside the current frame's
        grid: the area entering the grid, where a forecast can only guess (no history frame sees
        ahead of the current one while the ego drives forward).
    """
    if traj.ndim != 3 or traj.shape[-1] != 3 or traj.shape[1] <= past:
        raise ValueError(f"traj must be (B, more than {past}, 3), got {tuple(traj.shape)}")
    b, n = traj.shape[:2]
    ones = torch.ones(b, *grid.shape[:2], 1, dtype=torch.uint8, device=traj.device)
    seen = [warp_grid(ones, traj[:, k], grid=grid, fill=0)[..., 0] for k in range(past, n)]
    return torch.stack(seen, dim=1) == 0


class CopyLast(nn.Module):
    """Predict that every future frame equals the current one (the "copy & paste" row of COME)."""

    def __init__(self, *, past: int = 4, future: int = 6):
        super().__init__()
        self.past, self.future = past, future

    def forecast(self, past_occ: torch.Tensor, traj: torch.Tensor | None = None, **_) -> torch.Tensor:
        return past_occ[:, -1:].expand(-1, self.future, *past_occ.shape[2:]).clone()


class EgoWarp(nn.Module):
    """Warp the current frame to each future ego pose of the given trajectory (static world)."""

    def __init__(
        self, *, past: int = 4, future: int = 6, grid: GridSpec = OCC3D, vocab: Vocabulary = OCC3D_VOCAB
    ):
        super().__init__()
        self.past, self.future, self.grid, self.free = past, future, grid, vocab.free

    def forecast(self, past_occ: torch.Tensor, traj: torch.Tensor, **_) -> torch.Tensor:
        """past_occ (B, past, X, Y, Z); traj (B, past + future, 3) relative to the current frame."""
        if traj.shape[1] != self.past + self.future:
            raise ValueError(f"need {self.past + self.future} trajectory rows, got {traj.shape[1]}")
        last = past_occ[:, -1]
        frames = [
            warp_grid(last, traj[:, self.past + k], grid=self.grid, fill=self.free)
            for k in range(self.future)
        ]
        return torch.stack(frames, dim=1)
