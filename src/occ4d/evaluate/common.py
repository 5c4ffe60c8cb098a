"""What every evaluation shares: its arguments, the pairing of prediction files with
ground-truth records, progress and number formatting.

Predictions are matched to ground-truth frames by token (:mod:`occ4d.io.predictions`). Under
``torchrun`` each process scores every world-th frame and the metrics' ``compute()`` sums their
counters, so every frame counts exactly once for any number of processes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class EvalArgs:
    """The options of one evaluation; ``notes`` collects what the report should say about it."""

    pred: Path
    gt: Path
    mask: str = "camera"
    protocol: str | None = None
    allow_missing: bool = False
    split: str | None = None
    backend: str = "auto"
    device: str = "cpu"
    notes: list[str] = field(default_factory=list)
    ckpt: Path | None = None
    regions: bool = False
    save: Path | None = None


def progress(items, label: str):
    """Progress over the items of a scan (shown from 50 items on; occ4d.core.progress)."""
    from occ4d.core.progress import Progress

    return Progress(items, desc=label, unit="file", enabled=len(items) >= 50, leave=False)


def fmt(v) -> str:
    return "nan" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.2f}"


def jsonable(obj):
    """NaN -> None so the file is valid JSON; everything else unchanged."""
    if isinstance(obj, float):
        return None if math.isnan(obj) else obj
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    return obj


def as_tensor(a, dev):
    """A numpy array as a contiguous tensor on ``dev``."""
    import numpy as np
    import torch

    return torch.from_numpy(np.ascontiguousarray(a)).to(dev)


def gt_records(args: EvalArgs):
    """The ground-truth frame records of ``args.gt`` (its ``args.split``)."""
    from occ4d.data.index import load_index

    return load_index(args.gt, split=args.split)


def pairs(args: EvalArgs, records, shape, free: int, with_flow: bool = False):
    """Yield (record, pred labels, pred flow, source) in record order; handle missing predictions.

    ``source`` names the prediction file and its ground truth, for the metrics' error messages.
    """
    import numpy as np

    from occ4d.core.errors import DataError
    from occ4d.io.predictions import index_predictions, read_prediction

    preds = index_predictions(args.pred, flow=with_flow)
    missing = [r.token for r in records if r.token not in preds]
    if missing and not args.allow_missing:
        shown = ", ".join(missing[:20]) + (" ..." if len(missing) > 20 else "")
        raise DataError(args.pred, f"{len(missing)} ground-truth token(s) have no prediction: {shown} "
                                   "(use --allow-missing to score them as all-free)")
    if missing:
        args.notes.append(f"{len(missing)} missing prediction(s) scored as all-free: {missing[:20]}")
    extra = len(set(preds) - {r.token for r in records})
    if extra:
        args.notes.append(f"{extra} prediction file(s) have no ground truth and were ignored")
    # Under torchrun each process scores every world-th frame; the metrics' compute() sums the
    # counters over processes, so every frame counts exactly once for any number of processes.
    from occ4d.data.sampler import ExactDistributedSampler

    mine = [records[i] for i in ExactDistributedSampler(len(records))]
    for r in progress(mine, "evaluating"):
        if r.token in preds:
            labels, flow = read_prediction(preds[r.token], shape, with_flow)
            source = f"{preds[r.token]} (prediction of {r.token}; ground truth {r.path})"
        else:
            labels = np.full(shape, free, dtype=np.uint8)
            flow = np.zeros((*shape, 2), np.float32) if with_flow else None
            source = f"{r.path} (ground truth of {r.token}, no prediction: scored all-free)"
        yield r, labels, flow, source
