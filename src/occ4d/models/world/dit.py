"""A diffusion transformer over 4D latents (OccSora's line, built on DiT).

Latents ``(B, C, T, H, W)`` are cut into 3D patches ``(pt, ph, pw)`` by a strided Conv3d, get
fixed (t, x, y) sin-cos position embeddings, pass ``depth`` transformer blocks with adaLN-Zero
conditioning (Peebles & Xie 2023, §3.2) and are projected back to patches. The conditioning
vector of a token is the diffusion-time embedding plus the ego-trajectory embedding of the
token's temporal slot, so each moment of the clip is steered by the ego pose at that moment.

Optionally (``context=True``) the input also carries known latents and a 0/1 mask on extra
channels: the forecaster puts the past frames there, and the generator the frames already made
when it extends a clip with a sliding window. Known frames are information, never targets.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from occ4d.models.world.embed import TimestepEmbedding, TrajectoryEmbedding, sincos_3d


@dataclass(frozen=True)
class DiTConfig:
    """Shape of the latent the DiT works on and the transformer's size."""

    latent_channels: int = 8
    latent_size: tuple[int, int, int] = (4, 25, 25)  # (T, H, W) of the latent
    traj_frames: int = 4  # ego poses per clip; a multiple of the latent's T
    patch: tuple[int, int, int] = (1, 5, 5)
    hidden: int = 96
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 4.0
    context: bool = True
    traj_freqs: int = 8
    traj_scale: float = 64.0

    def __post_init__(self) -> None:
        if self.hidden % 6 or self.hidden % self.heads:
            raise ValueError(f"hidden ({self.hidden}) must be a multiple of 6 and of heads ({self.heads})")
        t = self.latent_size[0]
        if t % self.patch[0]:
            raise ValueError(f"latent frames {t} must be a multiple of the temporal patch {self.patch[0]}")
        if self.traj_frames % (t // self.patch[0]):
            raise ValueError(
                f"traj_frames {self.traj_frames} must be a multiple of the temporal tokens "
                f"{t // self.patch[0]}"
            )
        if min(self.patch) < 1 or self.depth < 1 or self.latent_channels < 1:
            raise ValueError("patch, depth and latent_channels must be positive")

    @property
    def grid_tokens(self) -> tuple[int, int, int]:
        """(T', H', W') token grid after padding H, W up to a multiple of the patch."""
        return tuple(-(-n // p) for n, p in zip(self.latent_size, self.patch, strict=True))  # type: ignore[return-value]


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale) + shift


class DiTBlock(nn.Module):
    """Pre-norm attention + MLP block with adaLN-Zero (the modulation starts at zero, so the
    block starts as the identity)."""

    def __init__(self, *, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, dim))
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))
        nn.init.zeros_(self.ada[1].weight)
        nn.init.zeros_(self.ada[1].bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        # x (B, T', S, D) tokens grouped by temporal slot; c (B, T', D) conditioning per slot.
        b, t, s, d = x.shape
        mod = self.ada(c)[:, :, None]  # (B, T', 1, 6D)
        sh1, sc1, g1, sh2, sc2, g2 = mod.chunk(6, dim=-1)
        h = modulate(self.norm1(x), sh1, sc1).reshape(b, t * s, d)
        q, k, v = rearrange(self.qkv(h), "b n (three h e) -> three b h n e", three=3, h=self.heads)
        a = F.scaled_dot_product_attention(q, k, v)
        a = self.proj(rearrange(a, "b h n e -> b n (h e)")).reshape(b, t, s, d)
        x = x + g1 * a
        return x + g2 * self.mlp(modulate(self.norm2(x), sh2, sc2))


class OccDiT(nn.Module):
    """The denoiser: ``forward(x, t, traj, drop_traj, context, context_mask) -> (B, C, T, H, W)``."""

    def __init__(self, config: DiTConfig):
        super().__init__()
        self.config = cfg = config
        c = cfg.latent_channels
        in_ch = 2 * c + 1 if cfg.context else c
        self.patch_embed = nn.Conv3d(in_ch, cfg.hidden, kernel_size=cfg.patch, stride=cfg.patch)
        tt, th, tw = cfg.grid_tokens
        self.register_buffer(
            "pos", sincos_3d(cfg.hidden, tt, th, tw).reshape(tt, th * tw, cfg.hidden), persistent=False
        )
        self.t_embed = TimestepEmbedding(dim=cfg.hidden)
        self.traj_embed = TrajectoryEmbedding(
            dim=cfg.hidden,
            frames_per_token=cfg.traj_frames // tt,
            num_freqs=cfg.traj_freqs,
            scale=cfg.traj_scale,
        )
        self.blocks = nn.ModuleList(
            DiTBlock(dim=cfg.hidden, heads=cfg.heads, mlp_ratio=cfg.mlp_ratio) for _ in range(cfg.depth)
        )
        self.norm_out = nn.LayerNorm(cfg.hidden, elementwise_affine=False, eps=1e-6)
        self.ada_out = nn.Sequential(nn.SiLU(), nn.Linear(cfg.hidden, 2 * cfg.hidden))
        self.head = nn.Linear(cfg.hidden, c * cfg.patch[0] * cfg.patch[1] * cfg.patch[2])
        for m in (self.ada_out[1], self.head):  # adaLN-Zero: the network starts by predicting 0
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        *,
        traj: torch.Tensor,
        drop_traj: torch.Tensor | None = None,
        context: torch.Tensor | None = None,
        context_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        cfg = self.config
        b, c, tl, hl, wl = x.shape  # (B, C, T, H, W)
        if (c, tl, hl, wl) != (cfg.latent_channels, *cfg.latent_size):
            raise ValueError(
                f"DiT built for latents {(cfg.latent_channels, *cfg.latent_size)}, got {(c, tl, hl, wl)}"
            )
        if cfg.context:
            if context is None:  # nothing known: an all-zero context with an all-zero mask
                context = torch.zeros_like(x)
                context_mask = torch.zeros(b, 1, tl, hl, wl, dtype=x.dtype, device=x.device)
            x = torch.cat([x, context * context_mask, context_mask.to(x.dtype)], dim=1)
        pt, ph, pw = cfg.patch
        pad_h, pad_w = (-hl) % ph, (-wl) % pw
        x = F.pad(x, (0, pad_w, 0, pad_h))
        h = self.patch_embed(x)  # (B, D, T', H', W')
        tt, th, tw = h.shape[2:]
        h = rearrange(h, "b d t x y -> b t (x y) d") + self.pos.to(h.dtype)  # (B, T', S, D)
        cond = self.t_embed(t)[:, None] + self.traj_embed(traj, drop_traj)  # (B, T', D)
        for block in self.blocks:
            h = block(h, cond)
        shift, scale = self.ada_out(cond)[:, :, None].chunk(2, dim=-1)
        h = self.head(modulate(self.norm_out(h), shift, scale))  # (B, T', S, pt*ph*pw*C)
        out = rearrange(
            h, "b t (x y) (pt ph pw c) -> b c (t pt) (x ph) (y pw)", x=th, y=tw, pt=pt, ph=ph, pw=pw
        )
        return out[:, :, :, :hl, :wl]
