"""occ4d's occupancy feature extractor as a trainable model (see :mod:`occ4d.models.features.model`).

``occ4d train features --preset v1 --data SYNTH_DIR --out runs/features``: an autoencoder of
single frames; evaluation reports the validation reconstruction cross-entropy and the Fréchet
distance between the features of two disjoint halves of the validation split (a floor for
what a perfect generator could reach at that sample size).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from occ4d.data.dataset import collate_clips
from occ4d.models.features.model import FeatureConfig, OccFeatureExtractor, feature_loss
from occ4d.train.config import DataConfig, OptimConfig, Preset, TrainConfig
from occ4d.train.registry import ModelSpec

PRESETS: dict[str, Preset] = {
    "v1": Preset(
        FeatureConfig(),
        DataConfig(frames=1, batch_size=8),
        OptimConfig(lr=2e-3, total_samples=4_000, warmup_samples=200, ema_decay=0.99),
        note="occ4d-feat-v1: 6 stride-2 convs, 256-d pooled feature, trained on the synthetic world",
    ),
    "tiny": Preset(
        FeatureConfig(channels=(16, 32, 64, 64, 128, 128), dim=128),
        DataConfig(frames=1, batch_size=8),
        OptimConfig(lr=2e-3, total_samples=2_000, warmup_samples=100, ema_decay=0.99),
        note="narrower v1 for quick CPU runs",
    ),
}


def build(cfg: FeatureConfig) -> nn.Module:
    return OccFeatureExtractor(cfg)


def dataset(cfg: TrainConfig, split: str) -> Dataset:
    from occ4d.core.errors import DataError
    from occ4d.data.dataset import ClipDataset
    from occ4d.data.index import load_index

    records = load_index(cfg.data.root, split)
    if not records:
        raise DataError(cfg.data.root, f"no frames in split {split!r}")
    return ClipDataset(
        records, past=1, future=0, stride=1, with_masks=False, cache=split != cfg.data.val_split
    )


def loss(model: nn.Module, batch: dict, cfg: TrainConfig) -> tuple[torch.Tensor, dict[str, float]]:
    return feature_loss(model, batch["semantics"][:, 0], cfg.model.num_classes)


def evaluate(model: nn.Module, data: Dataset, cfg: TrainConfig, device: torch.device) -> dict[str, float]:
    from occ4d.metrics.generation import frechet_distance
    from occ4d.metrics.reduce import all_gather_cat, all_reduce_sum
    from occ4d.train import distributed as dist

    net = model.module if hasattr(model, "module") else model
    n = len(data) if not cfg.data.max_val_samples else min(len(data), cfg.data.max_val_samples)
    indices = list(range(dist.rank(), n, dist.world_size()))
    loader = DataLoader(
        torch.utils.data.Subset(data, indices), batch_size=cfg.data.batch_size, collate_fn=collate_clips
    )
    sums = torch.zeros(2, dtype=torch.float64, device=device)
    feats, order = [], []
    with torch.no_grad():
        for batch in loader:
            occ = batch["semantics"][:, 0].to(device)
            ce, _ = feature_loss(net, occ, cfg.model.num_classes)
            sums += torch.tensor([float(ce) * occ.shape[0], occ.shape[0]], dtype=torch.float64, device=device)
            feats.append(net.features(occ).double())
            order.append(batch["index"].to(device))
    sums = all_reduce_sum(sums)
    out = {"val_ce": float(sums[0] / sums[1].clamp_min(1))}
    if feats:
        f = all_gather_cat(torch.cat(feats)).cpu()
        idx = all_gather_cat(torch.cat(order)).cpu()
        f = f[torch.argsort(idx)]
        if len(f) >= 8:
            out["fd_val_halves"] = frechet_distance(f[0::2].numpy(), f[1::2].numpy())
    return out


SPEC = ModelSpec(
    name="features",
    config_type=FeatureConfig,
    presets=PRESETS,
    build=build,
    dataset=dataset,
    loss=loss,
    evaluate=evaluate,
    collate=collate_clips,
)
