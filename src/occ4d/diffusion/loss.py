"""The denoising loss: DDPM's "simple" objective with condition dropout for classifier-free guidance.

One call draws t, the noise and the dropout decisions from the passed generator (never global
state), noises the clean latent, runs the network and returns the mean squared error against
the parameterisation's target (:meth:`NoiseSchedule.target`). ``weight`` restricts the loss to
part of the latent, e.g. the future frames of a forecaster whose past frames are given.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from occ4d.diffusion.schedule import NoiseSchedule

# A denoiser maps (x_t (B, ...), t (B,) long, drop_cond (B,) bool) to an output shaped like x_t.
# Everything else it needs (trajectory, past frames) is bound by the caller, e.g. a lambda.
Denoiser = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def draw_cond_dropout(batch: int, p: float, generator: torch.Generator, device=None) -> torch.Tensor:
    """(B,) bool: True where the trajectory condition is replaced by the learned null condition."""
    if p <= 0.0:
        drop = torch.zeros(batch, dtype=torch.bool)
    else:
        drop = torch.rand(batch, generator=generator, device=generator.device) < p
    return drop.to(device) if device is not None else drop


def diffusion_loss(
    denoise: Denoiser,
    x0: torch.Tensor,
    schedule: NoiseSchedule,
    *,
    generator: torch.Generator,
    weight: torch.Tensor | None = None,
    cond_dropout: float | None = None,
) -> dict[str, torch.Tensor]:
    """Denoising MSE for a batch of clean latents ``x0`` (B, ...).

    Args:
        denoise: the network, called as ``denoise(x_t, t, drop_cond)``.
        x0: clean (normalised) latents.
        schedule: the forward process and target.
        generator: source of t, the noise and the dropout draws.
        weight: optional mask/weight broadcastable to ``x0``; the loss is the weighted mean.
        cond_dropout: probability of the null condition; defaults to the schedule's config.

    Returns:
        ``{"loss": scalar, "mse_per_t": (B,) per-example error (for logging), "t": (B,) steps,
        "x0": the clean latent the network's output implies, detached}``. ``x0`` is what a
        sampler's last step produces, so a model stacked on the decoded latent (the forecaster's
        refiner) can train on inputs like those it sees at sampling time.
    """
    b = x0.shape[0]
    p = schedule.config.cond_dropout if cond_dropout is None else cond_dropout
    t = schedule.sample_timesteps(b, generator, x0.device)
    noise = torch.randn(x0.shape, generator=generator, device=generator.device).to(x0)
    drop = draw_cond_dropout(b, p, generator, x0.device)
    x_t = schedule.add_noise(x0, noise, t)
    out = denoise(x_t, t, drop)
    if out.shape != x0.shape:
        raise ValueError(f"denoiser output {tuple(out.shape)} does not match the latent {tuple(x0.shape)}")
    err = (out.float() - schedule.target(x0, noise, t).float()) ** 2
    if weight is None:
        per_example = err.flatten(1).mean(1)
        loss = per_example.mean()
    else:
        w = torch.broadcast_to(weight.to(err), err.shape)
        per_example = (err * w).flatten(1).sum(1) / w.flatten(1).sum(1).clamp_min(1e-8)
        loss = (err * w).sum() / w.sum().clamp_min(1e-8)
    x0_pred = schedule.predict_x0(out.detach().to(x_t.dtype), x_t, t)
    return {"loss": loss, "mse_per_t": per_example.detach(), "t": t, "x0": x0_pred}
