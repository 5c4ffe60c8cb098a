"""World models: trajectory-conditioned generation, forecasting, baselines and planning.

- :class:`OccGenerator`: a DiT over whole-clip latents (OccSora's line), clips of any length.
- :class:`OccForecaster`: latent diffusion from past frames and the ego trajectory (DOME/E2EOcc),
  optionally with :class:`WarpRefiner`, a full-resolution ego-warp skip that corrects ego-warp.
  Both are :class:`~occ4d.models.world.latent_diffusion.LatentDiffusion`: codec + DiT, the
  training loss written once.
- :class:`WarpForecaster`: no latents, a hand-written warp (fused-warp) and the refiner alone,
  trained on the area entering the grid that the warp cannot know.
- :class:`OccAutoregressive`: OccWorld-style token transformer with ego-pose tokens.
- :class:`CopyLast`, :class:`EgoWarp`, :class:`MotionWarp`: baselines (motion-warp also serves as
  the refiner's prior); :class:`Planner`: future ego trajectory.
- :func:`rollout`: trajectory-steered generation by forecasting (an opening continued along a path).
Every forecaster answers ``forecast(past_occ, traj) -> (B, future, X, Y, Z)``.
"""

from occ4d.models.world.autoregressive import AutoregressiveConfig, OccAutoregressive
from occ4d.models.world.baselines import CopyLast, EgoWarp, unseen_columns, warp_grid
from occ4d.models.world.dit import DiTConfig, OccDiT
from occ4d.models.world.forecaster import ForecasterConfig, OccForecaster
from occ4d.models.world.generator import GeneratorConfig, OccGenerator
from occ4d.models.world.latents import LatentCodec
from occ4d.models.world.motion import MotionConfig, MotionWarp, motion_warp
from occ4d.models.world.planner import Planner, PlannerConfig
from occ4d.models.world.refiner import RefinerConfig, WarpRefiner, warp_history
from occ4d.models.world.rollout import compose_traj, rollout
from occ4d.models.world.warp_forecaster import WarpForecaster, mirror_window

__all__ = [
    "AutoregressiveConfig",
    "OccAutoregressive",
    "CopyLast",
    "EgoWarp",
    "unseen_columns",
    "warp_grid",
    "DiTConfig",
    "OccDiT",
    "ForecasterConfig",
    "OccForecaster",
    "GeneratorConfig",
    "OccGenerator",
    "LatentCodec",
    "MotionConfig",
    "MotionWarp",
    "motion_warp",
    "Planner",
    "PlannerConfig",
    "RefinerConfig",
    "WarpRefiner",
    "warp_history",
    "compose_traj",
    "rollout",
    "WarpForecaster",
    "mirror_window",
]
