"""``occ4d eval ray`` and ``occ4d eval flow``: RayIoU (SparseOcc protocol) and, for OpenOcc v2,
mAVE and the Occ Score, of a prediction folder against ground-truth frames.

Ray origins come from each scene's poses in time order (:func:`occ4d.metrics.origins_by_token`),
so the ground truth must be an info file with ego2global and lidar2ego, not a bare folder of
labels. Rows are (class, RayIoU@1/2/4 m in percent[, AVE in m/s]).

The flow evaluation needs OpenOcc v2 labels (PROTOCOLS §2.4). Given a data root whose info file
lists Occ3D labels (``<root>/gts/<scene>/<token>/labels.npz``) it scores the OpenOcc v2 labels
of the same keyframes beside them (``<root>/openocc_v2/<scene>/<token>/labels.npz``), as a
nuScenes root with both trees or an ``occ4d synth`` world holds them, and says so in the notes.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from occ4d.data.index import openocc_twins
from occ4d.evaluate.common import EvalArgs, as_tensor, fmt, gt_records, pairs

if TYPE_CHECKING:
    pass


def eval_ray(args: EvalArgs, flow: bool = False) -> tuple[dict, list[list]]:
    import numpy as np
    import torch

    from occ4d.core.errors import DataError
    from occ4d.data.index import load_frame
    from occ4d.metrics import RayFlowMetric, RayIoU, origins_by_token

    records = gt_records(args)
    if any(r.extras.get("scanned") for r in records):
        raise DataError(args.gt, "RayIoU needs each frame's ego2global and lidar2ego: give an info file, "
                                 "not a bare folder of labels")
    first = load_frame(records[0])
    if flow and first.flow is None and (twins := openocc_twins(records)) is not None:
        records, first = twins, load_frame(twins[0])
        args.notes.append("flow ground truth: the OpenOcc v2 labels beside the info's Occ3D ones "
                          "(openocc_v2/<scene>/<token>/labels.npz)")
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
    for r, labels, pflow, src in pairs(args, records, grid.shape, vocab.free, with_flow=flow):
        gt = load_frame(r)
        pred = as_tensor(labels, dev)
        gsem = as_tensor(gt.semantics, dev)
        if flow:
            if gt.flow is None:
                raise DataError(r.path, "ground truth has no flow; flow evaluation needs OpenOcc v2 files")
            metric.update(pred, gsem, origins[r.token], pflow, gt.flow, source=src)
        else:
            metric.update(pred, gsem, origins[r.token], source=src)
    res = metric.compute()
    rows = []
    for name, per in res["per_class"].items():
        row = [name, *(fmt(v * 100) for v in per.values())]
        if flow:
            row.append(fmt(res["per_class_AVE"].get(name, math.nan)))
        rows.append(row)
    return res, rows


def eval_flow(args: EvalArgs) -> tuple[dict, list[list]]:
    return eval_ray(args, flow=True)
