"""The bridge between occupancy and the world models' latent space: a tokenizer plus normalisation.

Diffusion assumes data of roughly unit scale, so latents are standardised per channel with
statistics measured once on training clips (the role of Stable Diffusion's ``scale_factor``).
The statistics are buffers, saved with the model. For VQ tokenizers the diffused latent is the
quantised embedding (what the decoder reads), as in OccSora.
"""

from __future__ import annotations

import torch
from einops import rearrange
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
        if tokenizer.config.align_poses:
            raise ValueError("the world models do not pass poses to their tokenizer yet: a pose-aligned "
                             "(align_poses) tokenizer cannot serve as their codec")
        self.tokenizer = tokenizer
        self.trainable = trainable
        self.momentum = momentum
        c = tokenizer.config.latent_dim
        self.register_buffer("mean", torch.zeros(c))
        self.register_buffer("std", torch.ones(c))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))
        if not trainable:
            tokenizer.requires_grad_(False)
        # Frozen per-frame tokenizers give each frame the same latent every time, so training
        # encodes each frame once: frame key -> token ids (VQ/FSQ) or raw latent (KL), on the CPU.
        self._cache: dict[str, torch.Tensor] = {}

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
        """Occupancy frames per latent frame (2^temporal_down x patch_t for 4D tokenizers, fold_frames
        for folded ones)."""
        return self.tokenizer.config.frames_per_latent

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

    @property
    def cacheable(self) -> bool:
        return not self.trainable and self.tokenizer.config.frames_per_latent == 1

    def _raw_cached(
        self, occ: torch.Tensor, keys: list[list[str]]
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Raw latents (B, C, T, h, w) and ids (B, T, h, w) or None, encoding only unseen frames."""
        b, t = occ.shape[:2]
        flat = [k for row in keys for k in row]
        if len(flat) != b * t:
            raise ValueError(f"need one key per frame ({b} x {t}), got {len(flat)}")
        missing = [i for i, k in enumerate(flat) if k not in self._cache]
        if missing:
            frames = occ.flatten(0, 1)[missing][:, None]  # (M, 1, X, Y, Z)
            with torch.no_grad():
                q = self.tokenizer.encode(frames)
            store = q.indices[:, 0] if q.indices is not None else q.latent[:, :, 0]
            for j, i in enumerate(missing):
                self._cache[flat[i]] = store[j].detach().cpu()
        stored = torch.stack([self._cache[k] for k in flat]).to(occ.device)
        if stored.dtype in (torch.int64, torch.int32):
            ids = stored.reshape(b, t, *stored.shape[1:])
            return self.tokenizer.quantizer.lookup(ids), ids
        return rearrange(stored.reshape(b, t, *stored.shape[1:]), "b t c h w -> b c t h w"), None

    def encode(
        self, occ: torch.Tensor, keys: list[list[str]] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, X, Y, Z) ids -> (normalised latent (B, C, t, h, w), tokenizer's bottleneck loss).

        ``keys`` (one unique string per frame, e.g. the sample tokens) lets a frozen per-frame
        tokenizer reuse latents it has already computed.
        """
        if keys is not None and self.cacheable:
            raw, _ = self._raw_cached(occ, keys)
            return self.normalise(raw), raw.new_zeros(())
        with torch.set_grad_enabled(self.trainable and torch.is_grad_enabled()):
            q = self.tokenizer.encode(occ)
        return self.normalise(q.latent), q.loss

    def token_ids(self, occ: torch.Tensor, keys: list[list[str]] | None = None) -> torch.Tensor:
        """(B, T, X, Y, Z) -> token ids (B, T, h, w) of a frozen VQ/FSQ per-frame tokenizer."""
        if keys is not None and self.cacheable:
            _, ids = self._raw_cached(occ, keys)
            if ids is not None:
                return ids
        with torch.no_grad():
            return self.tokenizer.encode(occ).indices

    def decode_logits(self, z: torch.Tensor, frames: int | None = None) -> torch.Tensor:
        """Normalised latent -> per-voxel logits (B, T, X, Y, Z, classes)."""
        mean, std = self._shape(z)
        return self.tokenizer.decode(z * std + mean, frames)

    @torch.no_grad()
    def decode(self, z: torch.Tensor, frames: int | None = None) -> torch.Tensor:
        """Normalised latent -> class ids (B, T, X, Y, Z) uint8."""
        return self.decode_logits(z, frames).argmax(-1).to(torch.uint8)
