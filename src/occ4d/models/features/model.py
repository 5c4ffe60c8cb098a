"""occ4d's occupancy feature extractor, for Fréchet distance and precision/recall of generated scenes.

**What it is (version ``v1``).** A small convolutional autoencoder in the design of UniScene's
``Autoencoder_2D`` (PROTOCOLS §3.10): each voxel's class is embedded in ``embed`` channels, the
Z cells are folded into the channel axis, and ``levels`` stride-2 3x3 convolutions (GroupNorm,
SiLU) take the 200x200 bird's-eye grid down to ``ceil(200 / 2^levels)`` cells; a global average
pool and a linear layer give a ``dim``-dimensional feature per frame. A mirrored decoder
reconstructs the per-voxel classes from the pooled feature alone (broadcast back to the coarse
grid), so the feature must summarise the whole scene layout. It is trained on the synthetic
world with the training engine (``occ4d train features --preset v1 --data DIR --out RUN``).

**How to use it.** :func:`frame_features` maps (B, X, Y, Z) frames to (B, dim) features;
:func:`clip_features` maps (B, T, X, Y, Z) clips to per-frame features (B*T, dim). The figures
are comparable only between runs that use the same extractor checkpoint: report its
:func:`extractor_name` (version plus a hash of its weights) next to every number. These are not
image FID: no Inception network is involved.

The feature width is kept small (256 by default, UniScene uses 2048) so that Fréchet distances
over a few hundred generated frames are not dominated by rank-deficient covariance estimates.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

FEATURE_VERSION = "v1"


@dataclass(frozen=True)
class FeatureConfig:
    version: str = FEATURE_VERSION
    grid: tuple[int, int, int] = (200, 200, 16)
    num_classes: int = 18
    embed: int = 4
    channels: tuple[int, ...] = (32, 64, 128, 128, 256, 256)  # one stride-2 level each
    dim: int = 256
    train_crop: int = 0  # unused by v1; kept 0 so every frame is seen whole

    def __post_init__(self) -> None:
        if self.version != FEATURE_VERSION:
            raise ValueError(f"this occ4d knows feature extractor {FEATURE_VERSION}, not {self.version!r}")
        if not self.channels or min(self.channels) < 1 or self.dim < 1 or self.embed < 1:
            raise ValueError("channels, dim and embed must be positive")


def _norm(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(8 if c % 8 == 0 else 1, c)


class OccFeatureExtractor(nn.Module):
    """``features(occ (B, X, Y, Z)) -> (B, dim)``; ``forward`` returns reconstruction logits."""

    def __init__(self, config: FeatureConfig):
        super().__init__()
        self.config = cfg = config
        x, y, z = cfg.grid
        self.class_embed = nn.Embedding(cfg.num_classes, cfg.embed)
        enc, c = [], z * cfg.embed
        for c_out in cfg.channels:
            enc += [nn.Conv2d(c, c_out, 3, stride=2, padding=1), _norm(c_out), nn.SiLU()]
            c = c_out
        self.encoder = nn.Sequential(*enc)
        self.to_feature = nn.Linear(c, cfg.dim)
        self.from_feature = nn.Linear(cfg.dim, c)
        dec = []
        for c_out in reversed((z * cfg.embed,) + cfg.channels[:-1]):
            dec += [
                nn.Upsample(scale_factor=2, mode="nearest"),
                nn.Conv2d(c, c_out, 3, padding=1),
                _norm(c_out),
                nn.SiLU(),
            ]
            c = c_out
        self.decoder = nn.Sequential(*dec[:-2])  # the last conv outputs logits-embeddings, no norm
        cx, cy = x, y
        for _ in cfg.channels:  # stride 2, padding 1: ceil(n / 2)
            cx, cy = -(-cx // 2), -(-cy // 2)
        self.coarse = (cx, cy)

    def features(self, occ: torch.Tensor) -> torch.Tensor:
        """(B, X, Y, Z) class ids -> (B, dim) float32."""
        h = self.class_embed(occ.long())  # (B, X, Y, Z, E)
        h = rearrange(h, "b x y z e -> b (z e) x y")
        h = self.encoder(h)  # (B, C, x', y')
        return self.to_feature(h.mean(dim=(2, 3)))

    def forward(self, occ: torch.Tensor) -> torch.Tensor:
        """(B, X, Y, Z) -> per-voxel class logits (B, X, Y, Z, classes), through the feature only."""
        b, x, y, z = occ.shape
        f = self.features(occ)
        h = self.from_feature(f)[:, :, None, None].expand(-1, -1, *self.coarse)
        h = self.decoder(h)[:, :, :x, :y]  # (B, Z*E, X, Y)
        h = rearrange(h, "b (z e) x y -> b x y z e", z=z)
        return h @ self.class_embed.weight.t()


def feature_loss(
    model: nn.Module, occ: torch.Tensor, num_classes: int
) -> tuple[torch.Tensor, dict[str, float]]:
    """Reconstruction cross-entropy of frames (B, X, Y, Z) through the pooled feature."""
    logits = model(occ)
    ce = F.cross_entropy(logits.reshape(-1, num_classes).float(), occ.long().reshape(-1))
    return ce, {"ce": float(ce.detach())}


@torch.no_grad()
def frame_features(model: OccFeatureExtractor, occ: torch.Tensor, batch: int = 8) -> torch.Tensor:
    """(N, X, Y, Z) frames -> (N, dim) features, evaluated ``batch`` frames at a time."""
    model.eval()
    return torch.cat([model.features(occ[i : i + batch]) for i in range(0, occ.shape[0], batch)])


def clip_features(model: OccFeatureExtractor, clips: torch.Tensor) -> torch.Tensor:
    """(B, T, X, Y, Z) clips -> per-frame features (B*T, dim)."""
    return frame_features(model, clips.flatten(0, 1))


def extractor_name(model: OccFeatureExtractor) -> str:
    """``occ4d-feat-v1@<first 10 hex of the SHA-256 of its weights>``: name it with every figure."""
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return f"occ4d-feat-{model.config.version}@{h.hexdigest()[:10]}"
