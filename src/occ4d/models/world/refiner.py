"""The forecaster's full-resolution ego-warp skip: a residual refiner over the static-world prior.

A latent forecaster is capped by its tokenizer's reconstruction, while the ego-warp baseline keeps
every static voxel it has seen at full resolution but moves nothing and invents nothing. The
refiner starts from ego-warp and learns only the corrections:

1. **History in the future frame.** For each future frame k, every past frame p is warped into
   k's ego frame with :func:`~occ4d.models.world.baselines.warp_grid` (pose of k expressed in p,
   ``inv(traj_p) o traj_k``), together with the mask of voxels whose source lies inside p's grid.
   A moving object then appears at a different place in each warped past frame, so its motion is
   visible where the prediction is made.
2. **Features.** Each past frame's columns are embedded by one learned vector per (height,
   class), summed over the column (a class embedding with height folded into channels and a
   linear map, without building the (X, Y, Z, E) tensor), in the frame's own ego frame, and the
   column features are warped as in 1. The P warped frames and their inside masks are stacked
   as channels. Optionally the latent forecast's decoded class probabilities for frame k enter
   by a linear map of the folded (Z, C) probabilities; an embedding of the future step k is added.
3. **A small 2D U-Net** down to 1/8 resolution (25x25 cells of 3.2 m on Occ3D, where a few 3x3
   convolutions span tens of metres: a car moves up to ~30 m in 3 s) gives per-voxel logits.
4. **Residual over the prior.** ``logits = prior_scale * (onehot(prior) + net)`` with the net's
   last layer zero-initialised: an untrained refiner predicts exactly its prior, and training
   learns what the prior misses: moving objects (from the motion in the warped history) and the
   area that enters the grid as the ego drives (from the road layout and the latent forecast).
   The prior (``base``) is the ego-warped current frame (the EgoWarp baseline), or motion-warp
   (:mod:`occ4d.models.world.motion`: ego-warp with constant-velocity tracked objects), whose
   columns then also enter the stem like a warped past frame's, so the net sees what it corrects,
   or ``motion-extrude`` (motion-warp with the ground classes continued into the area entering
   the grid from the nearest border column), or ``fused-warp`` (motion-extrude with static columns
   resampled from every history frame).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from occ4d.core.grid import OCC3D, GridSpec
from occ4d.core.vocab import OCC3D_VOCAB
from occ4d.models.world.baselines import warp_grid
from occ4d.models.world.embed import rebase_traj
from occ4d.models.world.motion import MOTION_BASELINES, MotionWarp, motion_config

BASES = ("ego-warp", *MOTION_BASELINES)
REGIONS = ("all", "unseen")


@dataclass(frozen=True)
class RefinerConfig:
    """Size of the refiner and what it sees.

    ``embed``: width of a past frame's column features; ``channels``: U-Net widths at full, 1/2,
    1/4, ... resolution (one level per entry); ``latent``: whether it reads the latent forecast's
    decoded class probabilities; ``prior_scale``: logit scale of the ego-warp prior (and of the
    net's corrections, which are in units of it);
    ``train_frames``: how many future frames (drawn per step) it trains on, which cuts its
    cost per clip (0: all); ``base``: the prior it corrects, one of ``BASES``; ``balanced``: train
    with ENet-style class weights (rare classes count more, as mIoU weighs every class the same);
    ``region``: where the net may correct the prior, ``"all"`` columns or only the ``"unseen"``
    ones (outside the current frame's grid once warped to frame k), where the prior knows nothing;
    elsewhere the forecast is the prior itself.
    """

    num_classes: int = 18
    past: int = 4
    future: int = 6
    grid: GridSpec = OCC3D
    free: int = OCC3D_VOCAB.free
    embed: int = 8
    channels: tuple[int, ...] = (16, 32, 48, 64)
    mid_blocks: int = 2
    latent: bool = True
    prior_scale: float = 4.0
    train_frames: int = 2
    base: str = "ego-warp"
    balanced: bool = False
    region: str = "all"

    def __post_init__(self) -> None:
        if self.region not in REGIONS:
            raise ValueError(f"region must be one of {REGIONS}, got {self.region!r}")
        if self.base not in BASES:
            raise ValueError(f"base must be one of {BASES}, got {self.base!r}")
        if self.embed < 1:
            raise ValueError(f"embed must be positive, got {self.embed}")
        if len(self.channels) < 2 or min(self.channels) < 1:
            raise ValueError(f"channels needs two or more positive widths, got {self.channels}")
        if self.past < 1 or self.future < 1:
            raise ValueError("past and future must be positive")
        if not 0 <= self.free < self.num_classes:
            raise ValueError(f"free class {self.free} is not among {self.num_classes} classes")
        if self.prior_scale <= 0:
            raise ValueError(f"prior_scale must be positive, got {self.prior_scale}")
        if not 0 <= self.train_frames <= self.future:
            raise ValueError(f"train_frames must be in 0..{self.future}, got {self.train_frames}")

    @property
    def frames(self) -> int:
        return self.past + self.future


def warp_history(
    past: torch.Tensor,
    traj: torch.Tensor,
    steps: torch.Tensor,
    *,
    grid: GridSpec = OCC3D,
    fill: float = OCC3D_VOCAB.free,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every past frame resampled into the ego frame of each requested future frame.

    Args:
        past: (B, P, X, Y, ...) per-column values, the current frame last: labels (..., Z) or
            column features (..., D); nearest-neighbour resampling moves whole columns.
        traj: (B, P + F, 3) x, y, yaw of every frame relative to the current one (row P - 1 is
            the origin, as :class:`~occ4d.core.Trajectory` rows are).
        steps: (K,) future frame indices in 0..F-1.
        grid: geometry of the grids.
        fill: value of columns whose source lies outside a past frame's grid.

    Returns:
        warped (B, K, P, X, Y, ...) and inside (B, K, P, X, Y) bool, True where the column's
        source lies in the past frame's grid.
    """
    b, p = past.shape[:2]
    k = len(steps)
    rows = p + steps.to(traj.device)
    poses = []
    for src in range(p):
        # The current frame's own poses are the trajectory rows themselves (exactly EgoWarp's);
        # the older frames' are the same poses re-expressed in their ego frame: inv(traj_p) o traj_k.
        rel = traj if src == p - 1 else rebase_traj(traj.double(), src)
        poses.append(rel[:, rows])  # (B, K, 3)
    pose = torch.stack(poses, dim=2).reshape(b * k * p, 3)  # (B*K*P, 3)
    cols = past.shape[2:]
    src_vals = past[:, None].expand(b, k, *past.shape[1:]).reshape(b * k * p, cols[0], cols[1], -1)
    warped = warp_grid(src_vals, pose, grid=grid, fill=fill)
    ones = torch.ones(b * k * p, cols[0], cols[1], 1, dtype=torch.uint8, device=past.device)
    inside = warp_grid(ones, pose, grid=grid, fill=0)[..., 0].bool()
    return warped.reshape(b, k, p, *cols), inside.reshape(b, k, p, *cols[:2])


class _ColumnEmbed(torch.autograd.Function):
    """Sum over a column of one learned vector per (height, class): (M, Z) ids -> (M, D).

    The same as ``F.embedding_bag(ids + z * C, weight, mode="sum")``, whose backward sorts all
    M * Z indices (~10x slower on CPU); here the weight's gradient is one ``index_add_`` per
    height into that height's (C, D) block.
    """

    @staticmethod
    def forward(ctx, cls: torch.Tensor, weight: torch.Tensor, num_classes: int) -> torch.Tensor:
        z = cls.shape[1]
        offsets = torch.arange(z, device=cls.device) * num_classes
        ctx.save_for_backward(cls)
        ctx.shape, ctx.dtype = (z, num_classes, weight.shape[1]), weight.dtype
        return F.embedding_bag(cls.long() + offsets, weight, mode="sum")

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (cls,) = ctx.saved_tensors
        z, c, d = ctx.shape
        gw = torch.zeros(z, c, d, dtype=ctx.dtype, device=grad.device)
        grad = grad.to(ctx.dtype)  # under autocast the incoming gradient may be bf16
        for h in range(z):
            gw[h].index_add_(0, cls[:, h].long(), grad)
        return None, gw.reshape(z * c, d), None


def _norm(ch: int) -> nn.GroupNorm:
    return nn.GroupNorm(next(g for g in (8, 4, 2, 1) if ch % g == 0), ch)


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1), _norm(cout), nn.SiLU())


