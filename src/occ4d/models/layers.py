"""Shared convolutional blocks: residual blocks, attention, resampling for 2D and 3D feature maps.

The 2D blocks follow the taming-transformers encoder/decoder that OccWorld's VAE reuses
(GroupNorm + SiLU + 3x3 conv, a 1x1 shortcut when widths differ, single-head spatial attention).
The 3D blocks are their (T, X, Y) counterparts used by the 4D tokenizers (OccSora's design).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with 32 groups, or fewer for narrow layers (OccWorld's ``Normalize``)."""
    groups = 32 if channels % 32 == 0 else max(g for g in (16, 8, 4, 2, 1) if channels % g == 0)
    return nn.GroupNorm(num_groups=groups, num_channels=channels, eps=1e-6, affine=True)


def _conv(dims: int, c_in: int, c_out: int, kernel: int = 3, stride: int | tuple[int, ...] = 1) -> nn.Module:
    conv = nn.Conv2d if dims == 2 else nn.Conv3d
    return conv(c_in, c_out, kernel_size=kernel, stride=stride, padding=kernel // 2)


class ResBlock(nn.Module):
    """Pre-activation residual block: (GN, SiLU, conv3) x 2 plus a 1x1 shortcut if widths differ.

    ``dims`` is 2 for (B, C, X, Y) maps and 3 for (B, C, T, X, Y) volumes.
    """

    def __init__(self, *, dims: int, in_channels: int, out_channels: int, dropout: float = 0.0):
        super().__init__()
        self.norm1 = group_norm(in_channels)
        self.conv1 = _conv(dims, in_channels, out_channels)
        self.norm2 = group_norm(out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = _conv(dims, out_channels, out_channels)
        same = in_channels == out_channels
        self.shortcut = nn.Identity() if same else _conv(dims, in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.shortcut(x) + h


class SpatialAttention(nn.Module):
    """Single-head self-attention over every position of a 2D map or 3D volume, residual."""

    def __init__(self, *, channels: int):
        super().__init__()
        self.norm = group_norm(channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        h = rearrange(self.norm(x), "b c ... -> b (...) c")  # (B, N, C)
        q, k, v = self.qkv(h).chunk(3, dim=-1)
        h = F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None])[:, 0]  # (B, N, C)
        h = rearrange(self.proj(h), "b n c -> b c n").reshape(shape)
        return x + h


class Downsample(nn.Module):
    """Strided 3x3 convolution. ``factor`` is per spatial axis; 1 keeps an axis (3D only)."""

    def __init__(self, *, dims: int, channels: int, factor: tuple[int, ...]):
        super().__init__()
        if len(factor) != dims or any(f not in (1, 2) for f in factor):
            raise ValueError(f"downsample factor must be {dims} values of 1 or 2, got {factor}")
        self.conv = _conv(dims, channels, channels, 3, stride=tuple(factor))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Nearest-neighbour upsampling to an explicit size, then a 3x3 convolution.

    Taking the target size (recorded by the encoder) rather than a factor lets odd sizes such as
    25 -> 50 -> 100 -> 200 or 25 -> 13 -> 25 round-trip exactly (OccWorld passes ``shapes``).
    """

    def __init__(self, *, dims: int, channels: int):
        super().__init__()
        self.conv = _conv(dims, channels, channels)

    def forward(self, x: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
        return self.conv(F.interpolate(x, size=tuple(size), mode="nearest"))
