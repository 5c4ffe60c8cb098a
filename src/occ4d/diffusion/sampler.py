"""Samplers: DDPM, DDIM and DPM-Solver++ (diffusers' schedulers) with classifier-free guidance.

Guidance on the trajectory condition (Ho & Salimans 2022), applied to the network output::

    out = out_uncond + s * (out_cond - out_uncond)

- ``s = 0``: the unconditional model alone (the trajectory is replaced by the learned null
  condition); only the unconditional branch is evaluated.
- ``s = 1``: the conditional model alone, no guidance; only the conditional branch is evaluated,
  so sampling costs one network call per step.
- ``s > 1``: extrapolates away from the unconditional prediction (stronger steering, two calls
  per step).

The combination is linear in the output, so it means the same for epsilon and v prediction.
Every random draw (the initial noise and DDPM's per-step noise) comes from the passed
``torch.Generator``: the same seed gives the same sample.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from occ4d.diffusion.loss import Denoiser
from occ4d.diffusion.schedule import DiffusionConfig

SAMPLERS = ("ddpm", "ddim", "dpm++")


def make_scheduler(config: DiffusionConfig, sampler: str, steps: int):
    """A fresh diffusers scheduler for ``sampler`` with ``steps`` inference steps.

    Schedulers keep per-run state (the multistep history of DPM-Solver), so each sampling run
    builds its own. DDIM and DPM-Solver++ use "trailing" timestep spacing, which starts at the
    last training step and so sees pure noise even at 10 steps (Lin et al. 2024, table 2).
    """
    from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler

    if steps < 1 or steps > config.num_train_timesteps:
        raise ValueError(f"steps must be in 1..{config.num_train_timesteps}, got {steps}")
    kw = config.scheduler_kwargs()
    if sampler == "ddpm":
        sched = DDPMScheduler(**kw, clip_sample=False, timestep_spacing="trailing")
    elif sampler == "ddim":
        sched = DDIMScheduler(**kw, clip_sample=False, set_alpha_to_one=False, timestep_spacing="trailing")
    elif sampler == "dpm++":
        sched = DPMSolverMultistepScheduler(
            **kw, algorithm_type="dpmsolver++", solver_order=2, lower_order_final=True,
            timestep_spacing="trailing",
        )
    else:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    sched.set_timesteps(steps)
    return sched


def guided(denoise: Denoiser, guidance_scale: float) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Wrap a denoiser into ``f(x_t, t)`` that applies classifier-free guidance (module docstring)."""
    if guidance_scale < 0:
        raise ValueError(f"guidance_scale must be >= 0, got {guidance_scale}")

    def f(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        keep = torch.zeros(b, dtype=torch.bool, device=x.device)
        if guidance_scale == 0.0:
            return denoise(x, t, ~keep)
        cond = denoise(x, t, keep)
        if guidance_scale == 1.0:
            return cond
        uncond = denoise(x, t, ~keep)
        return uncond + guidance_scale * (cond - uncond)

    return f


@torch.no_grad()
def sample(
    denoise: Denoiser,
    shape: tuple[int, ...],
    *,
    config: DiffusionConfig,
    generator: torch.Generator,
    sampler: str = "ddim",
    steps: int = 50,
    guidance_scale: float = 1.0,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    progress: bool = False,
) -> torch.Tensor:
    """Draw latents of ``shape`` (B, ...) by integrating the reverse process.

    Args:
        denoise: the network as ``denoise(x_t, t, drop_cond)``; conditions are bound by the caller.
        shape: latent shape including the batch.
        config: the diffusion config the network was trained with.
        generator: source of all randomness (initial noise, DDPM noise).
        sampler: "ddpm" (ancestral), "ddim" (eta = 0, deterministic given x_T) or "dpm++"
            (DPM-Solver++ 2M, Lu et al. 2022).
        steps: number of network evaluations per guidance branch (1000 = full DDPM).
        guidance_scale: classifier-free guidance scale (0, 1 and > 1 as in the module docstring).
        device: where the network runs; defaults to the generator's device.
        dtype: latent dtype.
        progress: show progress over the steps (occ4d.core.progress).
    """
    if len(shape) < 2:
        raise ValueError(f"latent shape must be (batch, ...) with at least one non-batch axis, got {shape}")
    device = torch.device(device) if device is not None else generator.device
    sched = make_scheduler(config, sampler, steps)
    f = guided(denoise, guidance_scale)
    x = torch.randn(shape, generator=generator, device=generator.device, dtype=dtype).to(device)
    x = x * sched.init_noise_sigma
    timesteps = sched.timesteps
    if progress:
        from occ4d.core.progress import Progress

        timesteps = Progress(timesteps, desc=f"{sampler} {steps} steps", unit="step", leave=False)
    for t in timesteps:
        tb = torch.full((shape[0],), int(t), dtype=torch.long, device=device)
        out = f(sched.scale_model_input(x, t), tb)
        if sampler == "ddim":
            x = sched.step(out, t, x, eta=0.0, return_dict=False)[0]
        else:
            x = sched.step(out, t, x, generator=generator, return_dict=False)[0]
    return x
