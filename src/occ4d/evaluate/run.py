"""One ``occ4d eval`` run: the options checked, the kind's handler called, the report assembled.

Each kind of :data:`HANDLERS` takes an :class:`~occ4d.evaluate.common.EvalArgs` and returns the
metric's result dict plus the rows of its per-class table (:data:`HEADERS` names the columns):

- ``occ``: voxel mIoU (Occ3D devkit with a camera / lidar / camera_lidar / no mask; SurroundOcc
  or OpenOccupancy when the ground truth is in those formats), :mod:`occ4d.evaluate.occ`;
- ``ray`` / ``flow``: RayIoU, and mAVE + Occ Score on OpenOcc v2, :mod:`occ4d.evaluate.ray`;
- ``forecast``: the OccWorld forecasting protocol over forecast clip files,
  :mod:`occ4d.evaluate.forecast`;
- ``tokenizer`` / ``perception``: a run's own evaluation (``models/<family>/recipe.py``).

The kinds of :data:`SHARDED` split their frames over ``torchrun``'s processes (gloo on CPU, NCCL
with a CUDA device); every process ends with the reduced result and only the first reports it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from occ4d.evaluate.common import EvalArgs
from occ4d.evaluate.forecast import eval_forecast
from occ4d.evaluate.occ import eval_occ
from occ4d.evaluate.ray import eval_flow, eval_ray

# --protocol names per kind; the first is the default. RayIoU has a single protocol (SparseOcc's).
PROTOCOL_CHOICES: dict[str, tuple[str, ...]] = {
    "occ": ("devkit", "absent-gt-nan"),
    "ray": ("rayiou",),
    "flow": ("tp@2m", "all-valid-rays", "all-valid-rays-fp16"),
    "forecast": ("occworld", "strict"),
}


def eval_tokenizer(args: EvalArgs) -> tuple[dict, list[list]]:
    """Reconstruction of ``--data`` (passed as gt) by the tokenizer checkpoint ``--ckpt``."""
    from occ4d.models.tokenizers.recipe import eval_command

    if args.ckpt is None:
        raise SystemExit("occ4d eval tokenizer needs --ckpt RUN (a run folder or checkpoint file)")
    return eval_command(args.ckpt, args.gt, split=args.split, device=args.device)


def eval_perception(args: EvalArgs) -> tuple[dict, list[list]]:
    """A perception run (``--ckpt``) predicting ``--data`` from its cameras: Occ3D mIoU with the
    camera mask, RayIoU, FPS, FLOPs and memory."""
    from occ4d.models.perception.recipe import eval_command

    if args.ckpt is None:
        raise SystemExit("occ4d eval perception needs --ckpt RUN (a run folder or checkpoint file)")
    return eval_command(args.ckpt, args.gt, split=args.split, device=args.device, save=args.save)


HANDLERS: dict[str, Callable[[EvalArgs], tuple[dict, list[list]]]] = {
    "occ": eval_occ,
    "ray": eval_ray,
    "flow": eval_flow,
    "forecast": eval_forecast,
    "tokenizer": eval_tokenizer,
    "perception": eval_perception,
}
HEADERS: dict[str, list[str]] = {
    "occ": ["class", "IoU"],
    "ray": ["class", "RayIoU@1", "RayIoU@2", "RayIoU@4"],
    "flow": ["class", "RayIoU@1", "RayIoU@2", "RayIoU@4", "AVE (m/s)"],
    "forecast": ["class", "1s", "2s", "3s", "avg"],  # ForecastMetric's default horizons
    "tokenizer": ["class", "IoU (no mask)", "IoU (camera mask)"],
    "perception": ["class", "IoU (camera mask)", "RayIoU"],
}
# Kinds that split their frames over torchrun's processes (common.pairs); the others run whole in each.
SHARDED = ("occ", "ray", "flow")


@dataclass
class Evaluation:
    """``report``: what ``--json`` writes (kind, protocol, pred, gt, notes, results); ``rows``:
    the per-class table; ``rank``: this process under torchrun (only rank 0 reports)."""

    report: dict
    rows: list[list]
    rank: int = 0


def check_device(device: str) -> None:
    """Refuse a device torch cannot use with a one-line message instead of a traceback."""
    import torch

    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise SystemExit(f"occ4d eval: --device {device!r} is not a torch device (cpu, cuda, cuda:1)") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"occ4d eval: --device {device}: no CUDA device is available")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise SystemExit(f"occ4d eval: --device {device}: only {torch.cuda.device_count()} CUDA device(s)")


def summary(res: dict) -> list[tuple[str, str]]:
    """(name, value) of the result's scalar figures, for the lines under the table."""
    keys = [k for k, v in res.items() if isinstance(v, (int, float)) and k not in ("samples", "windows")]
    return [(k, f"{res[k]:.4f}" if isinstance(res[k], float) else str(res[k])) for k in keys]


def evaluate_predictions(
    kind: str,
    *,
    pred: Path | None = None,
    gt: Path | None = None,
    mask: str | None = None,
    protocol: str | None = None,
    allow_missing: bool = False,
    split: str | None = None,
    backend: str = "auto",
    device: str = "cpu",
    ckpt: Path | None = None,
    data: Path | None = None,
    regions: bool = False,
    save: Path | None = None,
) -> Evaluation:
    """Score ``pred`` against ``gt`` (or, for tokenizer / perception, the run ``ckpt`` on ``data``)
    with ``kind``'s protocol; the options are ``occ4d eval``'s. Options that do not fit the kind
    are a SystemExit naming them; bad files a DataError."""
    from occ4d.train import distributed as dist

    if kind in ("tokenizer", "perception"):
        if data is None:
            raise SystemExit(f"occ4d eval {kind} needs --data DIR (the dataset to evaluate on)")
        pred, gt = ckpt, data
    elif pred is None or gt is None:
        raise SystemExit(f"occ4d eval {kind} needs --pred and --gt")
    if kind in PROTOCOL_CHOICES:
        choices = PROTOCOL_CHOICES[kind]
        if protocol is not None and protocol not in choices:
            raise SystemExit(f"occ4d eval {kind}: unknown --protocol {protocol!r}; "
                             f"choose one of {', '.join(choices)}")
        protocol = protocol or choices[0]
    if kind != "occ" and mask not in (None, "none"):
        # Silently scoring without the mask asked for would report a different protocol.
        raise SystemExit(f"occ4d eval {kind}: --mask applies to occ only; the {kind} protocol uses no "
                         "visibility mask")
    if save is not None and kind != "perception":
        raise SystemExit(f"occ4d eval {kind}: --save applies to perception only")
    if regions and kind != "forecast":
        raise SystemExit(f"occ4d eval {kind}: --regions applies to forecast only")
    mask = mask or "camera"
    check_device(device)
    # launched by torchrun: gloo on CPU, NCCL with --device cuda (one GPU a process)
    started = kind in SHARDED and int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_distributed()
    if started:
        device = str(dist.init(device))
    rank = dist.rank()
    args = EvalArgs(pred=Path(pred), gt=Path(gt), mask=mask, protocol=protocol, allow_missing=allow_missing,
                    split=split, backend=backend, device=device, ckpt=ckpt, regions=regions,
                    save=save)
    res, rows = HANDLERS[kind](args)
    if started:
        dist.shutdown()  # every process now holds the reduced result
    report = {"kind": kind, "protocol": res["protocol"], "pred": str(pred), "gt": str(gt),
              "notes": args.notes, "results": res}
    return Evaluation(report, rows, rank)
