"""Learning-rate schedule: linear warmup, then cosine decay to ``min_lr_ratio * lr``.

A pure function of the number of samples seen, so a resumed run needs no scheduler state.
"""

from __future__ import annotations

import math

from occ4d.train.config import OptimConfig


def lr_at(samples: int, cfg: OptimConfig) -> float:
    if cfg.warmup_samples and samples < cfg.warmup_samples:
        return cfg.lr * (samples + 1) / cfg.warmup_samples
    span = max(cfg.total_samples - cfg.warmup_samples, 1)
    progress = min(max((samples - cfg.warmup_samples) / span, 0.0), 1.0)
    floor = cfg.lr * cfg.min_lr_ratio
    return floor + (cfg.lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
