"""A forecaster with no latent space: a hand-written warp and a learned model of what it cannot know.

The headroom table (README, World models) puts most of fused-warp's remaining error in the area
that enters the grid as the ego drives (36.7% of the grid at 3 s), where no history frame saw
anything and fused-warp can only continue the ground of the border. A latent forecast adds
nothing there at a CPU budget: it is capped by its tokenizer. This model is the
:class:`~occ4d.models.world.refiner.WarpRefiner` alone (``occ4d train worldmodel`` kind
``refiner``): its prior is a hand-written forecast (``fused-warp`` by default), and it learns
corrections from the warped history and the prior itself, only in the unseen columns when
``region="unseen"``. No tokenizer and no diffusion model are involved, so every sample of the
budget trains the refiner.

The loss is cross-entropy over the voxels the refiner may change (only those carry gradient:
elsewhere the forecast is the prior), optionally with ENet class weights computed over those voxels
and a Lovász-softmax term. ``mirror`` trains on left-right mirrored windows half the time (the
grid's y axis flipped, the trajectory's y and yaw negated), which doubles the layouts seen per
town; traffic then keeps left in the mirrored half.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from occ4d.models.losses import lovasz_softmax
from occ4d.models.tokenizers import balanced_class_weights
from occ4d.models.world.baselines import unseen_columns
from occ4d.models.world.refiner import RefinerConfig, WarpRefiner


def mirror_window(occ: torch.Tensor, traj: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The same window seen in a mirror: (B, T, X, Y, Z) labels with y flipped about the grid's
    centre line, and (B, T, 3) poses with y and yaw negated. Exact for grids centred on the ego in y
    (Occ3D's): a column at y moves to -y, a pose (x, y, yaw) to (x, -y, -yaw)."""
    return occ.flip(3), traj * traj.new_tensor([1.0, -1.0, -1.0])


class WarpForecaster(nn.Module):
    """``forward(occ, traj, generator) -> (loss, logs)`` on (past + future)-frame windows;
    ``forecast(past_occ, traj) -> (B, future, X, Y, Z)`` uint8 (module docstring)."""

    def __init__(self, config: RefinerConfig, *, lovasz_weight: float = 0.0, mirror: bool = False):
        super().__init__()
        if config.latent:
            raise ValueError("a WarpForecaster has no latent forecast: build its refiner with latent=False")
        if lovasz_weight < 0:
            raise ValueError(f"lovasz_weight must be non-negative, got {lovasz_weight}")
        self.config = config
        self.lovasz_weight, self.mirror = float(lovasz_weight), bool(mirror)
        self.refiner = WarpRefiner(config)

    @property
    def past(self) -> int:
        return self.config.past

    @property
    def future(self) -> int:
        return self.config.future

    def _check(self, occ: torch.Tensor, traj: torch.Tensor) -> None:
        cfg = self.config
        if occ.ndim != 5 or occ.shape[1] != cfg.frames or traj.shape[:2] != occ.shape[:2]:
            raise ValueError(
                f"need (B, {cfg.frames}, X, Y, Z) windows and (B, {cfg.frames}, 3) trajectories, got "
                f"{tuple(occ.shape)} and {tuple(traj.shape)}"
            )

    def forward(self, occ: torch.Tensor, traj: torch.Tensor, generator: torch.Generator, keys=None):
        """Loss on ``train_frames`` future frames drawn from ``generator`` (keys: unused, for the
        world models' common call)."""
        cfg = self.config
        self._check(occ, traj)
        traj = traj.float()
        dev = occ.device
        if self.mirror and bool(torch.rand((), generator=generator, device=generator.device) < 0.5):
            occ, traj = mirror_window(occ, traj)
        n = cfg.train_frames or cfg.future
        steps = torch.randperm(cfg.future, generator=generator, device=generator.device)[:n].sort().values
        steps = steps.to(dev)
        past = occ[:, : cfg.past]
        logits = self.refiner(past, traj, steps)  # (B, K, X, Y, Z, C)
        target = occ[:, cfg.past + steps].long()  # (B, K, X, Y, Z)
        if cfg.region == "unseen":
            cols = unseen_columns(traj.double(), cfg.past, grid=cfg.grid)[:, steps]  # (B, K, X, Y)
            keep = cols[..., None].expand_as(target)
        else:
            keep = torch.ones_like(target, dtype=torch.bool)
        flat, y = logits[keep].float(), target[keep]
        if y.numel() == 0:  # the ego stood still: nothing entered the grid
            zero = logits.sum() * 0.0  # the same log keys as any step (the loop averages them)
            return zero, {"refine_ce": 0.0, "voxels": 0.0, **({"lovasz": 0.0} if self.lovasz_weight else {})}
        weight = balanced_class_weights(y, cfg.num_classes) if cfg.balanced else None
        ce = F.cross_entropy(flat, y, weight=weight)
        loss, logs = ce, {"refine_ce": float(ce.detach()), "voxels": float(y.numel())}
        if self.lovasz_weight:
            lov = lovasz_softmax(flat.softmax(-1), y)
            loss = loss + self.lovasz_weight * lov
            logs["lovasz"] = float(lov.detach())
        return loss, logs

    @torch.no_grad()
    def forecast(self, past_occ: torch.Tensor, traj: torch.Tensor, **_) -> torch.Tensor:
        """past_occ (B, past, X, Y, Z), traj (B, past + future, 3) -> (B, future, X, Y, Z) uint8.

        The prior is computed once for all frames (motion-warp tracks the whole history), then
        each future frame is refined alone, which bounds memory to one frame's logits."""
        cfg = self.config
        if past_occ.ndim != 5 or past_occ.shape[1] != cfg.past or traj.shape[1] != cfg.frames:
            raise ValueError(
                f"need {cfg.past} past frames and {cfg.frames} trajectory rows, got "
                f"{tuple(past_occ.shape)} and {tuple(traj.shape)}"
            )
        traj = traj.float()
        dev = past_occ.device
        prior = self.refiner.prior(past_occ, traj, torch.arange(cfg.future, device=dev))
        out = []
        for k in range(cfg.future):
            steps = torch.tensor([k], device=dev)
            logits = self.refiner(past_occ, traj, steps, None, prior=prior[:, k : k + 1])
            out.append(logits.argmax(-1).to(torch.uint8))
        return torch.cat(out, dim=1)
