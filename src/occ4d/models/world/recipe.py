"""The world models as trainable models: data, loss step and evaluation (``occ4d train worldmodel``).

Their one flat config, named presets and ``build`` are in :mod:`occ4d.models.world.presets`.
Windows are ``past + future`` keyframes (``frames`` for the generator); the loss step calls the
model itself so a DDP wrapper synchronises its gradients; evaluation scores forecasters with the
OccWorld-protocol mIoU, the planner with L2 and collisions, and the generator with its
validation denoising loss and the controllability of a few generated clips.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from occ4d.data.dataset import collate_clips
from occ4d.models.world.presets import PRESETS, WorldModelConfig, build
from occ4d.train.config import TrainConfig
from occ4d.train.registry import ModelSpec


def dataset(cfg: TrainConfig, split: str) -> Dataset:
    """Windows of ``past + future`` (or ``frames`` for the generator) consecutive keyframes.

    The trajectory of a window is relative to its current frame (row ``past - 1``; the last row
    for the generator, which rebases it to its first frame itself). Validation windows start
    every frame, as in the OccWorld protocol (L - 12 + 1 per scene for 11-frame windows; see
    PROTOCOLS §3.9 for OccWorld's extra skipped start).
    """
    from occ4d.core.errors import DataError
    from occ4d.data.dataset import ClipDataset
    from occ4d.data.index import load_index

    m: WorldModelConfig = cfg.model
    records = load_index(cfg.data.root, split)
    if not records:
        raise DataError(cfg.data.root, f"no frames in split {split!r}")
    past, future = (m.frames, 0) if m.kind == "generator" else (m.past, m.future)
    val = split == cfg.data.val_split
    return ClipDataset(
        records,
        past=past,
        future=future,
        stride=1 if val else cfg.data.stride,
        with_masks=False,
        cache=not val,
    )


def _net(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") else model


def _step_generator(device: torch.device) -> torch.Generator:
    """A generator seeded from torch's RNG, which the loop reseeds from (seed, rank, step)."""
    return torch.Generator(device).manual_seed(int(torch.randint(0, 2**62, ())))


def loss(model: nn.Module, batch: dict, cfg: TrainConfig) -> tuple[torch.Tensor, dict[str, float]]:
    m: WorldModelConfig = cfg.model
    occ, traj = batch["semantics"], batch["trajectory"].float()
    net = _net(model)
    # Models are called through ``model(...)`` so a DDP wrapper synchronises their gradients.
    if m.kind == "planner":
        return net.criterion(model(occ[:, : m.past], traj[:, : m.past]), traj[:, m.past :])
    if m.kind == "refiner":  # no latents: the warp refiner's loss on the window itself
        return model(occ, traj, _step_generator(occ.device))
    if not bool(net.codec.fitted):  # latent statistics from the first batch (saved with the model)
        net.codec.fit([occ])
    keys = [
        [f"{scene}/{tok}" for tok in toks]
        for scene, toks in zip(batch["scene"], batch["tokens"], strict=True)
    ]
    return model(occ, traj, _step_generator(occ.device), keys)


def evaluate(model: nn.Module, data: Dataset, cfg: TrainConfig, device: torch.device) -> dict[str, float]:
    """Forecasters: OccWorld-protocol mIoU / IoU with the ground-truth trajectory; planner: L2 and
    collisions; generator: validation denoising loss and controllability of a few generated clips."""
    from occ4d.metrics.control import ControlMetric, PlanningMetric
    from occ4d.metrics.forecast import ForecastMetric
    from occ4d.metrics.reduce import all_reduce_sum
    from occ4d.train import distributed as dist

    m: WorldModelConfig = cfg.model
    net = _net(model)
    n = len(data) if not cfg.data.max_val_samples else min(len(data), cfg.data.max_val_samples)
    indices = list(range(dist.rank(), n, dist.world_size()))
    loader = DataLoader(
        torch.utils.data.Subset(data, indices),
        batch_size=cfg.data.batch_size,
        num_workers=cfg.data.num_workers,
        collate_fn=collate_clips,
    )
    if m.kind in ("forecaster", "refiner", "autoregressive"):
        metric = ForecastMetric(steps=m.future)
        for batch in loader:
            occ, traj = batch["semantics"].to(device), batch["trajectory"].to(device).float()
            g = torch.Generator(device).manual_seed(int(batch["index"][0]))
            pred = net.forecast(
                occ[:, : m.past],
                traj,
                generator=g,
                sampler=m.eval_sampler,
                steps=m.eval_steps,
                guidance_scale=m.eval_guidance,
            )
            metric.update(pred, occ[:, m.past :])
        r = metric.compute()
        return {k: float(v) for k, v in r.items() if isinstance(v, (int, float))}
    sums = torch.zeros(4, dtype=torch.float64, device=device)
    if m.kind == "planner":
        metric = PlanningMetric()
        for batch in loader:
            occ, traj = batch["semantics"].to(device), batch["trajectory"].to(device).float()
            with torch.no_grad():
                pred = net(occ[:, : m.past], traj[:, : m.past])
            metric.update(pred, traj[:, m.past :], occ[:, m.past :])
        r = metric.compute() if metric.l2 else {}
        w = r.get("samples", 0.0)
        keys = sorted(k for k in r if k != "samples")
        totals = all_reduce_sum(
            torch.tensor([w] + [r[k] * w for k in keys], dtype=torch.float64, device=device)
        )
        return {k: float(totals[i + 1] / totals[0].clamp_min(1)) for i, k in enumerate(keys)} | {
            "samples": float(totals[0])
        }
    control = ControlMetric()
    for i, batch in enumerate(loader):
        occ, traj = batch["semantics"].to(device), batch["trajectory"].to(device).float()
        g = torch.Generator(device).manual_seed(int(batch["index"][0]))
        with torch.no_grad():
            lval, _ = net.loss(occ, traj, g)
        sums[0] += float(lval) * occ.shape[0]
        sums[1] += occ.shape[0]
        if i * cfg.data.batch_size < m.eval_clips:
            clip = net.generate(
                traj[:1],
                generator=g,
                sampler=m.eval_sampler,
                steps=m.eval_steps,
                guidance_scale=m.eval_guidance,
            )
            control.update(clip[0].cpu(), traj[0].cpu())
    c = control.compute()
    registered = c["steps"] * (1.0 - c["failed_share"]) if c["steps"] else 0.0
    if registered:
        sums[2] += c["trans_err_m"] * registered
        sums[3] += registered
    sums = all_reduce_sum(sums)
    return {
        "val_diffusion_loss": float(sums[0] / sums[1].clamp_min(1)),
        "control_trans_err_m": float(sums[2] / sums[3]) if sums[3] > 0 else float("nan"),
    }


SPEC = ModelSpec(
    name="worldmodel",
    config_type=WorldModelConfig,
    presets=PRESETS,
    build=build,
    dataset=dataset,
    loss=loss,
    evaluate=evaluate,
    collate=collate_clips,
)
