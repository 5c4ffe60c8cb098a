"""Diffusion core in small roles: schedule/parameterisation, loss, samplers (thin over diffusers).

The backbones live in :mod:`occ4d.models.world`; they are plain modules called as
``denoise(x_t, t, drop_cond)`` through a closure that binds their conditions.
"""

from occ4d.diffusion.loss import Denoiser, diffusion_loss, draw_cond_dropout
from occ4d.diffusion.sampler import SAMPLERS, guided, make_scheduler, sample
from occ4d.diffusion.schedule import PREDICTIONS, DiffusionConfig, NoiseSchedule

__all__ = [
    "Denoiser", "diffusion_loss", "draw_cond_dropout", "SAMPLERS", "guided", "make_scheduler", "sample",
    "PREDICTIONS", "DiffusionConfig", "NoiseSchedule",
]
