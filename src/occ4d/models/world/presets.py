"""The world models' one flat config, named presets and ``build`` (a config -> an nn.Module).

``occ4d train worldmodel --preset NAME --data DIR --out RUN [--model.tokenizer TOKENIZER_RUN]``.
``kind`` picks the model: ``generator`` (OccSora-line DiT over whole clips), ``forecaster``
(DOME / E2EOcc-line latent diffusion from past frames), ``refiner`` (no latents: a hand-written
warp with a learned refiner of the area it cannot know, :mod:`occ4d.models.world.warp_forecaster`),
``autoregressive`` (OccWorld-style token transformer) or ``planner`` (future ego trajectory from
past frames). Every kind but the refiner and the planner
works in the latent space of a trained tokenizer run (``tokenizer``), which is loaded when the
model is built; the world-model checkpoint holds a full copy of the tokenizer's weights, but
building it again (``load_model``) reads the tokenizer run for its architecture. Data, loss
and evaluation are in :mod:`occ4d.models.world.recipe`.

Presets: ``tiny-*`` train on the synthetic world on two CPU cores in about twenty minutes;
``occsora``, ``dome``, ``occworld`` and ``planner`` are paper-sized for GPUs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from torch import nn

from occ4d.train.config import DataConfig, OptimConfig, Preset

KINDS = ("generator", "forecaster", "refiner", "autoregressive", "planner")


@dataclass(frozen=True)
class WorldModelConfig:
    """All world-model settings, flat so the command line can override each one."""

    kind: Literal["generator", "forecaster", "refiner", "autoregressive", "planner"] = "forecaster"
    tokenizer: str = ""  # run folder or checkpoint of a trained tokenizer (all kinds but refiner, planner)
    num_classes: int = 18
    past: int = 4  # history frames incl. the current one (forecaster, autoregressive, planner)
    future: int = 6  # forecast frames (3 s at 2 Hz)
    frames: int = 8  # clip length of the generator (its training horizon)
    # transformer
    patch: tuple[int, int, int] = (1, 5, 5)
    hidden: int = 96
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 4.0
    # diffusion
    prediction: Literal["epsilon", "v_prediction"] = "v_prediction"
    timesteps: int = 1000
    beta_schedule: Literal["linear", "scaled_linear", "squaredcos_cap_v2"] = "linear"
    cond_dropout: float = 0.1
    prefix_prob: float = 0.5  # generator: share of clips trained as continuations
    scene_centric: bool = False  # generator: windows made in their middle frame, moved along the prompt
    share_static: bool = True  # scene-centric generator: one static scene per window (its middle frame's)
    # forecaster: tokenizer frozen, trained jointly, or its encoder trained jointly with distillation
    mode: Literal["frozen", "e2e", "e2e-distill"] = "frozen"
    recon_weight: float = 1.0
    distill_weight: float = 1.0
    # forecaster: the full-resolution ego-warp skip (models/world/refiner.py)
    refine: bool = False
    refine_latent: bool = True  # the refiner reads the latent forecast's decoded classes
    refine_channels: tuple[int, ...] = (16, 32, 48, 64)  # U-Net widths, full resolution first
    refine_embed: int = 8  # column features per past frame
    refine_weight: float = 1.0
    refine_prior: float = 4.0  # logit scale of the ego-warp prior (corrections are in its units)
    refine_frames: int = 2  # future frames per clip the refiner trains on (0: all six)
    # the prior the refiner corrects
    refine_base: Literal["ego-warp", "motion-warp", "motion-extrude", "fused-warp"] = "ego-warp"
    refine_balanced: bool = False  # class-balanced cross-entropy for the refiner
    refine_region: Literal["all", "unseen"] = "all"  # where the refiner may correct its prior
    # kind refiner only: a Lovász-softmax term beside the cross-entropy, and mirrored windows
    refine_lovasz: float = 0.0
    refine_mirror: bool = False
    grid: tuple[int, int, int] = (200, 200, 16)  # kind refiner only (the others take the tokenizer's)
    # planner
    planner_channels: int = 32
    planner_levels: int = 4
    # evaluation
    eval_sampler: Literal["ddpm", "ddim", "dpm++"] = "ddim"
    eval_steps: int = 20
    eval_guidance: float = 1.0
    eval_clips: int = 4  # generator: clips generated for the controllability check

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if self.kind not in ("planner", "refiner") and not self.tokenizer:
            raise ValueError(f"a {self.kind} needs --model.tokenizer RUN (a trained tokenizer run)")
        if self.past < 1 or self.future < 1 or self.frames < 1:
            raise ValueError("past, future and frames must be positive")
        if self.hidden % 6 or self.hidden % self.heads:
            raise ValueError(f"hidden ({self.hidden}) must be a multiple of 6 and of heads ({self.heads})")
        if self.scene_centric and self.kind != "generator":
            raise ValueError(f"scene_centric is a generator option, not a {self.kind}'s")
        if self.refine and self.kind != "forecaster":
            raise ValueError(f"refine is a forecaster option, not a {self.kind}'s")
        if self.kind == "refiner" and self.refine_base == "ego-warp" and self.refine_region == "unseen":
            raise ValueError("ego-warp leaves the unseen area free: a refiner of the unseen area needs a "
                             "motion baseline as its prior (--model.refine-base fused-warp)")

    @property
    def clip_frames(self) -> int:
        """Frames per training sample."""
        return self.frames if self.kind == "generator" else self.past + self.future

    def diffusion(self):
        from occ4d.diffusion import DiffusionConfig

        return DiffusionConfig(
            num_train_timesteps=self.timesteps,
            beta_schedule=self.beta_schedule,
            prediction=self.prediction,
            cond_dropout=self.cond_dropout,
        )


def _tiny(kind: str, **kw) -> WorldModelConfig:
    return WorldModelConfig(kind=kind, tokenizer=kw.pop("tokenizer", "runs/tiny-vae"), **kw)


_TINY_OPTIM = OptimConfig(lr=1e-3, total_samples=3_000, warmup_samples=100, ema_decay=0.99, weight_decay=0.0)
_GPU_OPTIM = OptimConfig(
    lr=1e-4, total_samples=28_130 * 100, warmup_samples=10_000, weight_decay=0.0, ema_decay=0.9999
)

PRESETS: dict[str, Preset] = {
    "tiny-forecaster": Preset(
        _tiny("forecaster", past=4, future=6),
        DataConfig(frames=10, stride=1, batch_size=4),
        _TINY_OPTIM,
        note="DOME-line forecaster on the tiny KL-VAE latents (25x25), 4 past -> 6 future, frozen tokenizer",
    ),
    "tiny-forecaster-e2e": Preset(
        _tiny("forecaster", past=4, future=6, mode="e2e"),
        DataConfig(frames=10, stride=1, batch_size=2),
        _TINY_OPTIM,
        note="as tiny-forecaster, encoder and decoder trained jointly (E2EOcc's idea)",
    ),
    "tiny-forecaster-e2e-distill": Preset(
        _tiny("forecaster", past=4, future=6, mode="e2e-distill"),
        DataConfig(frames=10, stride=1, batch_size=4),
        _TINY_OPTIM,
        note="as tiny-forecaster, with a copy of the encoder trained jointly on the past frames and "
        "distilled towards the frozen one (no decoding per step)",
    ),
    "tiny-forecaster-warp": Preset(
        _tiny("forecaster", past=4, future=6, refine=True),
        DataConfig(frames=10, stride=1, batch_size=4),
        # ~0.85 samples/s on one thread of the shared 2-core CPU: 1000 samples in ~20 min. At lr 1e-3
        # the zero-initialised head flipped no voxel of ego-warp's in 80 steps; 3e-3 did in 120.
        dataclasses.replace(_TINY_OPTIM, lr=3e-3, total_samples=1_000),
        note="tiny-forecaster plus the full-resolution ego-warp skip: a U-Net refiner over the ego-warped "
        "history and the decoded latent forecast, residual over the ego-warp baseline "
        "(--model.refine-latent False: without the latent forecast)",
    ),
    "tiny-forecaster-motion": Preset(
        _tiny("forecaster", past=4, future=6, refine=True, refine_base="motion-warp", refine_region="unseen"),
        DataConfig(frames=10, stride=1, batch_size=4),
        dataclasses.replace(_TINY_OPTIM, lr=3e-3, total_samples=1_000),
        # Corrections only where the current frame saw nothing: at this budget, corrections everywhere
        # (with class-balanced cross-entropy) cost 3 points of mIoU against motion-warp itself.
        note="tiny-forecaster-warp with motion-warp (ego-warp plus constant-velocity tracked objects) as the "
        "refiner's prior and input, correcting only the columns the current frame did not see",
    ),
    "tiny-forecaster-fused": Preset(
        _tiny("forecaster", past=4, future=6, refine=True, refine_base="fused-warp", refine_region="unseen"),
        DataConfig(frames=10, stride=1, batch_size=4),
        dataclasses.replace(_TINY_OPTIM, lr=3e-3, total_samples=1_000),
        note="tiny-forecaster-motion over fused-warp (motion-extrude with the static columns resampled "
        "from every history frame): the refiner corrects the columns the current frame did not see",
    ),
    "tiny-forecaster-unseen": Preset(
        WorldModelConfig(
            kind="refiner", refine_base="fused-warp", refine_region="unseen", refine_mirror=True
        ),
        DataConfig(frames=10, stride=1, batch_size=1),
        OptimConfig(lr=2e-3, total_samples=2_400, warmup_samples=30, ema_decay=0.99, weight_decay=0.0),
        note="no latents: fused-warp, and a U-Net refiner trained only on the area entering the grid "
        "(the columns the current frame did not see), where fused-warp can only continue the ground",
    ),
    "tiny-generator": Preset(
        _tiny("generator", frames=8),
        DataConfig(frames=8, stride=1, batch_size=4),
        _TINY_OPTIM,
        note="OccSora-line DiT over 8-frame clips of the tiny KL-VAE latents, trajectory-conditioned",
    ),
    "tiny-generator-scene": Preset(
        _tiny("generator", frames=8, scene_centric=True),
        DataConfig(frames=8, stride=1, batch_size=4),
        _TINY_OPTIM,
        note="tiny-generator conditioned on the geometry: each 8-frame window is made in its middle "
        "ego frame and every frame moved into its own along the prompt (models/world/scene_frame.py)",
    ),
    "tiny-autoregressive": Preset(
        _tiny("autoregressive", tokenizer="runs/tiny-vqvae", hidden=96, depth=3),
        DataConfig(frames=10, stride=1, batch_size=2),
        _TINY_OPTIM,
        note="OccWorld-style token transformer over the tiny VQ-VAE's 50x50 tokens with ego-pose tokens",
    ),
    "tiny-planner": Preset(
        WorldModelConfig(kind="planner", planner_channels=16),
        DataConfig(frames=10, stride=1, batch_size=8),
        OptimConfig(lr=2e-3, total_samples=4_000, warmup_samples=100, ema_decay=0.99),
        note="BEV CNN planner: 4 past frames -> 6 future ego poses",
    ),
    # Paper sizes (GPU).
    "occsora": Preset(
        WorldModelConfig(
            kind="generator",
            tokenizer="runs/occsora",
            frames=32,
            patch=(1, 2, 2),
            hidden=1152,
            depth=28,
            heads=16,
            prediction="epsilon",
        ),
        DataConfig(frames=32, stride=1, batch_size=8),
        _GPU_OPTIM,
        note="OccSora: DiT-XL/2 over 4x25x25 latents of 32-frame clips, epsilon prediction, 1000 steps",
    ),
    "dome": Preset(
        WorldModelConfig(
            kind="forecaster",
            tokenizer="runs/dome-vae",
            past=4,
            future=6,
            patch=(1, 2, 2),
            hidden=768,
            depth=12,
            heads=12,
        ),
        DataConfig(frames=10, stride=1, batch_size=4),
        _GPU_OPTIM,
        note="DOME-size forecaster: 4 past frames, 6 future, GT-trajectory conditioned, v prediction",
    ),
    "occworld": Preset(
        WorldModelConfig(
            kind="autoregressive", tokenizer="runs/occworld", past=5, future=6, hidden=384, depth=8, heads=8
        ),
        DataConfig(frames=11, stride=1, batch_size=1),
        _GPU_OPTIM,
        note="OccWorld-size autoregressive transformer over 50x50 tokens, 5 past frames",
    ),
    "planner": Preset(
        WorldModelConfig(kind="planner", past=5, planner_channels=64, planner_levels=5),
        DataConfig(frames=11, stride=1, batch_size=16),
        _GPU_OPTIM,
        note="paper-size BEV planner",
    ),
}


def _load_tokenizer(path: str):
    from occ4d.core.errors import DataError
    from occ4d.train.registry import load_model

    try:
        tok, _, _ = load_model(path, ema=True, kind="tokenizer")
    except DataError as e:  # load_model says every way a path is not a tokenizer run
        raise DataError(path, f"cannot load the tokenizer run the world model needs ({e})") from e
    return tok


def build(cfg: WorldModelConfig) -> nn.Module:
    from occ4d.models.world import (
        AutoregressiveConfig,
        DiTConfig,
        ForecasterConfig,
        GeneratorConfig,
        LatentCodec,
        OccAutoregressive,
        OccForecaster,
        OccGenerator,
        Planner,
        PlannerConfig,
        WarpForecaster,
    )

    if cfg.kind == "refiner":
        return WarpForecaster(
            _refiner_config(cfg, tuple(cfg.grid), latent=False),
            lovasz_weight=cfg.refine_lovasz,
            mirror=cfg.refine_mirror,
        )
    if cfg.kind == "planner":
        return Planner(
            PlannerConfig(
                num_classes=cfg.num_classes,
                past=cfg.past,
                future=cfg.future,
                channels=cfg.planner_channels,
                levels=cfg.planner_levels,
            )
        )
    codec = LatentCodec(
        _load_tokenizer(cfg.tokenizer), trainable=cfg.mode == "e2e" and cfg.kind == "forecaster"
    )
    if cfg.kind == "autoregressive":
        tk = codec.tokenizer.config
        return OccAutoregressive(
            AutoregressiveConfig(
                token_size=tuple(codec.latent_shape(1)[1:]),
                vocab_size=tk.vocab_size,
                past=cfg.past,
                future=cfg.future,
                hidden=cfg.hidden,
                depth=cfg.depth,
                heads=cfg.heads,
                mlp_ratio=cfg.mlp_ratio,
            ),
            codec,
        )
    frames = cfg.clip_frames
    dit = DiTConfig(
        latent_channels=codec.channels,
        latent_size=tuple(codec.latent_shape(frames)),
        traj_frames=frames,
        patch=cfg.patch,
        hidden=cfg.hidden,
        depth=cfg.depth,
        heads=cfg.heads,
        mlp_ratio=cfg.mlp_ratio,
        context=True,
    )
    if cfg.kind == "generator":
        return OccGenerator(
            GeneratorConfig(
                dit=dit,
                diffusion=cfg.diffusion(),
                frames=frames,
                prefix_prob=cfg.prefix_prob,
                scene_centric=cfg.scene_centric,
                share_static=cfg.share_static,
                grid=_grid(tuple(codec.tokenizer.config.grid)),
            ),
            codec,
        )
    refiner = None
    if cfg.refine:
        refiner = _refiner_config(cfg, tuple(codec.tokenizer.config.grid), latent=cfg.refine_latent)
    return OccForecaster(
        ForecasterConfig(
            dit=dit,
            diffusion=cfg.diffusion(),
            past=cfg.past,
            future=cfg.future,
            mode=cfg.mode,
            recon_weight=cfg.recon_weight,
            distill_weight=cfg.distill_weight,
            refiner=refiner,
            refine_weight=cfg.refine_weight,
        ),
        codec,
    )


def _refiner_config(cfg: WorldModelConfig, grid: tuple[int, int, int], *, latent: bool):
    from occ4d.models.world import RefinerConfig

    return RefinerConfig(
        num_classes=cfg.num_classes,
        past=cfg.past,
        future=cfg.future,
        grid=_grid(grid),
        embed=cfg.refine_embed,
        channels=tuple(cfg.refine_channels),
        latent=latent,
        prior_scale=cfg.refine_prior,
        train_frames=cfg.refine_frames,
        base=cfg.refine_base,
        balanced=cfg.refine_balanced,
        region=cfg.refine_region,
    )


def _grid(shape: tuple[int, int, int]):
    """The geometry of the tokenizer's grid: Occ3D's, or for other sizes (small test grids) the same
    0.4 m voxels centred on the ego in x and y, which is what the refiner's warping needs."""
    from occ4d.core.grid import OCC3D, GridSpec

    if shape == OCC3D.shape:
        return OCC3D
    v = OCC3D.voxel_size
    lo = (-shape[0] * v[0] / 2, -shape[1] * v[1] / 2, OCC3D.range_min[2])
    return GridSpec(f"occ3d-{shape[0]}x{shape[1]}x{shape[2]}", shape, v, lo)
