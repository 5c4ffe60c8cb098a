"""The bridge between occupancy and the world models' latent space: a tokenizer plus normalisation.

Diffusion assumes data of roughly unit scale, so latents are standardised per channel with
statistics measured once on training clips (the role of Stable Diffusion's ``scale_factor``).
The statistics are buffers, saved with the model. For VQ tokenizers the diffused latent is the
quantised embedding (what the decoder reads), as in OccSora.
"""

from __future__ import annotations

import torch
from torch import nn

from occ4d.models.tokenizers import OccTokenizer


class LatentCodec(nn.Module):
    """Occupancy (B, T, X, Y, Z) <-> normalised latents (B, C, t, h, w) through ``tokenizer``.

    ``trainable=False`` (the frozen-tokenizer mode) keeps the tokenizer in eval mode with no
    gradients, so a VQ codebook's EMA statistics never move; ``trainable=True`` is the end-to-end
    mode, where the encoder learns together with the world model.
    """

    def __init__(self, tokenizer: OccTokenizer, *, trainable: bool = False, momentum: float = 0.05):
        super().__init__()
        self.tokenizer = tokenizer
        self.trainable = trainable
        self.momentum = momentum
        c = tokenizer.config.latent_dim
        self.register_buffer("mean", torch.zeros(c))
        self.register_buffer("std", torch.ones(c))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))
        if not trainable:
            tokenizer.requires_grad_(False)

    def train(self, mode: bool = True) -> LatentCodec:
        super().train(mode)
        if not self.trainable:
            self.tokenizer.eval()
        return self

    @property
    def channels(self) -> int:
        return self.tokenizer.config.latent_dim

    def latent_shape(self, frames: int) -> tuple[int, int, int]:
        return self.tokenizer.latent_shape(frames)

    @property
    def frames_per_latent(self) -> int:
        """Occupancy frames per latent frame (2^temporal_down for 4D tokenizers)."""
        return 2**self.tokenizer.config.temporal_down if self.tokenizer.config.backbone == "3d" else 1

    def _shape(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        view = (1, -1) + (1,) * (z.ndim - 2)
        return self.mean.reshape(view).to(z), self.std.reshape(view).to(z)

    @torch.no_grad()
    def fit(self, occ_batches) -> None:
        """Measure per-channel mean and std of the raw latents over an iterable of occupancy batches."""
        total, s1, s2 = 0, 0.0, 0.0
        for occ in occ_batches:
            z = self.tokenizer.encode(occ).latent.double()  # (B, C, t, h, w)
            z = z.transpose(0, 1).reshape(z.shape[1], -1)
            total += z.shape[1]
            s1 = s1 + z.sum(1)
            s2 = s2 + (z * z).sum(1)
        if total == 0:
            raise ValueError("no occupancy batches to measure latent statistics on")
        mean = s1 / total
        std = (s2 / total - mean * mean).clamp_min(1e-8).sqrt()
        self.mean.copy_(mean.float())
        self.std.copy_(std.float().clamp_min(1e-3))
        self.fitted.fill_(True)

    def normalise(self, latent: torch.Tensor) -> torch.Tensor:
        """Raw latent (B, C, ...) -> standardised latent.

        While an end-to-end model trains, the encoder moves, so the statistics follow it as an
        exponential moving average of the batch statistics (as batch norm's running stats do);
        otherwise the diffusion target would drift in scale.
        """
        if self.trainable and self.training:
            with torch.no_grad():
                z = latent.detach().double().transpose(0, 1).reshape(latent.shape[1], -1)
                self.mean.lerp_(z.mean(1).float(), self.momentum)
                self.std.lerp_(z.std(1).float().clamp_min(1e-3), self.momentum)
        mean, std = self._shape(latent)
        return (latent - mean) / std

    def encode(self, occ: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, X, Y, Z) ids -> (normalised latent (B, C, t, h, w), tokenizer's bottleneck loss)."""
        with torch.set_grad_enabled(self.trainable and torch.is_grad_enabled()):
            q = self.tokenizer.encode(occ)
        return self.normalise(q.latent), q.loss

    def decode_logits(self, z: torch.Tensor, frames: int | None = None) -> torch.Tensor:
        """Normalised latent -> per-voxel logits (B, T, X, Y, Z, classes)."""
        mean, std = self._shape(z)
        return self.tokenizer.decode(z * std + mean, frames)

    @torch.no_grad()
    def decode(self, z: torch.Tensor, frames: int | None = None) -> torch.Tensor:
        """Normalised latent -> class ids (B, T, X, Y, Z) uint8."""
        return self.decode_logits(z, frames).argmax(-1).to(torch.uint8)
