"""Lift-Splat-Shoot view transform (Philion & Fidler, 2020) as BEVDet uses it.

Every image feature pixel predicts a distribution over ``D`` depth bins and ``C`` context
features; their outer product places C features at D points along the pixel's ray (the
frustum). The frustum points are moved to the ego frame with each camera's intrinsics and
sensor-to-ego pose and summed into the BEV cell below them ("voxel pooling" with z collapsed).

Pooling: the geometry (which BEV cell each frustum point falls in, and whether it falls inside
the grid) is computed in closed form once per batch from the calibrations, without gradients,
as one flat index per point; the features are then summed with a single ``index_add_`` into
a (B * X * Y, C) buffer. This is BEVPoolV2's idea (precomputed ranks, one reduction) in plain
torch: no per-point Python, no sorting, and it runs the same on CPU and GPU.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F


def frustum(feat_hw: tuple[int, int], image_wh: tuple[int, int], depths: Tensor) -> Tensor:
    """(D, h, w, 3) points (u * d, v * d, d): pixel centres of the feature map in input-image
    pixels, scaled by each bin's depth, ready for K^-1."""
    h, w = feat_hw
    sx, sy = image_wh[0] / w, image_wh[1] / h
    u = (torch.arange(w, dtype=depths.dtype, device=depths.device) + 0.5) * sx
    v = (torch.arange(h, dtype=depths.dtype, device=depths.device) + 0.5) * sy
    d = depths[:, None, None].expand(-1, h, w)
    uu = u[None, None, :].expand_as(d)
    vv = v[None, :, None].expand_as(d)
    return torch.stack([uu * d, vv * d, d], dim=-1)


@torch.no_grad()
def bev_indices(points_cam: Tensor, intrinsics: Tensor, sensor2ego: Tensor, *, bev_shape: tuple[int, int],
                range_min: tuple[float, float, float], range_max: tuple[float, float, float],
                cell: float) -> tuple[Tensor, Tensor]:
    """Flat BEV index (B*N*D*h*w,) of every frustum point and a validity mask.

    ``points_cam`` (D, h, w, 3) from :func:`frustum`; ``intrinsics`` (B, N, 3, 3),
    ``sensor2ego`` (B, N, 4, 4). Index = b * X * Y + ix * Y + iy (the grid's [x, y] layout);
    points outside the grid's x/y/z range are invalid.
    """
    b, n = intrinsics.shape[:2]
    kinv = torch.linalg.inv(intrinsics.double()).float()  # (B, N, 3, 3)
    rot = sensor2ego[..., :3, :3] @ kinv  # (B, N, 3, 3)
    pts = torch.einsum("bnij,dhwj->bndhwi", rot, points_cam) + sensor2ego[..., None, None, None, :3, 3]
    ix = torch.floor((pts[..., 0] - range_min[0]) / cell).long()
    iy = torch.floor((pts[..., 1] - range_min[1]) / cell).long()
    nx, ny = bev_shape
    z = pts[..., 2]
    valid = (ix >= 0) & (ix < nx) & (iy >= 0) & (iy < ny) & (z >= range_min[2]) & (z < range_max[2])
    batch = torch.arange(b, device=pts.device).view(b, 1, 1, 1, 1)
    flat = batch * (nx * ny) + ix.clamp(0, nx - 1) * ny + iy.clamp(0, ny - 1)
    return flat.reshape(-1), valid.reshape(-1)


def bev_pool(feats: Tensor, index: Tensor, valid: Tensor, batch: int, bev_shape: tuple[int, int]) -> Tensor:
    """Sum frustum features (P, C) into BEV cells: returns (B, C, X, Y)."""
    c = feats.shape[-1]
    out = feats.new_zeros(batch * bev_shape[0] * bev_shape[1], c)
    out.index_add_(0, index[valid], feats[valid])
    return out.view(batch, bev_shape[0], bev_shape[1], c).permute(0, 3, 1, 2).contiguous()


class LSSViewTransformer(nn.Module):
    """Image features (B, N, C_in, h, w) -> BEV features (B, C, X, Y) and depth logits."""

    def __init__(self, *, in_channels: int, context_channels: int, depth_bins: int, depth_min: float,
                 depth_max: float, bev_shape: tuple[int, int], range_min: tuple[float, float, float],
                 range_max: tuple[float, float, float], cell: float):
        super().__init__()
        self.d, self.c = depth_bins, context_channels
        step = (depth_max - depth_min) / depth_bins
        centres = depth_min + step * (torch.arange(depth_bins, dtype=torch.float32) + 0.5)
        self.register_buffer("depths", centres, persistent=False)
        self.depth_net = nn.Sequential(
            nn.Conv2d(in_channels, in_channels, 3, padding=1, bias=False), nn.BatchNorm2d(in_channels),
            nn.ReLU(inplace=True), nn.Conv2d(in_channels, depth_bins + context_channels, 1))
        self.bev_shape, self.range_min, self.range_max, self.cell = bev_shape, range_min, range_max, cell

    def forward(self, feats: Tensor, intrinsics: Tensor, sensor2ego: Tensor, image_wh: tuple[int, int],
                extra: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``extra`` (B*N, E, h, w): more per-pixel features lifted beside the context (the image
        class probabilities, when the model lifts them); the BEV then has C + E channels."""
        b, n, _, h, w = feats.shape
        x = self.depth_net(feats.flatten(0, 1))  # (B*N, D + C, h, w)
        depth_logits = x[:, : self.d]
        depth = depth_logits.softmax(dim=1)
        context = x[:, self.d:]
        if extra is not None:
            context = torch.cat([context, extra.to(context.dtype)], dim=1)
        c = context.shape[1]
        # (B*N, h, w, D, C) -> (B, N, D, h, w, C): C features at each depth bin of each pixel
        volume = torch.einsum("kdhw,kchw->kdhwc", depth, context).reshape(b, n, self.d, h, w, c)
        pts = frustum((h, w), image_wh, self.depths.float())
        index, valid = bev_indices(pts, intrinsics.float(), sensor2ego.float(), bev_shape=self.bev_shape,
                                   range_min=self.range_min, range_max=self.range_max, cell=self.cell)
        bev = bev_pool(volume.reshape(-1, c).float(), index, valid, b, self.bev_shape)
        return bev, depth_logits.reshape(b, n, self.d, h, w)


def depth_targets(depth: Tensor, stride: int, depth_min: float, step: float, bins: int) -> Tensor:
    """Per feature pixel, the bin of the nearest valid depth in its stride x stride patch
    (BEVDet's ``get_downsampled_gt_depth``): (B, N, H, W) metres -> (B, N, H/s, W/s) long, -1 where none."""
    b, n, hh, ww = depth.shape
    d = depth.reshape(b, n, hh // stride, stride, ww // stride, stride)
    d = torch.where(d > 0, d, torch.full_like(d, float("inf"))).amin(dim=(3, 5))
    idx = torch.floor((d - depth_min) / step)
    ok = torch.isfinite(d) & (idx >= 0) & (idx < bins)
    return torch.where(ok, idx, torch.full_like(idx, -1)).long()


def depth_loss(depth_logits: Tensor, target: Tensor) -> Tensor:
    """Cross-entropy of the depth distribution over pixels with a target (0 when there is none)."""
    logits = depth_logits.permute(0, 1, 3, 4, 2).reshape(-1, depth_logits.shape[2]).float()
    t = target.reshape(-1)
    ok = t >= 0
    if not bool(ok.any()):
        return logits.sum() * 0.0
    return F.cross_entropy(logits[ok], t[ok])
