"""Embeddings shared by the world models: diffusion time, ego trajectory and (t, x, y) positions.

- Diffusion time: the sinusoidal embedding of DDPM/DiT followed by a two-layer MLP.
- Ego trajectory: per frame (x, y, yaw) -> Fourier features (DOME's pose encoder: sin/cos of the
  position at geometric frequencies, plus sin/cos of yaw) -> MLP. Frames that share a temporal
  latent (4D tokenizers compress time) are concatenated before the MLP, so each temporal token
  sees its own frames' poses in order. A learned null embedding stands in for a dropped
  condition (classifier-free guidance).
- Positions: fixed 3D sin-cos embeddings, a third of the width each for t, x and y (the 2D
  scheme of MAE/DiT extended by one axis, as OccSora does).
"""

from __future__ import annotations

import math

import torch
from torch import nn


def sincos_1d(dim: int, positions: torch.Tensor) -> torch.Tensor:
    """(N,) positions -> (N, dim) [sin | cos] at frequencies 1 / 10000^(2i/dim)."""
    if dim % 2:
        raise ValueError(f"sin-cos embedding width must be even, got {dim}")
    omega = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim / 2))
    angles = positions.double()[:, None] * omega[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1).float()


def sincos_3d(dim: int, t: int, h: int, w: int) -> torch.Tensor:
    """(t*h*w, dim) fixed position embedding, tokens ordered t-major then x then y."""
    if dim % 6:
        raise ValueError(f"3D sin-cos embedding width must be a multiple of 6, got {dim}")
    d = dim // 3
    gt, gh, gw = torch.meshgrid(torch.arange(t), torch.arange(h), torch.arange(w), indexing="ij")
    return torch.cat([sincos_1d(d, gt.flatten()), sincos_1d(d, gh.flatten()), sincos_1d(d, gw.flatten())], 1)


class TimestepEmbedding(nn.Module):
    """Diffusion step t (B,) -> (B, dim) (DiT's ``TimestepEmbedder``)."""

    def __init__(self, *, dim: int, freq_dim: int = 256, max_period: float = 10000.0):
        super().__init__()
        self.freq_dim, self.max_period = freq_dim, max_period
        self.mlp = nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.freq_dim // 2
        freqs = torch.exp(-math.log(self.max_period) * torch.arange(half, device=t.device) / half)
        args = t.float()[:, None] * freqs[None]
        return self.mlp(torch.cat([args.cos(), args.sin()], dim=-1))


def fourier_pose(traj: torch.Tensor, num_freqs: int, scale: float) -> torch.Tensor:
    """(..., 3) x, y [m], yaw [rad] -> (..., 4 * num_freqs + 2) Fourier features.

    Positions are divided by ``scale`` (metres) and taken at frequencies pi * 2^k, k < num_freqs,
    so the lowest frequency resolves the whole ``scale`` range and the highest a few centimetres.
    """
    xy = traj[..., :2] / scale
    freqs = math.pi * 2.0 ** torch.arange(num_freqs, device=traj.device, dtype=traj.dtype)
    ang = xy[..., None] * freqs  # (..., 2, F)
    feats = torch.cat([ang.sin(), ang.cos()], dim=-1).flatten(-2)
    yaw = traj[..., 2:3]
    return torch.cat([feats, yaw.sin(), yaw.cos()], dim=-1)


class TrajectoryEmbedding(nn.Module):
    """Ego trajectory (B, F, 3) -> per temporal token (B, T', dim), F = T' * frames_per_token.

    ``drop`` (B,) bool replaces the embedding by the learned null condition for those examples.
    """

    def __init__(self, *, dim: int, frames_per_token: int = 1, num_freqs: int = 8, scale: float = 64.0):
        super().__init__()
        self.frames_per_token, self.num_freqs, self.scale = frames_per_token, num_freqs, scale
        in_dim = frames_per_token * (4 * num_freqs + 2)
        self.mlp = nn.Sequential(nn.Linear(in_dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.null = nn.Parameter(torch.zeros(dim))

    def forward(self, traj: torch.Tensor, drop: torch.Tensor | None = None) -> torch.Tensor:
        b, f, _ = traj.shape
        if f % self.frames_per_token:
            raise ValueError(f"{f} trajectory frames do not split into groups of {self.frames_per_token}")
        feats = fourier_pose(traj.float(), self.num_freqs, self.scale)  # (B, F, E)
        feats = feats.reshape(b, f // self.frames_per_token, -1)  # (B, T', g * E)
        emb = self.mlp(feats)
        if drop is not None:
            emb = torch.where(drop[:, None, None], self.null.to(emb.dtype).expand_as(emb), emb)
        return emb


def rebase_traj(traj: torch.Tensor, ref: int) -> torch.Tensor:
    """(B, F, 3) x, y, yaw in some frame -> the same poses in the frame of row ``ref``."""
    d = traj[..., :2] - traj[:, ref : ref + 1, :2]
    yaw0 = traj[:, ref : ref + 1, 2]
    c, s = torch.cos(yaw0), torch.sin(yaw0)
    x = c * d[..., 0] + s * d[..., 1]
    y = -s * d[..., 0] + c * d[..., 1]
    yaw = torch.atan2(torch.sin(traj[..., 2] - yaw0), torch.cos(traj[..., 2] - yaw0))
    return torch.stack([x, y, yaw], dim=-1)


def extend_traj(traj: torch.Tensor, frames: int) -> torch.Tensor:
    """Extrapolate (B, F, 3) to ``frames`` rows at the last step's constant velocity and turn rate."""
    if traj.shape[1] >= frames:
        return traj[:, :frames]
    if traj.shape[1] < 2:
        return torch.cat([traj, traj[:, -1:].expand(-1, frames - traj.shape[1], -1)], dim=1)
    rows = [traj]
    step = rebase_traj(traj[:, -2:], 0)[:, 1]  # last motion in the previous frame's own frame
    last = traj[:, -1]
    for _ in range(frames - traj.shape[1]):
        c, s = torch.cos(last[:, 2]), torch.sin(last[:, 2])
        nxt = torch.stack(
            [
                last[:, 0] + c * step[:, 0] - s * step[:, 1],
                last[:, 1] + s * step[:, 0] + c * step[:, 1],
                last[:, 2] + step[:, 2],
            ],
            dim=-1,
        )
        rows.append(nxt[:, None])
        last = nxt
    return torch.cat(rows, dim=1)
