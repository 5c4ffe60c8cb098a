"""Training configuration: one frozen dataclass per concern, and named presets as plain data.

A run is ``TrainConfig(model=<the model's own config>, data=..., optim=..., run=...)``. A preset
names a model config together with the data and optimisation settings it was tuned with; the
command line starts from a preset and overrides single fields (``occ4d train <model> --preset
NAME --optim.lr 3e-4``). Progress is counted in samples (summed over processes and gradient
accumulation), so a budget means the same thing for any number of processes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class DataConfig:
    """Which data, cut how. ``frames`` is the clip length each sample holds; training windows
    start every ``stride`` frames (the evaluation decides its own windows)."""

    root: str = ""
    train_split: str = "train"
    val_split: str = "val"
    frames: int = 1
    stride: int = 1
    batch_size: int = 1  # per process and micro-step
    num_workers: int = 0
    max_val_samples: int = 0  # 0 = the whole validation split

    def __post_init__(self) -> None:
        if self.frames < 1 or self.stride < 1 or self.batch_size < 1 or self.num_workers < 0:
            raise ValueError(f"invalid data config: {self}")
        if self.max_val_samples < 0:
            raise ValueError("max_val_samples must be >= 0")


@dataclass(frozen=True)
class OptimConfig:
    """AdamW with linear warmup then cosine decay, all measured in samples."""

    lr: float = 1e-3
    weight_decay: float = 0.01
    beta1: float = 0.9
    beta2: float = 0.99
    total_samples: int = 10_000
    warmup_samples: int = 0
    min_lr_ratio: float = 0.1  # the cosine ends at lr * min_lr_ratio
    grad_clip: float = 1.0  # max global grad norm; 0 disables clipping
    accum: int = 1  # micro-batches per optimiser step
    ema_decay: float = 0.999  # 0 disables the EMA weights

    def __post_init__(self) -> None:
        if self.lr <= 0 or self.total_samples <= 0 or self.accum < 1:
            raise ValueError(f"lr, total_samples and accum must be positive: {self}")
        if not 0 <= self.warmup_samples <= self.total_samples:
            raise ValueError("warmup_samples must lie in [0, total_samples]")
        if not 0 <= self.ema_decay < 1 or not 0 <= self.min_lr_ratio <= 1 or self.grad_clip < 0:
            raise ValueError(f"ema_decay in [0, 1), min_lr_ratio in [0, 1], grad_clip >= 0: {self}")


@dataclass(frozen=True)
class RunConfig:
    """Where and how: output folder, seed, cadences (in samples), precision, logging."""

    out: str = "runs/default"
    seed: int = 0
    # the initial weights' seed when it should differ from ``seed`` (-1: ``seed``); the data order
    # and every step's randomness follow ``seed``, so runs can vary one and hold the other
    init_seed: int = -1
    resume: bool = False  # continue from the latest checkpoint in ``out``
    log_every: int = 64
    ckpt_every: int = 2_000
    eval_every: int = 0  # 0: evaluate only at the end
    keep_last: int = 3
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU
    device: str = "auto"
    tensorboard: bool = False  # also write TensorBoard events (only if it is installed)
    progress: bool = True
    max_steps: int = 0  # stop after this many optimiser steps of this invocation (0: run to the end)
    threads: int = 0  # torch intra-op threads per process (0: torch's default)

    def __post_init__(self) -> None:
        if min(self.log_every, self.ckpt_every) <= 0 or self.eval_every < 0 or self.keep_last < 1:
            raise ValueError(f"cadences must be positive and keep_last >= 1: {self}")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ValueError(f"precision must be auto, fp32 or bf16, got {self.precision!r}")
        if self.init_seed < -1:
            raise ValueError(f"init_seed must be >= 0, or -1 for the run seed, got {self.init_seed}")
        if self.max_steps < 0 or self.threads < 0:
            raise ValueError("max_steps and threads must be >= 0")


@dataclass(frozen=True)
class Preset:
    """A named starting point: the model config plus the data and optimisation it goes with."""

    model: Any
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    note: str = ""


@dataclass(frozen=True)
class TrainConfig:
    """Everything a run needs; saved as JSON beside every checkpoint."""

    model_name: str
    preset: str
    model: Any
    data: DataConfig
    optim: OptimConfig
    run: RunConfig


def to_dict(obj: Any) -> Any:
    """Dataclasses and tuples as JSON-ready dicts and lists."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    return obj


def from_dict(cls: type, data: dict) -> Any:
    """Rebuild a flat frozen dataclass from :func:`to_dict` output (JSON lists become tuples)."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"{cls.__name__} has no field(s) {sorted(unknown)}")
    return cls(**{k: _tupled(v) for k, v in data.items()})


def _tupled(value: Any) -> Any:
    return tuple(_tupled(v) for v in value) if isinstance(value, list) else value


def load_train_config(data: dict, model_type: type) -> TrainConfig:
    """The TrainConfig saved in a checkpoint's JSON, with the model config as ``model_type``."""
    return TrainConfig(
        model_name=data["model_name"],
        preset=data["preset"],
        model=from_dict(model_type, data["model"]),
        data=from_dict(DataConfig, data["data"]),
        optim=from_dict(OptimConfig, data["optim"]),
        run=from_dict(RunConfig, data["run"]),
    )
