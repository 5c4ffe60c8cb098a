"""``occ4d eval occ``: voxel mIoU of a prediction folder against ground-truth frames.

Occ3D and Occ3D-Waymo ground truth is scored with the Occ3D devkit (``mask`` camera, lidar,
none or camera_lidar; ``protocol`` devkit or absent-gt-nan); SurroundOcc and OpenOccupancy
ground truth with their own protocols (every voxel whose label is not 255, no mask). Rows are
(class, IoU in percent).
"""

from __future__ import annotations

from occ4d.evaluate.common import EvalArgs, as_tensor, gt_records, pairs
from occ4d.evaluate.common import fmt as _fmt


def eval_occ(args: EvalArgs) -> tuple[dict, list[list]]:
    import torch

    from occ4d.core.errors import DataError
    from occ4d.data.index import load_frame
    from occ4d.metrics import Occ3DMIoU, OpenOccupancyMetric, SurroundOccMetric

    records = gt_records(args)
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
    for r, labels, _, src in pairs(args, records, grid.shape, vocab.free):
        gt = load_frame(r)
        pred = as_tensor(labels, dev)
        gsem = as_tensor(gt.semantics, dev)
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
