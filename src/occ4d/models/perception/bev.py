"""BEV side of the model: temporal fusion, the BEV encoder and FlashOcc's channel-to-height head.

- :func:`warp_bev` resamples a past frame's BEV features into the current ego frame
  (BEVDet4D's alignment), given the past-to-current ego transform.
- :class:`BEVEncoder` is a small ResNet over the BEV grid with an upsampling path that adds
  back each finer stage (BEVDet's ``CustomResNet`` + ``FPN_LSS``, reduced).
- :class:`ChannelToHeight` (FlashOcc, Yu et al., 2023) predicts Z x classes channels per BEV cell
  and reshapes them into the 3D grid: no 3D convolution anywhere. When the BEV grid is coarser
  than the output grid, a pixel shuffle restores the resolution.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import Tensor, nn
from torch.nn import functional as F

from occ4d.models.perception.backbone import BasicBlock, conv_bn


def warp_bev(bev: Tensor, past2current: Tensor, range_min: tuple[float, float], cell: float) -> Tensor:
    """Past BEV features (B, C, X, Y) seen from the current ego frame; ``past2current`` (B, 4, 4)
    maps past-ego points to current-ego points. Cells that fall outside the past grid are 0."""
    b, _, nx, ny = bev.shape
    dev = bev.device
    xs = range_min[0] + (torch.arange(nx, device=dev, dtype=torch.float32) + 0.5) * cell
    ys = range_min[1] + (torch.arange(ny, device=dev, dtype=torch.float32) + 0.5) * cell
    gx, gy = torch.meshgrid(xs, ys, indexing="ij")  # current-frame cell centres (X, Y)
    pts = torch.stack([gx, gy, torch.ones_like(gx)], dim=-1).reshape(1, -1, 3)  # (1, X*Y, 3) homogeneous 2D
    cur2past = torch.linalg.inv(past2current.double()).float()
    m = cur2past[:, [0, 1, 3]][:, :, [0, 1, 3]]  # planar (x, y, 1) part of the inverse
    q = pts @ m.transpose(1, 2)  # (B, X*Y, 3)
    # grid_sample: last dim is (W, H) = (y, x) normalised to [-1, 1] over the cell edges
    u = (q[..., 1] - range_min[1]) / (ny * cell) * 2 - 1
    v = (q[..., 0] - range_min[0]) / (nx * cell) * 2 - 1
    grid = torch.stack([u, v], dim=-1).view(b, nx, ny, 2)
    return F.grid_sample(bev, grid.to(bev.dtype), mode="bilinear", padding_mode="zeros", align_corners=False)


class TemporalFusion(nn.Module):
    """Concatenate the current BEV with ``history`` warped past BEVs and mix them back to C."""

    def __init__(self, *, channels: int, history: int):
        super().__init__()
        self.mix = conv_bn(channels * (history + 1), channels, 3)

    def forward(self, bevs: list[Tensor]) -> Tensor:
        return self.mix(torch.cat(bevs, dim=1))


class BEVEncoder(nn.Module):
    """(B, C_in, X, Y) -> (B, C_out, X, Y): strided residual stages, then top-down upsampling."""

    def __init__(self, *, in_channels: int, channels: tuple[int, ...], out_channels: int):
        super().__init__()
        stages, cin = [], in_channels
        for c in channels:
            stages.append(nn.Sequential(BasicBlock(cin, c, stride=2), BasicBlock(c, c)))
            cin = c
        self.stages = nn.ModuleList(stages)
        skips = (in_channels, *channels[:-1])
        self.up = nn.ModuleList(conv_bn(channels[i] + skips[i], skips[i] if i else out_channels, 3)
                                for i in range(len(channels)))

    def forward(self, x: Tensor) -> Tensor:
        feats = [x]
        for stage in self.stages:
            feats.append(stage(feats[-1]))
        y = feats[-1]
        for i in range(len(self.stages) - 1, -1, -1):
            skip = feats[i]
            y = F.interpolate(y, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            y = self.up[i](torch.cat([y, skip], dim=1))
        return y


class ChannelToHeight(nn.Module):
    """BEV features (B, C, X', Y') -> class logits (B, classes, X, Y, Z) with X = X' * upsample.

    With ``flow``, :meth:`flow` gives each output column's (vx, vy), (B, 2, X, Y), from the same
    features: objects move as rigid columns, so one velocity per column is what the grid needs."""

    def __init__(self, *, in_channels: int, channels: int, grid_z: int, num_classes: int, upsample: int,
                 flow: bool = False):
        super().__init__()
        self.z, self.k, self.r = grid_z, num_classes, upsample
        self.body = conv_bn(in_channels, channels, 3)
        self.out = nn.Conv2d(channels, grid_z * num_classes * upsample * upsample, 1)
        self.flow_out = (nn.Sequential(conv_bn(in_channels, channels, 3),
                                       nn.Conv2d(channels, 2 * upsample ** 2, 1)) if flow else None)

    def forward(self, bev: Tensor) -> Tensor:
        x = self.out(self.body(bev))  # (B, Z*K*r*r, X', Y')
        if self.r > 1:
            x = F.pixel_shuffle(x, self.r)  # (B, Z*K, X, Y)
        return rearrange(x, "b (z k) x y -> b k x y z", z=self.z, k=self.k)

    def flow(self, bev: Tensor) -> Tensor:
        """(B, 2, X, Y) column velocities in m/s (needs ``flow=True``)."""
        if self.flow_out is None:
            raise ValueError("this head was built without a flow branch")
        x = self.flow_out(bev)
        return F.pixel_shuffle(x, self.r) if self.r > 1 else x
