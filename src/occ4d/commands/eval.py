"""``occ4d eval KIND --pred DIR --gt DIR``: score predictions with the official protocols.

Kinds are entries of :data:`HANDLERS` (one function each, taking an :class:`EvalArgs` and
returning the metric's result dict plus the rows of its per-class table):

- ``occ``: voxel mIoU (Occ3D devkit with ``--mask camera|lidar|none|camera_lidar``; SurroundOcc
  or OpenOccupancy when the ground truth is in those formats);
- ``ray``: RayIoU (SparseOcc protocol; origins from each scene's poses in time order);
- ``flow``: RayIoU + mAVE + Occ Score on OpenOcc v2 (``--protocol tp@2m|all-valid-rays|
  all-valid-rays-fp16``);
- ``forecast``: OccWorld forecasting protocol (``--protocol occworld|strict``, ``--regions``)
  over a folder of forecast clip files (``occ4d.io.clipfile``; :mod:`occ4d.commands.eval_forecast`).

Predictions are read from the official submission layouts: ``<pred>/<token>.npz`` with key
``arr_0`` (CVPR 2023) or ``pred`` (SparseOcc), or an Occ3D-style tree
``<pred>/[gts/]<scene>/<token>/labels.npz`` (key ``semantics``; ``flow`` for the flow kind).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from tyro.conf import Positional

from occ4d.commands.eval_common import EvalArgs
from occ4d.commands.eval_common import fmt as _fmt
from occ4d.commands.eval_common import progress as _progress
from occ4d.commands.eval_forecast import eval_forecast

PRED_KEYS = ("pred", "arr_0", "semantics")
MASKS = Literal["camera", "lidar", "none", "camera_lidar"]
# --protocol names per kind; the first is the default. RayIoU has a single protocol (SparseOcc's).
PROTOCOL_CHOICES: dict[str, tuple[str, ...]] = {
    "occ": ("devkit", "absent-gt-nan"),
    "ray": ("rayiou",),
    "flow": ("tp@2m", "all-valid-rays", "all-valid-rays-fp16"),
    "forecast": ("occworld", "strict"),
}


# --------------------------------------------------------------------------------------------
# reading predictions


def index_predictions(pred_dir: Path) -> dict[str, Path]:
    """token -> prediction file, over every supported layout in ``pred_dir``."""
    from occ4d.core.errors import DataError

    if not pred_dir.is_dir():
        raise DataError(pred_dir, "prediction folder not found")
    found: dict[str, Path] = {}
    for p in sorted(pred_dir.glob("*.npz")):
        found[p.stem] = p
    for pattern in ("*/*/labels.npz", "gts/*/*/labels.npz"):
        for p in sorted(pred_dir.glob(pattern)):
            found.setdefault(p.parent.name, p)
    return found


def read_prediction(path: Path, shape: tuple[int, ...], with_flow: bool = False):
    """(labels, flow or None) from one prediction file; a missing key is a DataError naming it."""
    import numpy as np

    from occ4d.core.errors import DataError
    from occ4d.io.occ3d import read_npz

    arrays = read_npz(path, (), (*PRED_KEYS, "flow"))
    key = next((k for k in PRED_KEYS if k in arrays), None)
    if key is None:
        raise DataError(path, f"no prediction array: expected one of the keys {list(PRED_KEYS)}")
    labels = arrays[key]
    if tuple(labels.shape) != tuple(shape):
        if labels.size == int(np.prod(shape)) and labels.ndim == 1:
            labels = labels.reshape(shape)  # flattened submissions (the devkit reshapes them too)
        else:
            raise DataError(path, f"{key} must have shape {tuple(shape)}, got {tuple(labels.shape)}")
    flow = None
    if with_flow:
        if "flow" not in arrays:
            raise DataError(path, "the flow evaluation needs a 'flow' array (X, Y, Z, 2) in every prediction")
        flow = arrays["flow"]
    return labels, flow


def _gt_records(args: EvalArgs):
    from occ4d.data.index import load_index

    return load_index(args.gt, split=args.split)


def _pairs(args: EvalArgs, records, shape, free: int, with_flow: bool = False):
    """Yield (record, pred labels, pred flow, source) in record order; handle missing predictions.

    ``source`` names the prediction file and its ground truth, for the metrics' error messages.
    """
    import numpy as np

    from occ4d.core.errors import DataError

    preds = index_predictions(args.pred)
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
    for r in _progress(mine, "evaluating"):
        if r.token in preds:
            labels, flow = read_prediction(preds[r.token], shape, with_flow)
            source = f"{preds[r.token]} (prediction of {r.token}; ground truth {r.path})"
        else:
            labels = np.full(shape, free, dtype=np.uint8)
            flow = np.zeros((*shape, 2), np.float32) if with_flow else None
            source = f"{r.path} (ground truth of {r.token}, no prediction: scored all-free)"
        yield r, labels, flow, source


def _check_device(device: str) -> None:
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


def _tensor(a, dev):
    import numpy as np
    import torch

    return torch.from_numpy(np.ascontiguousarray(a)).to(dev)


# --------------------------------------------------------------------------------------------
# handlers


def eval_occ(args: EvalArgs) -> tuple[dict, list[list]]:
    import torch

    from occ4d.core.errors import DataError
    from occ4d.data.index import load_frame
    from occ4d.metrics import Occ3DMIoU, OpenOccupancyMetric, SurroundOccMetric

    records = _gt_records(args)
    fmt = records[0].fmt
    first = load_frame(records[0])
    vocab, grid = first.vocab, first.grid
    if fmt in ("surroundocc", "openoccupancy"):
        metric = SurroundOccMetric(vocab, grid) if fmt == "surroundocc" else OpenOccupancyMetric(vocab, grid)
        args.notes.append(f"{fmt} ground truth: scored with the {fmt} protocol (every voxel whose ground "
                          "truth is not 255; no visibility mask)")
        if args.protocol not in (None, "devkit"):
            raise DataError(args.gt, f"--protocol {args.protocol} is an Occ3D devkit variant; "
                                     f"{fmt} ground truth has its own protocol")
    else:
        mask = args.mask if fmt in ("occ3d", "waymo") else "none"
        if mask != args.mask:
            args.notes.append(f"{fmt} ground truth has no visibility masks: evaluated with mask=none")
        metric = Occ3DMIoU(mask, vocab, grid, absent_gt_nan=args.protocol == "absent-gt-nan")
    dev = torch.device(args.device)
    for r, labels, _, src in _pairs(args, records, grid.shape, vocab.free):
        gt = load_frame(r)
        pred = _tensor(labels, dev)
        gsem = _tensor(gt.semantics, dev)
        if isinstance(metric, Occ3DMIoU):
            metric.update(pred, gsem, gt.mask_camera, gt.mask_lidar, source=src)
        else:
            metric.update(pred, gsem, source=src)
    res = metric.compute()
    if "per_class" in res:  # Occ3D: percent, devkit-rounded
        rows = [[name, _fmt(v)] for name, v in res["per_class"].items()]
    else:  # SurroundOcc / OpenOccupancy report fractions; shown here as percent
        rows = [[name, _fmt(v * 100)] for name, v in res["per_class_fraction"].items()]
    return res, rows


def eval_ray(args: EvalArgs, flow: bool = False) -> tuple[dict, list[list]]:
    import numpy as np
    import torch

    from occ4d.core.errors import DataError
    from occ4d.data.index import load_frame
    from occ4d.metrics import RayFlowMetric, RayIoU, origins_by_token

    records = _gt_records(args)
    if any(r.extras.get("scanned") for r in records):
        raise DataError(args.gt, "RayIoU needs each frame's ego2global and lidar2ego: give an info file, "
                                 "not a bare folder of labels")
    first = load_frame(records[0])
    vocab, grid = first.vocab, first.grid
    if flow and first.flow is None:  # before any prediction is read: the ground truth is the problem
        raise DataError(records[0].path, f"{records[0].fmt} ground truth has no flow; the flow evaluation "
                                         "needs OpenOcc v2 labels")
    if flow:
        variant = args.protocol or "tp@2m"
        fp16 = variant.endswith("-fp16")
        metric = RayFlowMetric(vocab, grid, backend=args.backend, mave=variant.removesuffix("-fp16"),
                               fp16=fp16)
    else:
        metric = RayIoU(vocab, grid, backend=args.backend)
    no_lidar = sum(bool(np.array_equal(r.lidar2ego, np.eye(4))) for r in records)
    if no_lidar:
        # An info without lidar2ego reads as identity: origins then sit at the ego origin on the
        # ground instead of the roof LiDAR (~1.84 m up), which changes every ray (PROTOCOLS §3.7a).
        args.notes.append(f"{no_lidar} frame(s) have an identity lidar2ego (missing from the info?): "
                          "their ray origins are the ego origin, not the LiDAR position")
    origins = origins_by_token(records)
    dev = torch.device(args.device)
    for r, labels, pflow, src in _pairs(args, records, grid.shape, vocab.free, with_flow=flow):
        gt = load_frame(r)
        pred = _tensor(labels, dev)
        gsem = _tensor(gt.semantics, dev)
        if flow:
            if gt.flow is None:
                raise DataError(r.path, "ground truth has no flow; flow evaluation needs OpenOcc v2 files")
            metric.update(pred, gsem, origins[r.token], pflow, gt.flow, source=src)
        else:
            metric.update(pred, gsem, origins[r.token], source=src)
    res = metric.compute()
    rows = []
    for name, per in res["per_class"].items():
        row = [name, *(_fmt(v * 100) for v in per.values())]
        if flow:
            row.append(_fmt(res["per_class_AVE"].get(name, math.nan)))
        rows.append(row)
    return res, rows


def eval_flow(args: EvalArgs) -> tuple[dict, list[list]]:
    return eval_ray(args, flow=True)


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
    return eval_command(args.ckpt, args.gt, split=args.split, device=args.device)


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
EvalKind = Literal[tuple(HANDLERS)]  # type: ignore[valid-type]
# Kinds that split their frames over torchrun's processes (_pairs); the others run whole in each.
SHARDED = ("occ", "ray", "flow")


# --------------------------------------------------------------------------------------------
# output


def _jsonable(obj):
    """NaN -> None so the file is valid JSON; everything else unchanged."""
    if isinstance(obj, float):
        return None if math.isnan(obj) else obj
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


def _summary(res: dict) -> list[tuple[str, str]]:
    keys = [k for k, v in res.items() if isinstance(v, (int, float)) and k not in ("samples", "windows")]
    return [(k, f"{res[k]:.4f}" if isinstance(res[k], float) else str(res[k])) for k in keys]


def evaluate(
    kind: Positional[EvalKind],
    pred: Path | None = None,
    gt: Path | None = None,
    mask: MASKS | None = None,
    protocol: str | None = None,
    json: Path | None = None,
    allow_missing: bool = False,
    split: str | None = None,
    backend: Literal["auto", "numba", "torch"] = "auto",
    device: str = "cpu",
    ckpt: Path | None = None,
    data: Path | None = None,
    regions: bool = False,
) -> dict:
    """Score predictions against ground truth with an official protocol and print a per-class table.

    Args:
        kind: occ (voxel mIoU), ray (RayIoU), flow (RayIoU + mAVE + Occ Score), forecast (OccWorld).
        pred: predictions: <token>.npz (key arr_0 or pred) or [gts/]<scene>/<token>/labels.npz;
            for forecast, a folder of forecast clip files.
        gt: ground truth: a data root with an info file, an info .pkl, or a folder of gts; for
            forecast, a folder of ground-truth clip files with the same names.
        mask: occ only: camera (official, the default), lidar, none, or camera_lidar (a paper
            variant); the other kinds' protocols use no mask.
        protocol: occ: devkit (default) or absent-gt-nan (SparseOcc's old variant); ray: rayiou;
            flow: tp@2m (default), all-valid-rays, all-valid-rays-fp16; forecast: occworld
            (default) or strict. An unknown name is an error.
        json: write every figure, with the protocol's name, to this file (atomic).
        allow_missing: score ground-truth tokens without a prediction as all-free (and say so).
        split: pick the info file / scenes of this split (e.g. val).
        backend: RayIoU ray casting: numba (CPU), torch, or auto (torch on CUDA devices).
        device: where the metric accumulates (cpu, cuda, cuda:1 ...).
        ckpt: tokenizer / perception: the run folder (latest checkpoint) or checkpoint file to evaluate.
        data: tokenizer / perception: the dataset to reconstruct or to predict from its cameras (its
            --split, default the run's val split).
        regions: forecast only: also score the columns each clip's current frame saw and the
            unseen rest (the area entering the grid) apart.
    """
    from rich.console import Console
    from rich.table import Table

    from occ4d.core.errors import DataError
    from occ4d.io.atomic import write_json
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
    if regions and kind != "forecast":
        raise SystemExit(f"occ4d eval {kind}: --regions applies to forecast only")
    mask = mask or "camera"
    _check_device(device)
    # launched by torchrun: gloo on CPU, NCCL with --device cuda (one GPU a process)
    started = kind in SHARDED and int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_distributed()
    if started:
        device = str(dist.init(device))
    rank = dist.rank()
    args = EvalArgs(pred=Path(pred), gt=Path(gt), mask=mask, protocol=protocol, allow_missing=allow_missing,
                    split=split, backend=backend, device=device, ckpt=ckpt, regions=regions)
    console = Console()
    try:
        res, rows = HANDLERS[kind](args)
    except DataError as e:  # one line on stderr, exit status 1, as every command
        raise SystemExit(f"occ4d eval {kind}: error: {e}") from e
    if started:
        dist.shutdown()  # every process now holds the reduced result
    report = {"kind": kind, "protocol": res["protocol"], "pred": str(pred), "gt": str(gt),
              "notes": args.notes, "results": res}
    if rank:
        return report  # the first process prints and writes it
    table = Table(title=f"occ4d eval {kind} — {res['protocol']}")
    for h in HEADERS.get(kind, ["name", "value"]):
        table.add_column(h, justify="left" if h in ("class", "horizon") else "right")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    count = res.get("samples", res.get("windows"))
    if count is not None:
        console.print(f"scored {count} {'windows' if 'windows' in res else 'samples'}")
    for k, v in _summary(res):
        console.print(f"{k}: {v}")
    for note in args.notes:
        console.print(f"[yellow]note:[/yellow] {note}")
    if json is not None:
        write_json(json, _jsonable(report))
        console.print(f"wrote {json}")
    return report

