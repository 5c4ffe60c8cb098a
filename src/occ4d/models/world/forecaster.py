"""Occupancy forecasting by latent diffusion (the E2EOcc / DOME line).

The latents of the ``past`` frames (4 or 5 at 2 Hz, the current frame last) are known context;
the DiT denoises the latents of the ``future`` frames (6 = 3 s) conditioned on the ego
trajectory of all frames relative to the current one (DOME conditions on the future ego poses;
classifier-free dropout lets the same model run without them). The loss covers the future
frames only.

Three training modes (``mode``):
- ``"frozen"``: the tokenizer is fixed (OccWorld / DOME: two-stage training);
- ``"e2e"``: the encoder and decoder train jointly with the DiT (E2EOcc's idea). The past-frame
  context keeps its gradient, so the encoder learns what the forecaster needs, while the
  tokenizer's reconstruction loss (``recon_weight``) keeps the latent decodable. The future
  latents are detached targets, otherwise the encoder could shrink them to make denoising trivial.
  Every step encodes and decodes the whole clip at full resolution: on the 2-core CPU the
  tiny preset trained at 0.12 samples/s against 7.04 for a frozen step, whose latents are
  cached (``benchmarks/worldmodels.py``, README);
- ``"e2e-distill"``: a copy of the tokenizer's encoder (``past_encoder``) trains jointly with the
  DiT and encodes the past frames, the context; the tokenizer itself stays frozen and gives the
  future latents (cached) and the decoder. ``distill_weight`` x the mean squared distance between
  the trained encoder's normalised latents and the frozen encoder's keeps the context in the
  latent space the decoder and the diffusion targets live in, so no step decodes anything. It
  starts as the frozen forecaster exactly (the copy equals the encoder).

An optional full-resolution ego-warp skip (``refiner``, :mod:`occ4d.models.world.refiner`)
turns the latent forecast into the final one: it starts from the ego-warp baseline and corrects
it from the warped history and, when ``refiner.latent``, from the latent forecast's decoded class
probabilities. It trains with cross-entropy on the future frames next to the diffusion loss; its
latent input there is the denoiser's clean-latent estimate from the same forward pass, decoded by
the tokenizer without gradient, which is what sampling hands it at test time. The diffusion
model does not depend on the refiner, so its loss is unchanged.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from occ4d.diffusion import DiffusionConfig, sample
from occ4d.models.tokenizers import balanced_class_weights
from occ4d.models.world.dit import DiTConfig
from occ4d.models.world.latent_diffusion import Conditioning, LatentDiffusion, Term
from occ4d.models.world.latents import LatentCodec
from occ4d.models.world.refiner import RefinerConfig, WarpRefiner


@dataclass(frozen=True)
class ForecasterConfig:
    dit: DiTConfig
    diffusion: DiffusionConfig = DiffusionConfig()
    past: int = 4
    future: int = 6
    mode: str = "frozen"
    recon_weight: float = 1.0
    distill_weight: float = 1.0
    refiner: RefinerConfig | None = None
    refine_weight: float = 1.0

    def __post_init__(self) -> None:
        if self.mode not in ("frozen", "e2e", "e2e-distill"):
            raise ValueError(f"mode must be 'frozen', 'e2e' or 'e2e-distill', got {self.mode!r}")
        if self.recon_weight < 0 or self.distill_weight < 0:
            raise ValueError(f"recon_weight and distill_weight must be >= 0: {self.recon_weight}, "
                             f"{self.distill_weight}")
        if not self.dit.context:
            raise ValueError("the forecaster's DiT needs context=True (the past frames are context)")
        if self.dit.traj_frames != self.past + self.future:
            raise ValueError(
                f"traj_frames ({self.dit.traj_frames}) must be past + future ({self.past + self.future})"
            )
        if self.past < 1 or self.future < 1:
            raise ValueError("past and future must be positive")
        if self.refiner is not None and (self.refiner.past, self.refiner.future) != (self.past, self.future):
            raise ValueError(
                f"the refiner is built for {self.refiner.past} past and {self.refiner.future} future "
                f"frames, the forecaster for {self.past} and {self.future}"
            )

    @property
    def frames(self) -> int:
        return self.past + self.future


class OccForecaster(LatentDiffusion):
    """``loss(occ, traj)`` on (past + future)-frame clips; ``forecast(past_occ, traj)`` at test time.

    occ (B, past + future, X, Y, Z) ids; traj (B, past + future, 3) relative to the current frame.
    """

    def __init__(self, config: ForecasterConfig, codec: LatentCodec):
        if codec.trainable != (config.mode == "e2e"):
            raise ValueError(f"mode {config.mode!r} needs a codec with trainable={config.mode == 'e2e'}")
        r = codec.frames_per_latent
        if config.past % r or config.future % r:
            raise ValueError(
                f"past ({config.past}) and future ({config.future}) must be multiples of the "
                f"tokenizer's {r} frames per latent frame"
            )
        super().__init__(config, codec)
        self.past_lat = config.past // r
        grid = tuple(codec.tokenizer.config.grid)
        if config.refiner is not None and tuple(config.refiner.grid.shape) != grid:
            raise ValueError(f"the refiner's grid {config.refiner.grid.shape} is not the tokenizer's {grid}")
        self.refiner = WarpRefiner(config.refiner) if config.refiner is not None else None
        self.past_encoder = None
        if config.mode == "e2e-distill":
            student = copy.deepcopy(codec.tokenizer)
            del student.decoder  # only encode() is used; the frozen tokenizer decodes
            self.past_encoder = student.requires_grad_(True)

    def encode_past(self, occ: torch.Tensor) -> torch.Tensor:
        """Normalised latents (B, C, t, h, w) of past frames, through the encoder the forecaster
        reads its context with (the trained copy in ``e2e-distill`` mode)."""
        if self.past_encoder is None:
            return self.codec.encode(occ)[0]
        return self.codec.normalise(self.past_encoder.encode(occ).latent)

    def _context(self, z_past: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Context (B, C, T, h, w) with the past latents in place and its 0/1 mask (B, 1, T, h, w)."""
        b, c, _, h, w = z_past.shape
        t = self.config.dit.latent_size[0]
        ctx = torch.cat([z_past, z_past.new_zeros(b, c, t - self.past_lat, h, w)], dim=2)
        mask = z_past.new_zeros(b, 1, t, h, w)
        mask[:, :, : self.past_lat] = 1.0
        return ctx, mask

    def _encode(self, occ: torch.Tensor, keys) -> tuple[torch.Tensor, dict[str, Term]]:
        """The clip's latents; in ``e2e`` mode through the trainable tokenizer, whose
        reconstruction cross-entropy plus bottleneck loss join the loss (``recon_ce``)."""
        if occ.shape[1] != self.config.frames:
            raise ValueError(f"expected {self.config.frames} frames, got {occ.shape[1]}")
        if self.config.mode == "e2e-distill":
            z, _ = self.codec.encode(occ, keys)  # the frozen tokenizer (cached latents)
            z_past = self.encode_past(occ[:, : self.config.past])
            distill = F.mse_loss(z_past.float(), z[:, :, : self.past_lat].float())
            z = torch.cat([z_past, z[:, :, self.past_lat :]], dim=2)
            return z, {"distill": Term(self.config.distill_weight, distill, distill)}
        if self.config.mode != "e2e":
            return super()._encode(occ, keys)
        q = self.codec.tokenizer.encode(occ)
        z = self.codec.normalise(q.latent)
        logits = self.codec.tokenizer.decode(q.latent, occ.shape[1])
        recon = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), occ.long().reshape(-1))
        return z, {"recon_ce": Term(self.config.recon_weight, recon + q.loss, recon)}

    def _condition(self, z: torch.Tensor, traj: torch.Tensor, generator: torch.Generator) -> Conditioning:
        """The past latents as context (keeping their gradient in ``e2e`` mode); the loss covers
        the future frames only."""
        ctx, mask = self._context(z[:, :, : self.past_lat])
        return Conditioning(traj.float(), ctx, mask, 1.0 - mask)

    def _extra_terms(
        self, occ: torch.Tensor, traj: torch.Tensor, z: torch.Tensor, x0: torch.Tensor, generator
    ) -> dict[str, Term]:
        if self.refiner is None:
            return {}
        ce = self._refine_loss(occ, traj, z.detach(), x0, generator)
        return {"refine_ce": Term(self.config.refine_weight, ce, ce)}

    def _future_probs(self, z: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
        """Normalised clip latents (B, C, t, h, w) -> class probabilities (B, K, X, Y, Z, C) of the
        future frames ``steps``, decoded without gradient (the refiner's latent input)."""
        cfg = self.config
        with torch.no_grad():
            if self.codec.frames_per_latent == 1:  # per-frame latents: decode only the frames asked for
                logits = self.codec.decode_logits(z[:, :, self.past_lat + steps], len(steps))
            else:
                logits = self.codec.decode_logits(z, cfg.frames)[:, cfg.past + steps]
        return logits.float().softmax(-1)

    def _refine_loss(
        self, occ: torch.Tensor, traj: torch.Tensor, z: torch.Tensor, x0: torch.Tensor, generator
    ) -> torch.Tensor:
        """Cross-entropy of the refiner on ``train_frames`` future frames drawn from ``generator``."""
        cfg, rc = self.config, self.config.refiner
        n = rc.train_frames or rc.future
        steps = torch.randperm(rc.future, generator=generator, device=generator.device)[:n].sort().values
        steps = steps.to(occ.device)
        probs = None
        if rc.latent:
            # The past latents are given at sampling time; the future ones are the denoiser's estimate.
            x0 = torch.cat([z[:, :, : self.past_lat], x0[:, :, self.past_lat :].to(z.dtype)], dim=2)
            probs = self._future_probs(x0, steps)
        logits = self.refiner(occ[:, : cfg.past], traj, steps, probs)  # (B, K, X, Y, Z, C)
        target = occ[:, cfg.past + steps].long()
        weight = balanced_class_weights(target, rc.num_classes) if rc.balanced else None
        flat = logits.reshape(-1, logits.shape[-1]).float()
        return F.cross_entropy(flat, target.reshape(-1), weight=weight)

    def _refine(self, past_occ: torch.Tensor, traj: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        """The refiner's forecast (B, future, X, Y, Z) uint8, from the sampled clip latents ``z``.

        Per-frame latents are decoded and refined one future frame at a time, which bounds the
        memory to one frame's (X, Y, Z, C) probabilities and logits.
        """
        f = self.config.future
        dev = past_occ.device
        chunks = (
            [torch.tensor([k], device=dev) for k in range(f)]
            if self.codec.frames_per_latent == 1
            else [torch.arange(f, device=dev)]
        )
        traj = traj.float()
        prior = self.refiner.prior(past_occ, traj, torch.arange(f, device=dev))  # once for all frames
        out = []
        for steps in chunks:
            probs = self._future_probs(z, steps) if z is not None else None
            logits = self.refiner(past_occ, traj, steps, probs, prior=prior[:, steps])
            out.append(logits.argmax(-1).to(torch.uint8))
        return torch.cat(out, dim=1)

    @torch.no_grad()
    def forecast(
        self,
        past_occ: torch.Tensor,
        traj: torch.Tensor,
        *,
        generator: torch.Generator,
        sampler: str = "ddim",
        steps: int = 20,
        guidance_scale: float = 1.0,
    ) -> torch.Tensor:
        """past_occ (B, past, X, Y, Z), traj (B, past + future, 3) -> future (B, future, X, Y, Z) uint8.

        With a refiner that takes no latent input nothing is sampled: its forecast depends only
        on the history and the trajectory.
        """
        cfg = self.config
        if past_occ.shape[1] != cfg.past or traj.shape[1] != cfg.frames:
            raise ValueError(
                f"need {cfg.past} past frames and {cfg.frames} trajectory rows, "
                f"got {past_occ.shape[1]} and {traj.shape[1]}"
            )
        if self.refiner is not None and not cfg.refiner.latent:
            return self._refine(past_occ, traj, None)
        z_past = self.encode_past(past_occ)
        ctx, mask = self._context(z_past)
        den = self._denoiser(traj.float(), ctx, mask)
        shape = (past_occ.shape[0], cfg.dit.latent_channels, *cfg.dit.latent_size)
        z = sample(
            den,
            shape,
            config=cfg.diffusion,
            generator=generator,
            sampler=sampler,
            steps=steps,
            guidance_scale=guidance_scale,
            device=past_occ.device,
        )
        z = torch.cat([z_past, z[:, :, self.past_lat :]], dim=2)
        if self.refiner is not None:
            return self._refine(past_occ, traj, z)
        return self.codec.decode(z, cfg.frames)[:, cfg.past :]
