"""Shared settings of the engine tests: the smallest tokenizer run with every moving part."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from occ4d.train.config import OptimConfig, RunConfig, TrainConfig
from occ4d.train.registry import get_spec

# The smallest tokenizer that still has every moving part: VQ with EMA codebook and dead-code
# restarts (RNG), random crops (RNG), EMA weights, warmup + cosine. 6 steps of 2 samples.
CLI_TINY = [
    "--preset", "tiny-vqvae", "--model.channels", "8", "--model.latent-dim", "16",
    "--model.codebook-size", "32", "--model.train-crop", "32",
    "--clips.batch-size", "2", "--clips.max-val-samples", "1",
    "--optim.total-samples", "12", "--optim.warmup-samples", "4", "--optim.ema-decay", "0.9",
    "--run.ckpt-every", "4", "--run.log-every", "2", "--run.progress", "False", "--run.keep-last", "2",
]


def tiny_config(root: Path, out: Path, **run) -> TrainConfig:
    """The same run as CLI_TINY, built in Python."""
    p = get_spec("tokenizer").presets["tiny-vqvae"]
    model = replace(p.model, channels=8, latent_dim=16, codebook_size=32, train_crop=32)
    data = replace(p.data, root=str(root), batch_size=2, max_val_samples=1)
    return TrainConfig("tokenizer", "tiny-vqvae", model, data,
                       OptimConfig(lr=2e-3, total_samples=12, warmup_samples=4, ema_decay=0.9),
                       RunConfig(out=str(out), ckpt_every=4, log_every=2, progress=False, keep_last=2, **run))
