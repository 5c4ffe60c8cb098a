"""Nearest-neighbour resampling of column grids between ego frames.

The one geometry behind ego-warp (:func:`occ4d.models.world.baselines.warp_grid`) and the
pose-aligned tokenizers (:mod:`occ4d.models.tokenizers.align`): every target column centre is
moved into the source frame and takes the source column it lands in.
"""

from __future__ import annotations

import torch

from occ4d.core.grid import OCC3D, GridSpec


def source_columns(pose: torch.Tensor, nx: int, ny: int, grid: GridSpec) -> tuple[torch.Tensor, ...]:
    """Where each column of the target frames comes from: for ``pose`` (N, 3) x, y [m], yaw [rad] of
    the target frame in the source frame, the source column indices (N, X, Y) of every target
    column centre (clamped into the grid) and whether that source lies inside the grid."""
    dev = pose.device
    vx, vy = grid.voxel_size[0], grid.voxel_size[1]
    cx = grid.range_min[0] + vx * (torch.arange(nx, device=dev, dtype=torch.float64) + 0.5)
    cy = grid.range_min[1] + vy * (torch.arange(ny, device=dev, dtype=torch.float64) + 0.5)
    qx, qy = torch.meshgrid(cx, cy, indexing="ij")
    c, s = torch.cos(pose[:, 2])[:, None, None], torch.sin(pose[:, 2])[:, None, None]
    px = c * qx - s * qy + pose[:, 0, None, None]
    py = s * qx + c * qy + pose[:, 1, None, None]
    ix = torch.floor((px - grid.range_min[0]) / vx).long()
    iy = torch.floor((py - grid.range_min[1]) / vy).long()
    inside = (ix >= 0) & (ix < nx) & (iy >= 0) & (iy < ny)
    return ix.clamp(0, nx - 1), iy.clamp(0, ny - 1), inside


def resample(values: torch.Tensor, pose: torch.Tensor, fill: torch.Tensor | float,
             grid: GridSpec = OCC3D) -> torch.Tensor:
    """Resample column data (N, X, Y, ...) into the frames ``pose`` (N, 3) names (the target
    frame in the source frame); columns whose source is outside the grid take ``fill`` (a scalar,
    or a tensor that broadcasts against the trailing dims). Differentiable in ``values``."""
    n, nx, ny = values.shape[:3]
    ix, iy, inside = source_columns(pose.to(values.device, torch.float64), nx, ny, grid)
    bi = torch.arange(n, device=values.device)[:, None, None].expand_as(ix)
    out = values[bi, ix, iy]
    inside = inside.reshape(*inside.shape, *([1] * (values.ndim - 3)))
    return torch.where(inside, out, torch.as_tensor(fill, dtype=values.dtype, device=values.device))
