"""Trajectory-conditioned 4D occupancy generation (OccSora's line): a DiT over whole-clip latents.

Training: a clip of ``frames`` occupancy frames is encoded to a latent (B, C, t, h, w) and the
DiT learns to denoise it given the ego trajectory of the clip, rebased to the clip's first frame.
With probability ``prefix_prob`` the first k latent frames (k drawn in 1..t-1) are also given as
known context and excluded from the loss; that teaches the same network to *continue* a clip,
which is how clips longer than the training horizon are made (sliding-window extension).

Generation: the first window is drawn from noise; each next window keeps the last ``overlap``
latent frames of the clip so far as known context and draws the rest, conditioned on the
trajectory rebased to the window's first frame. Windows are decoded together at the end.

Scene-centric (``scene_centric``, :mod:`occ4d.models.world.scene_frame`): the DiT learns and
draws each window in the ego frame of its middle frame, where the static scene stands still, and
every decoded frame is resampled into its own ego frame with the prompt's relative pose, so the
clip moves the way the prompt drives by construction (the geometry conditions the generation, the
trajectory embedding and its guidance only the content). In the reference frame the static scene
does not move, so every frame of a window takes the reference frame's static scene and keeps
only its own road users (``share_static``); without it, a DiT trained at a CPU budget draws a
different town in each frame and the clip follows no trajectory. A next window's known frames
are the clip so far, resampled into that window's reference frame and encoded again.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from occ4d.core.grid import OCC3D, GridSpec
from occ4d.core.vocab import OCC3D_VOCAB
from occ4d.diffusion import DiffusionConfig, sample
from occ4d.models.world.dit import DiTConfig
from occ4d.models.world.embed import extend_traj, rebase_traj
from occ4d.models.world.latent_diffusion import Conditioning, LatentDiffusion
from occ4d.models.world.scene_frame import (
    check_traj,
    from_reference,
    reference_index,
    share_static,
    to_reference,
)


@dataclass(frozen=True)
class GeneratorConfig:
    """The generation model: its DiT, its diffusion process and its training horizon."""

    dit: DiTConfig
    diffusion: DiffusionConfig = DiffusionConfig()
    frames: int = 4  # occupancy frames per clip (the training horizon)
    prefix_prob: float = 0.5  # share of training clips that see a known prefix
    scene_centric: bool = False  # learn and draw windows in their middle frame, then move them
    share_static: bool = True  # scene-centric: every frame takes the reference frame's static scene
    grid: GridSpec = OCC3D  # the tokenizer's grid (the scene-centric resampling's geometry)
    free: int = OCC3D_VOCAB.free

    def __post_init__(self) -> None:
        if self.dit.traj_frames != self.frames:
            raise ValueError(
                f"the DiT's traj_frames ({self.dit.traj_frames}) must equal frames ({self.frames})"
            )
        if not self.dit.context and self.prefix_prob > 0:
            raise ValueError("prefix training (sliding-window extension) needs a DiT with context=True")
        if not 0.0 <= self.prefix_prob <= 1.0:
            raise ValueError(f"prefix_prob must be in [0, 1], got {self.prefix_prob}")


class OccGenerator(LatentDiffusion):
    """Codec + DiT. ``loss`` for training, ``generate`` for clips of any length.

    ``loss``: occ (B, frames, X, Y, Z) ids, traj (B, frames, 3) in any frame (rebased to frame 0).
    """

    def loss(self, occ: torch.Tensor, traj: torch.Tensor, generator: torch.Generator, keys=None):
        """Scene-centric: the clip is resampled into its middle frame before encoding, so the
        latents of a frame depend on the clip it is in and are not cached by frame (``keys``)."""
        if self.config.scene_centric:
            cfg = self.config
            occ = to_reference(occ, traj, reference_index(occ.shape[1]), grid=cfg.grid, fill=cfg.free)
            keys = None
        return super().loss(occ, traj, generator, keys)

    def _prefix_mask(self, b: int, t: int, generator: torch.Generator, device) -> torch.Tensor:
        """(B, 1, t, 1, 1) float: 1 on the known prefix frames (none for most clips)."""
        use = torch.rand(b, generator=generator, device=generator.device) < self.config.prefix_prob
        k = torch.randint(1, max(t, 2), (b,), generator=generator, device=generator.device) * use
        frames = torch.arange(t, device=generator.device)[None]
        return (frames < k[:, None]).float().reshape(b, 1, t, 1, 1).to(device)

    def _condition(self, z: torch.Tensor, traj: torch.Tensor, generator: torch.Generator) -> Conditioning:
        """The trajectory rebased to the clip's first frame; with a context DiT, a random known
        prefix (``prefix_prob``) as context, excluded from the loss."""
        b, _, t, h, w = z.shape
        traj = rebase_traj(traj.float(), 0)
        if not self.config.dit.context:
            return Conditioning(traj, None, None, None)
        mask = self._prefix_mask(b, t, generator, z.device)
        return Conditioning(traj, z.detach(), mask.expand(b, 1, t, h, w), 1.0 - mask)

    @torch.no_grad()
    def sample_latents(
        self,
        traj: torch.Tensor,
        *,
        generator: torch.Generator,
        sampler: str = "ddim",
        steps: int = 50,
        guidance_scale: float = 1.0,
        context: torch.Tensor | None = None,
        known: int = 0,
        progress: bool = False,
    ) -> torch.Tensor:
        """One window: traj (B, frames, 3) rebased to its first row.

        ``context`` (B, C, k', h, w) holds latents already made; its last ``known`` frames become
        the first frames of this window.
        """
        cfg = self.config.dit
        b = traj.shape[0]
        shape = (b, cfg.latent_channels, *cfg.latent_size)
        ctx = mask = None
        if cfg.context:
            ctx = torch.zeros(shape, device=traj.device)
            mask = torch.zeros(b, 1, *cfg.latent_size, device=traj.device)
            if known:
                ctx[:, :, :known] = context[:, :, -known:]
                mask[:, :, :known] = 1.0
        x = sample(
            self._denoiser(traj.float(), ctx, mask),
            shape,
            config=self.config.diffusion,
            generator=generator,
            sampler=sampler,
            steps=steps,
            guidance_scale=guidance_scale,
            device=traj.device,
            progress=progress,
        )
        if known:  # the known frames are kept exactly as given
            x[:, :, :known] = context[:, :, -known:]
        return x

    @torch.no_grad()
    def generate(
        self,
        traj: torch.Tensor,
        *,
        generator: torch.Generator,
        frames: int | None = None,
        sampler: str = "ddim",
        steps: int = 50,
        guidance_scale: float = 1.0,
        overlap: int | None = None,
        progress: bool = False,
        move: bool = True,
    ) -> torch.Tensor:
        """Clips (B, frames, X, Y, Z) uint8 following ``traj`` (B, F, 3), relative to frame 0.

        A trajectory shorter than ``frames`` is extended at constant velocity. ``overlap`` is
        the number of latent frames each window re-uses (default: half the window). ``move``
        (scene-centric models only): False leaves every frame in its window's reference frame,
        the ablation without the geometric conditioning.
        """
        frames = frames or traj.shape[1]
        check_traj(traj, 1)
        if self.config.scene_centric:
            return self._generate_scene_centric(
                traj, generator=generator, frames=frames, sampler=sampler, steps=steps,
                guidance_scale=guidance_scale, overlap=overlap, progress=progress, move=move,
            )
        r = self.codec.frames_per_latent
        windows, new, known = self._windows(frames, overlap)
        traj = extend_traj(traj.float(), self.config.frames + (windows - 1) * new * r)
        latents = None
        for w in range(windows):
            start = w * new * r
            window_traj = rebase_traj(traj[:, start : start + self.config.frames], 0)
            k = 0 if latents is None else known
            z = self.sample_latents(
                window_traj,
                generator=generator,
                sampler=sampler,
                steps=steps,
                guidance_scale=guidance_scale,
                context=latents,
                known=k,
                progress=progress,
            )
            latents = z if latents is None else torch.cat([latents, z[:, :, k:]], dim=2)
        return self.codec.decode(latents, latents.shape[2] * r)[:, :frames]

    def _windows(self, frames: int, overlap: int | None) -> tuple[int, int, int]:
        """(windows, new latent frames per window, known latent frames per later window)."""
        t_lat = self.config.dit.latent_size[0]
        overlap = t_lat // 2 if overlap is None else overlap
        if t_lat > 1 and not 0 < overlap < t_lat:
            raise ValueError(f"overlap must be in 1..{t_lat - 1} latent frames, got {overlap}")
        if frames > self.config.frames and not self.config.dit.context:
            raise ValueError("clips longer than the training horizon need a DiT with context=True")
        new = (t_lat - overlap) if t_lat > 1 else 1
        windows = 1 + max(0, -(-(frames - self.config.frames) // (new * self.codec.frames_per_latent)))
        return windows, new, t_lat - new

    @torch.no_grad()
    def _generate_scene_centric(
        self, traj, *, generator, frames, sampler, steps, guidance_scale, overlap, progress, move
    ) -> torch.Tensor:
        """Window by window: draw the latents in the window's reference frame, decode them and
        move each frame into its own ego frame along the prompt (module docstring)."""
        cfg = self.config
        r, n = self.codec.frames_per_latent, cfg.frames
        windows, new, known = self._windows(frames, overlap)
        traj = extend_traj(traj.float(), n + (windows - 1) * new * r)
        ref = reference_index(n)
        clip = None  # (B, T, X, Y, Z) in each frame's own ego frame
        for w in range(windows):
            start = w * new * r
            wtraj = rebase_traj(traj[:, start : start + n], 0)
            context, k = None, 0
            if clip is not None:  # the clip so far, in this window's reference frame, as context
                k = known
                seen = to_reference(clip[:, start : start + k * r], wtraj, ref, grid=cfg.grid, fill=cfg.free)
                context, _ = self.codec.encode(seen)
            z = self.sample_latents(
                wtraj, generator=generator, sampler=sampler, steps=steps,
                guidance_scale=guidance_scale, context=context, known=k, progress=progress,
            )
            scene = self.codec.decode(z, n)  # (B, n, X, Y, Z) in the reference frame
            if cfg.share_static:
                scene = share_static(scene, ref, free=cfg.free)
            out = from_reference(scene, wtraj, ref, grid=cfg.grid, fill=cfg.free) if move else scene
            clip = out if clip is None else torch.cat([clip, out[:, k * r :]], dim=1)
        return clip[:, :frames]
