"""Noise schedule and parameterisation: how a clean latent becomes noisy and what the network predicts.

This is the "parameterisation" role of the diffusion core (DESIGN.md): the forward process
``x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps`` over ``num_train_timesteps`` DDPM steps, and the
two network targets we support:

- ``epsilon``: the network predicts the noise ``eps`` (DDPM, Ho et al. 2020; OccSora's default);
- ``v_prediction``: it predicts ``v = sqrt(abar_t) eps - sqrt(1 - abar_t) x_0`` (Salimans & Ho
  2022), which keeps the target's scale constant over t and behaves better at few sampling steps.

The arithmetic is diffusers' ``DDPMScheduler`` (``add_noise``, ``get_velocity``); the samplers in
:mod:`occ4d.diffusion.sampler` build diffusers' DDPM / DDIM / DPM-Solver++ schedulers from the same
:class:`DiffusionConfig`, so training and sampling can never disagree about the betas.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

PREDICTIONS = ("epsilon", "v_prediction")
BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")


@dataclass(frozen=True)
class DiffusionConfig:
    """Everything about the diffusion process that training and sampling must agree on.

    ``cond_dropout`` is the probability that a training example sees the null trajectory
    condition, which is what makes classifier-free guidance possible at sampling time.
    """

    num_train_timesteps: int = 1000
    beta_schedule: str = "linear"
    beta_start: float = 1e-4
    beta_end: float = 0.02
    prediction: str = "epsilon"
    cond_dropout: float = 0.1

    def __post_init__(self) -> None:
        if self.num_train_timesteps < 2:
            raise ValueError(f"num_train_timesteps must be >= 2, got {self.num_train_timesteps}")
        if self.beta_schedule not in BETA_SCHEDULES:
            raise ValueError(f"beta_schedule must be one of {BETA_SCHEDULES}, got {self.beta_schedule!r}")
        if self.prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {PREDICTIONS}, got {self.prediction!r}")
        if not 0.0 < self.beta_start < self.beta_end < 1.0:
            raise ValueError(f"need 0 < beta_start < beta_end < 1, got {self.beta_start}, {self.beta_end}")
        if not 0.0 <= self.cond_dropout < 1.0:
            raise ValueError(f"cond_dropout must be in [0, 1), got {self.cond_dropout}")

    def scheduler_kwargs(self) -> dict:
        """Keyword arguments shared by every diffusers scheduler built from this config.

        ``clip_sample`` is off because latents are not images in [-1, 1].
        """
        return dict(
            num_train_timesteps=self.num_train_timesteps,
            beta_schedule=self.beta_schedule,
            beta_start=self.beta_start,
            beta_end=self.beta_end,
            prediction_type=self.prediction,
        )

    def to_dict(self) -> dict:
        return asdict(self)


class NoiseSchedule:
    """The forward process and the prediction target for one :class:`DiffusionConfig`."""

    def __init__(self, config: DiffusionConfig):
        from diffusers import DDPMScheduler

        self.config = config
        self._ddpm = DDPMScheduler(**config.scheduler_kwargs(), clip_sample=False)
        # float64 on the CPU; indexed and moved to the data's device/dtype per call.
        self.alphas_cumprod = self._ddpm.alphas_cumprod.double()

    @property
    def num_train_timesteps(self) -> int:
        return self.config.num_train_timesteps

    def sample_timesteps(self, batch: int, generator: torch.Generator, device=None) -> torch.Tensor:
        """Uniform integer timesteps (B,) in [0, num_train_timesteps), drawn from ``generator``."""
        t = torch.randint(0, self.num_train_timesteps, (batch,), generator=generator, device=generator.device)
        return t.to(device) if device is not None else t

    def _coeffs(self, t: torch.Tensor, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """sqrt(abar_t), sqrt(1 - abar_t) broadcast to ``like``'s shape (B, 1, 1, ...)."""
        abar = self.alphas_cumprod[t.cpu().long()].to(device=like.device, dtype=like.dtype)
        shape = (-1,) + (1,) * (like.ndim - 1)
        return abar.sqrt().reshape(shape), (1.0 - abar).sqrt().reshape(shape)

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps (DDPM eq. 4), for any latent shape (B, ...)."""
        a, s = self._coeffs(t, x0)
        return a * x0 + s * noise

    def target(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """What the network is trained to output: eps, or v = sqrt(abar) eps - sqrt(1-abar) x_0."""
        if self.config.prediction == "epsilon":
            return noise
        a, s = self._coeffs(t, x0)
        return a * noise - s * x0

    def predict_x0(self, output: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The clean latent implied by a network output at (x_t, t)."""
        a, s = self._coeffs(t, x_t)
        if self.config.prediction == "epsilon":
            return (x_t - s * output) / a
        return a * x_t - s * output

    def predict_eps(self, output: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The noise implied by a network output at (x_t, t)."""
        if self.config.prediction == "epsilon":
            return output
        a, s = self._coeffs(t, x_t)
        return s * x_t + a * output
