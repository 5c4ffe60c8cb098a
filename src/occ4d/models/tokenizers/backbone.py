"""Convolutional encoder and decoder of the tokenizers, for 2D maps and (T, X, Y) volumes.

The layout is the taming-transformers / OccWorld ``Encoder2D``/``Decoder2D`` one: a 3x3 input
conv, per level ``num_res_blocks`` residual blocks (optional attention) and a strided
downsample, a middle block (res, attention, res), and GroupNorm-SiLU-conv out. With ``dims=3``
the same stack runs 3D convolutions over (T, X, Y) as OccSora's 4D VQ-VAE does, and each level
halves any subset of the axes (``factors``), so 32x200x200 -> 4x25x25 is three levels of (2,2,2).

``patch`` > 1 replaces the full-resolution 3x3 input conv by a non-overlapping patch embedding
(kernel = stride = patch, as VideoGPT/OccSora's first strided conv downsamples at once) and the
full-resolution output conv by a 1x1 conv plus depth-to-space; on CPU this is ~10x cheaper at
200x200, where a 3x3 conv over the Z*expansion = 128 folded channels dominates the cost.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from occ4d.models.layers import Downsample, ResBlock, SpatialAttention, Upsample, _conv, group_norm


def level_sizes(size: tuple[int, ...], factors: tuple[tuple[int, ...], ...]) -> list[tuple[int, ...]]:
    """Sizes at every level: ``size`` first, then after each downsample (stride 2, pad 1: ceil(n/2))."""
    sizes = [tuple(size)]
    for f in factors:
        sizes.append(tuple(-(-n // k) for n, k in zip(sizes[-1], f, strict=True)))
    return sizes


class ConvEncoder(nn.Module):
    """(B, C_in, *S) -> (B, z_channels, *S'); S' = S downsampled by ``factors`` level by level.

    ``channel_mult`` has one entry per level; ``factors`` one per downsample (len(mult) - 1).
    ``attn_levels`` lists the levels whose residual blocks are followed by attention.
    """

    def __init__(self, *, dims: int, in_channels: int, channels: int, channel_mult: tuple[int, ...],
                 factors: tuple[tuple[int, ...], ...], num_res_blocks: int, z_channels: int,
                 attn_levels: tuple[int, ...] = (), mid_attention: bool = True, dropout: float = 0.0,
                 patch: tuple[int, ...] | None = None):
        super().__init__()
        if len(factors) != len(channel_mult) - 1:
            raise ValueError(f"need {len(channel_mult) - 1} downsample factors, got {len(factors)}")
        patch = tuple(patch or (1,) * dims)
        if max(patch) > 1:
            conv = nn.Conv2d if dims == 2 else nn.Conv3d
            self.conv_in = conv(in_channels, channels, kernel_size=patch, stride=patch)
        else:
            self.conv_in = _conv(dims, in_channels, channels)
        self.levels = nn.ModuleList()
        c_in = channels
        for i, mult in enumerate(channel_mult):
            c_out = channels * mult
            level = nn.Module()
            level.blocks = nn.ModuleList(
                ResBlock(dims=dims, in_channels=c_in if j == 0 else c_out, out_channels=c_out,
                         dropout=dropout) for j in range(num_res_blocks))
            level.attn = nn.ModuleList(
                SpatialAttention(channels=c_out) for _ in range(num_res_blocks if i in attn_levels else 0))
            last = i == len(factors)
            level.down = None if last else Downsample(dims=dims, channels=c_out, factor=factors[i])
            self.levels.append(level)
            c_in = c_out
        self.mid = nn.ModuleList([
            ResBlock(dims=dims, in_channels=c_in, out_channels=c_in, dropout=dropout),
            SpatialAttention(channels=c_in) if mid_attention else nn.Identity(),
            ResBlock(dims=dims, in_channels=c_in, out_channels=c_in, dropout=dropout),
        ])
        self.norm_out = group_norm(c_in)
        self.conv_out = _conv(dims, c_in, z_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(self.conv_in.stride, tuple) and max(self.conv_in.stride) > 1:
            # zero-pad every axis up to a multiple of the patch (ceil division, as level_sizes)
            pad = [(-n) % k for n, k in zip(x.shape[2:], self.conv_in.stride, strict=True)]
            x = F.pad(x, [v for p in reversed(pad) for v in (0, p)])
        h = self.conv_in(x)  # (B, ch, *S)
        for level in self.levels:
            for j, block in enumerate(level.blocks):
                h = block(h)
                if len(level.attn):
                    h = level.attn[j](h)
            if level.down is not None:
                h = level.down(h)
        for block in self.mid:
            h = block(h)
        return self.conv_out(F.silu(self.norm_out(h)))  # (B, z, *S')


class ConvDecoder(nn.Module):
    """(B, z_channels, *S') -> (B, out_channels, *S): the encoder's mirror image.

    ``forward`` takes the sizes of every level (from :func:`level_sizes`) so that upsampling
    lands exactly on the encoder's sizes, odd ones included.
    """

    def __init__(self, *, dims: int, out_channels: int, channels: int, channel_mult: tuple[int, ...],
                 num_res_blocks: int, z_channels: int, attn_levels: tuple[int, ...] = (),
                 mid_attention: bool = True, dropout: float = 0.0, patch: tuple[int, ...] | None = None):
        super().__init__()
        self.patch = tuple(patch or (1,) * dims)
        c = channels * channel_mult[-1]
        self.conv_in = _conv(dims, z_channels, c)
        self.mid = nn.ModuleList([
            ResBlock(dims=dims, in_channels=c, out_channels=c, dropout=dropout),
            SpatialAttention(channels=c) if mid_attention else nn.Identity(),
            ResBlock(dims=dims, in_channels=c, out_channels=c, dropout=dropout),
        ])
        self.levels = nn.ModuleList()  # coarsest first
        for i in reversed(range(len(channel_mult))):
            c_out = channels * channel_mult[i]
            level = nn.Module()
            level.blocks = nn.ModuleList(
                ResBlock(dims=dims, in_channels=c if j == 0 else c_out, out_channels=c_out, dropout=dropout)
                for j in range(num_res_blocks))
            level.attn = nn.ModuleList(
                SpatialAttention(channels=c_out) for _ in range(num_res_blocks if i in attn_levels else 0))
            level.up = Upsample(dims=dims, channels=c_out) if i > 0 else None
            self.levels.append(level)
            c = c_out
        self.norm_out = group_norm(c)
        if max(self.patch) > 1:
            self.conv_out = _conv(dims, c, out_channels * math.prod(self.patch), kernel=1)
        else:
            self.conv_out = _conv(dims, c, out_channels)

    def forward(self, z: torch.Tensor, sizes: list[tuple[int, ...]],
                out_size: tuple[int, ...] | None = None) -> torch.Tensor:
        """``sizes``: level sizes after the patch embedding; ``out_size``: the size before it."""
        h = self.conv_in(z)  # (B, C, *S')
        for block in self.mid:
            h = block(h)
        targets = list(reversed(sizes[:-1]))  # finer sizes, coarsest level first
        for k, level in enumerate(self.levels):
            for j, block in enumerate(level.blocks):
                h = block(h)
                if len(level.attn):
                    h = level.attn[j](h)
            if level.up is not None:
                h = level.up(h, targets[k])
        h = self.conv_out(F.silu(self.norm_out(h)))  # (B, out * prod(patch), *S_patched)
        if max(self.patch) == 1:
            return h  # (B, out, *S)
        if len(self.patch) == 2:
            h = rearrange(h, "b (c p q) x y -> b c (x p) (y q)", p=self.patch[0], q=self.patch[1])
        else:
            h = rearrange(h, "b (c o p q) t x y -> b c (t o) (x p) (y q)",
                          o=self.patch[0], p=self.patch[1], q=self.patch[2])
        if out_size is not None:  # drop the padding rows a non-divisible size needed
            h = h[(slice(None), slice(None), *(slice(0, n) for n in out_size))]
        return h  # (B, out, *S)
