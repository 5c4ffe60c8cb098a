"""The trainable models the one training loop knows, and how to load what it trained.

A model joins the engine through a :class:`ModelSpec` (its config type, named presets, a build
function, a dataset factory, a loss step and an evaluation) and ONE line in :data:`SPECS`:

    SPECS = {..., "worldmodel": "occ4d.models.world.recipe:SPEC"}

after which ``occ4d train worldmodel --preset NAME --data DIR --out RUN`` works, with every
field of its config overridable from the command line, checkpoints, resume, EMA, torchrun and
periodic evaluation included. A spec lives beside its model, in the family's ``recipe`` module;
``occ4d.models.tokenizers.recipe`` is the worked example.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from occ4d.core.errors import DataError
from occ4d.train.checkpoint import load_checkpoint
from occ4d.train.config import Preset, TrainConfig, load_train_config


@dataclass(frozen=True)
class ModelSpec:
    """Everything the loop needs to train and evaluate one kind of model.

    - ``build(model_config) -> nn.Module``: a plain module, weights from torch's seeded RNG;
    - ``dataset(config, split) -> Dataset``: items are dicts of arrays (collated by torch);
    - ``loss(model, batch, config) -> (loss, {name: float})``: ``batch`` is already on the
      device; ``model`` may be DDP-wrapped, so read settings from ``config.model``;
    - ``evaluate(model, dataset, config, device) -> {name: float}``: runs on every process
      (each sees its share of ``dataset``) and returns the same totals on all of them;
    - ``collate``: how items become a batch (torch's default when None);
    - ``fit(model, train_set, config)``: optional; sets data-derived buffers (e.g. a class prior
      from the training split) once, when a run starts fresh (a resumed run reads them from its
      checkpoint). It must give the same result on every process.
    """

    name: str
    config_type: type
    presets: Mapping[str, Preset]
    build: Callable[[Any], nn.Module]
    dataset: Callable[[TrainConfig, str], Dataset]
    loss: Callable[[nn.Module, dict, TrainConfig], tuple[torch.Tensor, dict[str, float]]]
    evaluate: Callable[[nn.Module, Dataset, TrainConfig, torch.device], dict[str, float]]
    collate: Callable[[list], Any] | None = None  # batches items (default: torch's default_collate)
    fit: Callable[[nn.Module, Dataset, TrainConfig], None] | None = None  # data-derived buffers at start


# name -> "module:attribute" of its ModelSpec; imported only when used.
SPECS: dict[str, str] = {
    "tokenizer": "occ4d.models.tokenizers.recipe:SPEC",
    "worldmodel": "occ4d.models.world.recipe:SPEC",
    "features": "occ4d.models.features.recipe:SPEC",
    "perception": "occ4d.models.perception.recipe:SPEC",
}


def get_spec(name: str) -> ModelSpec:
    if name not in SPECS:
        raise KeyError(f"unknown model {name!r}; trainable models: {sorted(SPECS)}")
    module, attr = SPECS[name].split(":")
    return getattr(importlib.import_module(module), attr)


def load_model(path: str | Path, ema: bool = True, device: str | torch.device = "cpu",
               kind: str | None = None) -> tuple[nn.Module, TrainConfig, dict]:
    """A trained model from a run folder (its latest checkpoint) or a checkpoint file.

    Returns (model in eval mode, its TrainConfig, the checkpoint state). ``ema`` picks the EMA
    weights when the run kept them. ``kind`` (a name in :data:`SPECS`) refuses a checkpoint of
    another model before building it. Anything that is not a loadable checkpoint raises
    DataError naming the file.
    """
    tensors, state = load_checkpoint(path)
    config = state.get("config")
    name = config.get("model_name") if isinstance(config, dict) else None
    if name not in SPECS:
        raise DataError(path, f"not a trained model's checkpoint (its JSON's config names model "
                              f"{name!r}; trainable models: {sorted(SPECS)})")
    if kind is not None and name != kind:
        raise DataError(path, f"a {name} checkpoint, but a {kind} checkpoint is expected here")
    spec = get_spec(name)
    try:
        cfg = load_train_config(config, spec.config_type)
    except (KeyError, TypeError, ValueError) as e:
        raise DataError(path, f"the checkpoint's config is not a valid {name} config "
                              f"({type(e).__name__}: {e})") from e
    model = spec.build(cfg.model)
    weights = tensors["ema"] if ema and "ema" in tensors else tensors["model"]
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as e:  # missing, unexpected or mis-shaped tensors
        first = str(e).splitlines()[1].strip() if "\n" in str(e) else str(e)
        raise DataError(path, f"the weights do not fit the {name} model of its config ({first})") from e
    return model.to(device).eval(), cfg, state
