"""A planner that predicts the future ego trajectory from the past occupancy (OccWorld's planning task).

Each past frame is reduced to a bird's-eye view of per-class occupancy (one channel per class:
is there a voxel of that class anywhere in the column), the frames are stacked on the channel
axis with the past ego poses broadcast as extra planes, and a strided CNN regresses the future
(x, y, yaw) rows relative to the current frame. Predictions are cumulative sums of per-step
offsets, so the network learns motion increments rather than absolute positions.

Its output feeds the forecasters when they run with ``--traj pred``; its quality is measured by
:class:`occ4d.metrics.control.PlanningMetric` (L2 at 1/2/3 s, collision rate).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class PlannerConfig:
    num_classes: int = 18
    past: int = 4
    future: int = 6
    channels: int = 32
    levels: int = 4  # stride-2 conv levels over the BEV
    yaw_weight: float = 4.0  # radians are small next to metres; weight them up in the loss

    def __post_init__(self) -> None:
        if self.past < 1 or self.future < 1 or self.levels < 1 or self.channels < 1:
            raise ValueError("past, future, levels and channels must be positive")


def bev_onehot(occ: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(B, T, X, Y, Z) ids -> (B, T, C, X, Y) float: 1 where the column holds class c."""
    onehot = F.one_hot(occ.long(), num_classes)  # (B, T, X, Y, Z, C)
    return onehot.amax(dim=4).permute(0, 1, 4, 2, 3).float()


class Planner(nn.Module):
    """``forward(past_occ, past_traj) -> (B, future, 3)`` in the current frame."""

    def __init__(self, config: PlannerConfig):
        super().__init__()
        self.config = cfg = config
        c_in = cfg.past * (cfg.num_classes + 3)
        layers: list[nn.Module] = []
        c = c_in
        for i in range(cfg.levels):
            c_out = cfg.channels * 2 ** min(i, 3)
            layers += [
                nn.Conv2d(c, c_out, 3, stride=2, padding=1),
                nn.GroupNorm(8 if c_out % 8 == 0 else 1, c_out),
                nn.SiLU(),
            ]
            c = c_out
        self.encoder = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Linear(c + 3 * cfg.past, 256), nn.SiLU(), nn.Linear(256, 3 * cfg.future))
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)

    def forward(self, past_occ: torch.Tensor, past_traj: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        b, t, x, y, _ = past_occ.shape
        if t != cfg.past or past_traj.shape[1] != cfg.past:
            raise ValueError(f"need {cfg.past} past frames and poses, got {t} and {past_traj.shape[1]}")
        bev = bev_onehot(past_occ, cfg.num_classes)  # (B, T, C, X, Y)
        poses = past_traj.float()[..., None, None].expand(b, t, 3, x, y) / 10.0
        h = torch.cat([bev, poses], dim=2).reshape(b, -1, x, y)
        h = self.encoder(h).mean(dim=(2, 3))  # (B, C)
        steps = self.head(torch.cat([h, past_traj.float().reshape(b, -1) / 10.0], 1)).reshape(
            b, cfg.future, 3
        )
        return torch.cumsum(steps, dim=1)

    def criterion(self, pred: torch.Tensor, gt: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """L1 on x, y plus weighted L1 on yaw, for pred and gt future rows (B, future, 3)."""
        gt = gt.float()
        l_xy = F.l1_loss(pred[..., :2], gt[..., :2])
        l_yaw = F.l1_loss(pred[..., 2], gt[..., 2])
        loss = l_xy + self.config.yaw_weight * l_yaw
        l2 = (pred[..., :2] - gt[..., :2]).norm(dim=-1).mean()
        return loss, {
            "l1_xy": float(l_xy.detach()),
            "l1_yaw": float(l_yaw.detach()),
            "l2": float(l2.detach()),
        }

    def loss(self, past_occ: torch.Tensor, traj: torch.Tensor, generator: torch.Generator | None = None):
        """traj (B, past + future, 3) relative to the current frame (row past - 1)."""
        cfg = self.config
        pred = self(past_occ[:, : cfg.past], traj[:, : cfg.past])
        return self.criterion(pred, traj[:, cfg.past : cfg.past + cfg.future])

    @torch.no_grad()
    def plan(self, past_occ: torch.Tensor, past_traj: torch.Tensor) -> torch.Tensor:
        """The full (B, past + future, 3) trajectory: the given past rows, then the predicted future."""
        return torch.cat([past_traj.float(), self(past_occ, past_traj)], dim=1)