class _ResBlock(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(ch, ch, 3, padding=1), _norm(ch), nn.SiLU(), nn.Conv2d(ch, ch, 3, padding=1), _norm(ch)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.silu(x + self.body(x))


class WarpRefiner(nn.Module):
    """``forward(past_occ, traj, steps, latent_probs) -> logits (B, K, X, Y, Z, C)`` (module docstring)."""

    def __init__(self, config: RefinerConfig):
        super().__init__()
        self.config = cfg = config
        z, c, w = cfg.grid.shape[2], cfg.num_classes, cfg.channels
        self.column = nn.Parameter(torch.randn(z * c, cfg.embed) / z**0.5)  # (Z*C, D) column embedding
        # Stem: the P warped frames' column features and inside masks, side by side (and the
        # motion-warp prior's column features when that is the base).
        moved = cfg.embed if cfg.base in MOTION_BASELINES else 0
        self.stem = nn.Conv2d(cfg.past * (cfg.embed + 1) + moved, w[0], 1)
        self.motion = (
            MotionWarp(past=cfg.past, future=cfg.future, grid=cfg.grid, config=motion_config(cfg.base))
            if cfg.base in MOTION_BASELINES
            else None
        )
        self.latent = nn.Linear(z * c, w[0], bias=False) if cfg.latent else None
        self.step = nn.Embedding(cfg.future, w[0])
        self.stem_norm = _norm(w[0])
        self.down = nn.ModuleList(
            nn.Sequential(_conv(w[i - 1], w[i], stride=2), _conv(w[i], w[i])) for i in range(1, len(w))
        )
        self.mid = nn.Sequential(*[_ResBlock(w[-1]) for _ in range(cfg.mid_blocks)])
        # Upsampling merges: 3x3 below full resolution; 1x1 at full resolution, where a 3x3 would
        # cost more than the rest of the net and the stem already carries the per-column detail.
        self.up = nn.ModuleList(
            _conv(w[i] + w[i - 1], w[i - 1])
            if i > 1
            else nn.Sequential(nn.Conv2d(w[1] + w[0], w[0], 1), _norm(w[0]), nn.SiLU())
            for i in range(len(w) - 1, 0, -1)
        )
        # A linear map on channels-last features writes the logits straight into their
        # (X, Y, Z, C) layout (a 1x1 conv would need a full-resolution permute both ways).
        self.head = nn.Linear(w[0], z * c)
        nn.init.zeros_(self.head.weight)  # the refiner starts as the ego-warp baseline
        nn.init.zeros_(self.head.bias)

    def _check(self, past_occ: torch.Tensor, traj: torch.Tensor, steps: torch.Tensor, probs) -> None:
        cfg = self.config
        want = (cfg.past, *cfg.grid.shape)
        if past_occ.ndim != 5 or tuple(past_occ.shape[1:]) != want:
            shape = ", ".join(map(str, want))
            raise ValueError(f"past_occ must be (B, {shape}), got {tuple(past_occ.shape)}")
        if traj.ndim != 3 or tuple(traj.shape[1:]) != (cfg.frames, 3) or traj.shape[0] != past_occ.shape[0]:
            raise ValueError(f"traj must be ({past_occ.shape[0]}, {cfg.frames}, 3), got {tuple(traj.shape)}")
        if steps.ndim != 1 or len(steps) == 0 or steps.min() < 0 or steps.max() >= cfg.future:
            raise ValueError(f"steps must be a non-empty list of future indices in 0..{cfg.future - 1}")
        if (probs is not None) != cfg.latent:
            raise ValueError(
                "this refiner " + ("needs" if cfg.latent else "takes no") + " latent class probabilities"
            )
        if probs is not None:
            want_p = (past_occ.shape[0], len(steps), *cfg.grid.shape, cfg.num_classes)
            if tuple(probs.shape) != want_p:
                raise ValueError(f"latent_probs must be {want_p}, got {tuple(probs.shape)}")

    @torch.no_grad()
    def prior(self, past_occ: torch.Tensor, traj: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
        """The forecast the refiner corrects, (B, K, X, Y, Z) labels: the current frame ego-warped
        to each future frame k (the EgoWarp baseline's prediction), or motion-warp's (with the
        ground extruded into the area entering the grid for ``motion-extrude``, and the static
        columns fused from the history for ``fused-warp``)."""
        cfg = self.config
        if self.motion is not None:
            return self.motion.predict(past_occ, traj, steps).to(past_occ.dtype)
        b, k = past_occ.shape[0], len(steps)
        nx, ny, nz = cfg.grid.shape
        return warp_grid(
            past_occ[:, -1:].expand(b, k, nx, ny, nz).reshape(b * k, nx, ny, nz),
            traj[:, cfg.past + steps].reshape(b * k, 3),
            grid=cfg.grid,
            fill=cfg.free,
        ).reshape(b, k, nx, ny, nz)

    def forward(
        self,
        past_occ: torch.Tensor,
        traj: torch.Tensor,
        steps: torch.Tensor | None = None,
        latent_probs: torch.Tensor | None = None,
        prior: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """past_occ (B, P, X, Y, Z) ids; traj (B, P + F, 3); steps (K,) future indices (default all);
        latent_probs (B, K, X, Y, Z, C) when ``config.latent``; ``prior`` (B, K, X, Y, Z), the
        :meth:`prior` of these steps when the caller already has it (motion-warp tracks the whole
        history, so a forecast made frame by frame computes it once). Returns logits (B, K, X, Y, Z, C)."""
        cfg = self.config
        if steps is None:
            steps = torch.arange(cfg.future, device=past_occ.device)
        steps = torch.as_tensor(steps, device=past_occ.device).long()
        self._check(past_occ, traj, steps, latent_probs)
        b, p = past_occ.shape[:2]
        k = len(steps)
        nx, ny, nz = cfg.grid.shape
        # Columns are embedded once per past frame in its own ego frame, then warped (cheaper than
        # embedding each of the K * P warped copies; nearest-neighbour warping commutes with it).
        cols = _ColumnEmbed.apply(past_occ.reshape(-1, nz), self.column, cfg.num_classes)
        cols = cols.reshape(b, p, nx, ny, cfg.embed)  # (B, P, X, Y, D)
        feats, inside = warp_history(cols, traj, steps, grid=cfg.grid, fill=0.0)  # (B, K, P, X, Y, D)
        if prior is None:
            prior = self.prior(past_occ, traj, steps)  # (B, K, X, Y, Z)
        elif tuple(prior.shape) != (b, k, nx, ny, nz):
            raise ValueError(f"prior must be {(b, k, nx, ny, nz)}, got {tuple(prior.shape)}")
        stem_in = [
            rearrange(feats, "b k p x y d -> (b k) (p d) x y"),
            rearrange(inside, "b k p x y -> (b k) p x y").to(feats.dtype),
        ]
        if self.motion is not None:
            moved = _ColumnEmbed.apply(prior.reshape(-1, nz), self.column, cfg.num_classes)
            stem_in.append(rearrange(moved.reshape(b * k, nx, ny, cfg.embed), "n x y d -> n d x y"))
        h = torch.cat(stem_in, dim=1)
        h = self.stem(h)  # (B*K, C0, X, Y)
        if self.latent is not None:
            lat = self.latent(rearrange(latent_probs.to(h.dtype), "b k x y z c -> (b k) x y (z c)"))
            h = h + rearrange(lat, "n x y c -> n c x y")
        h = h + self.step(steps).repeat(b, 1)[:, :, None, None]
        h = F.silu(self.stem_norm(h))
        mult = 2 ** (len(cfg.channels) - 1)
        h = F.pad(h, (0, (-ny) % mult, 0, (-nx) % mult))
        skips = [h]
        for down in self.down:
            skips.append(down(skips[-1]))
        h = self.mid(skips.pop())
        for up in self.up:
            skip = skips.pop()
            h = up(torch.cat([F.interpolate(h, size=skip.shape[-2:], mode="nearest"), skip], dim=1))
        delta = self.head(rearrange(h[:, :, :nx, :ny], "n c x y -> n x y c"))  # (B*K, X, Y, Z*C)
        delta = delta.reshape(b, k, nx, ny, nz, cfg.num_classes)
        if cfg.region == "unseen":  # only where the current frame, warped to frame k, saw nothing
            delta = delta * (~inside[:, :, -1])[..., None, None].to(delta.dtype)
        prior = prior.reshape(b, k, nx, ny, nz, 1)
        # Corrections in units of the prior: Adam moves each weight by about lr per step whatever
        # the scale, so a head output of ~1 flips a voxel after as many steps at any prior_scale.
        return cfg.prior_scale * delta.scatter_add(-1, prior.long(), delta.new_ones(prior.shape))
