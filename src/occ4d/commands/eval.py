"""``occ4d eval KIND --pred DIR --gt DIR``: score predictions with the official protocols.

Kinds are entries of :data:`occ4d.evaluate.run.HANDLERS` (one function each, taking an
:class:`~occ4d.evaluate.common.EvalArgs` and returning the metric's result dict plus the rows of
its per-class table):

- ``occ``: voxel mIoU (Occ3D devkit with ``--mask camera|lidar|none|camera_lidar``; SurroundOcc
  or OpenOccupancy when the ground truth is in those formats);
- ``ray``: RayIoU (SparseOcc protocol; origins from each scene's poses in time order);
- ``flow``: RayIoU + mAVE + Occ Score on OpenOcc v2 (``--protocol tp@2m|all-valid-rays|
  all-valid-rays-fp16``);
- ``forecast``: OccWorld forecasting protocol (``--protocol occworld|strict``, ``--regions``)
  over a folder of forecast clip files (``occ4d.io.clipfile``; :mod:`occ4d.evaluate.forecast`).

Predictions are read from the official submission layouts: ``<pred>/<token>.npz`` with key
``arr_0`` (CVPR 2023) or ``pred`` (SparseOcc), or an Occ3D-style tree
``<pred>/[gts/]<scene>/<token>/labels.npz`` (key ``semantics``; ``flow`` for the flow kind,
which looks in an OpenOcc v2 tree ``<pred>/openocc_v2/...`` first). Given a data root whose info
lists Occ3D labels, the flow kind scores the OpenOcc v2 labels beside them (``occ4d synth`` writes
both), so ``occ4d eval flow --gt WORLD --pred WORLD`` scores a world against itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from tyro.conf import Positional

from occ4d.evaluate.run import HANDLERS

MASKS = Literal["camera", "lidar", "none", "camera_lidar"]
EvalKind = Literal[tuple(HANDLERS)]  # type: ignore[valid-type]


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
    save: Path | None = None,
) -> dict:
    """Score predictions against ground truth with an official protocol and print a per-class table.

    Args:
        kind: occ (voxel mIoU), ray (RayIoU), flow (RayIoU + mAVE + Occ Score), forecast (OccWorld).
        pred: predictions: <token>.npz (key arr_0 or pred) or [gts/]<scene>/<token>/labels.npz
            (flow: openocc_v2/<scene>/<token>/labels.npz first); for forecast, a folder of
            forecast clip files.
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
        save: perception only: also write its predictions here, ``<token>.npz`` (Occ3D ids, for
            eval occ|ray) and, with a flow head, ``openocc_v2/<scene>/<token>/labels.npz``
            (OpenOcc ids and flow, for eval flow).
    """
    from rich.console import Console
    from rich.table import Table

    from occ4d.core.errors import DataError
    from occ4d.evaluate.common import jsonable
    from occ4d.evaluate.run import HEADERS, evaluate_predictions, summary
    from occ4d.io.atomic import write_json

    console = Console()
    try:
        ev = evaluate_predictions(kind, pred=pred, gt=gt, mask=mask, protocol=protocol,
                                  allow_missing=allow_missing, split=split, backend=backend, device=device,
                                  ckpt=ckpt, data=data, regions=regions, save=save)
    except DataError as e:  # one line on stderr, exit status 1, as every command
        raise SystemExit(f"occ4d eval {kind}: error: {e}") from e
    report, res = ev.report, ev.report["results"]
    if ev.rank:
        return report  # the first process prints and writes it
    table = Table(title=f"occ4d eval {kind} — {res['protocol']}")
    for h in HEADERS.get(kind, ["name", "value"]):
        table.add_column(h, justify="left" if h in ("class", "horizon") else "right")
    for row in ev.rows:
        table.add_row(*row)
    console.print(table)
    count = res.get("samples", res.get("windows"))
    if count is not None:
        console.print(f"scored {count} {'windows' if 'windows' in res else 'samples'}")
    for k, v in summary(res):
        console.print(f"{k}: {v}")
    for note in report["notes"]:
        console.print(f"[yellow]note:[/yellow] {note}")
    if json is not None:
        write_json(json, jsonable(report))
        console.print(f"wrote {json}")
    return report
