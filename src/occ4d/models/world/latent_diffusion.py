"""What the forecaster and the generator share: a DiT that denoises a codec's clip latents.

Both train the same way (EDM2's ``EDM2Loss`` role, here :func:`occ4d.diffusion.diffusion_loss`):
encode the clip to normalised latents (B, C, t, h, w), give the DiT some latent frames as known
context with a 0/1 mask, and score the denoising of the rest. :meth:`LatentDiffusion.loss`
writes that once; a subclass says only what differs:

- :meth:`~LatentDiffusion._encode`: the latents and any loss terms the encoding adds (the
  forecaster's end-to-end mode adds the tokenizer's reconstruction loss);
- :meth:`~LatentDiffusion._condition`: the trajectory the DiT sees, the context, its mask and
  the loss weight (the forecaster: the past frames; the generator: a random known prefix and
  the trajectory rebased to the first frame);
- :meth:`~LatentDiffusion._extra_terms`: loss terms computed after the diffusion step (the
  forecaster's refiner).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from occ4d.diffusion import NoiseSchedule, diffusion_loss
from occ4d.models.world.dit import OccDiT
from occ4d.models.world.latents import LatentCodec


class Term(NamedTuple):
    """A loss term: ``weight * value`` joins the loss; ``logged`` is what the stats report."""

    weight: float
    value: torch.Tensor
    logged: torch.Tensor


class Conditioning(NamedTuple):
    """What the DiT is given besides the noisy latents, and where the loss counts."""

    traj: torch.Tensor  # (B, T, 3) float
    context: torch.Tensor | None  # (B, C, t, h, w) known latents, or None
    mask: torch.Tensor | None  # (B, 1, t, h, w) 1 on the known frames, or None
    weight: torch.Tensor | None  # broadcastable to the latents: 0 where nothing is learned


class LatentDiffusion(nn.Module):
    """Codec + DiT + noise schedule. ``config`` has ``dit``, ``diffusion`` and ``frames``.

    ``forward`` is the training loss, so that a DDP wrapper sees it as the forward pass.
    """

    def __init__(self, config, codec: LatentCodec):
        super().__init__()
        self.config = config
        self.codec = codec
        self.dit = OccDiT(config.dit)
        self.schedule = NoiseSchedule(config.diffusion)
        expected = (codec.channels, *codec.latent_shape(config.frames))
        got = (config.dit.latent_channels, *config.dit.latent_size)
        if expected != got:
            raise ValueError(
                f"the tokenizer makes latents {expected} for {config.frames} frames; the DiT expects {got}"
            )

    def _denoiser(self, traj: torch.Tensor, context: torch.Tensor | None, mask: torch.Tensor | None):
        """The network as the diffusion loss and the samplers call it: ``(x, t, drop_traj)``."""

        def den(x, t, drop):
            return self.dit(x, t, traj=traj, drop_traj=drop, context=context, context_mask=mask)

        return den

    def forward(
        self, occ: torch.Tensor, traj: torch.Tensor, generator: torch.Generator | None = None, keys=None
    ):
        """The training loss (so that a DDP wrapper sees it as the forward pass)."""
        return self.loss(occ, traj, generator, keys)

    def loss(
        self, occ: torch.Tensor, traj: torch.Tensor, generator: torch.Generator, keys=None
    ) -> tuple[torch.Tensor, dict]:
        """occ (B, T, X, Y, Z) ids, traj (B, T, 3) -> (loss, {name: float}).

        ``keys`` (B lists of one string per frame) let a frozen tokenizer reuse cached latents.
        Every random draw comes from ``generator``, in a fixed order: the conditioning's, the
        diffusion loss's, then the extra terms'.
        """
        z, terms = self._encode(occ, keys)  # (B, C, t, h, w)
        cond = self._condition(z, traj, generator)
        out = diffusion_loss(
            self._denoiser(cond.traj, cond.context, cond.mask),
            z.detach(),
            self.schedule,
            generator=generator,
            weight=cond.weight,
        )
        loss = out["loss"]
        stats = {"diffusion": float(loss.detach())}
        loss = _add_terms(loss, stats, terms)
        loss = _add_terms(loss, stats, self._extra_terms(occ, traj, z, out["x0"], generator))
        return loss, stats

    def _encode(self, occ: torch.Tensor, keys) -> tuple[torch.Tensor, dict[str, Term]]:
        """Normalised latents (B, C, t, h, w) of the clip and the loss terms the encoding adds."""
        z, _ = self.codec.encode(occ, keys)
        return z, {}

    def _condition(self, z: torch.Tensor, traj: torch.Tensor, generator: torch.Generator) -> Conditioning:
        raise NotImplementedError

    def _extra_terms(
        self, occ: torch.Tensor, traj: torch.Tensor, z: torch.Tensor, x0: torch.Tensor, generator
    ) -> dict[str, Term]:
        """Loss terms after the diffusion step; ``x0`` is the denoiser's clean-latent estimate."""
        return {}


def _add_terms(loss: torch.Tensor, stats: dict, terms: dict[str, Term]) -> torch.Tensor:
    for name, term in terms.items():
        loss = loss + term.weight * term.value
        stats[name] = float(term.logged.detach())
    return loss
