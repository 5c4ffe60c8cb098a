"""``occ4d eval forecast --pred DIR --gt DIR [--regions]``: forecast clip files scored with the
OccWorld protocol (or the strict variant); the frames after each clip's ``current`` index are the
forecast steps. ``--regions`` also scores the columns the clip's current frame saw and the unseen
rest apart (the area entering the grid along the ground-truth clip's trajectory), as
``occ4d forecast --regions`` does.

Clips are :mod:`occ4d.io.clipfile` files, ``(T, X, Y, Z)`` uint8 labels with a ``(T, 3)``
trajectory; forecast and ground truth are paired by file name. Rows are (class, IoU in percent at
1 s / 2 s / 3 s, their mean), then the mIoU and IoU (occupied) summaries.
"""

from __future__ import annotations

from pathlib import Path

from occ4d.evaluate.common import EvalArgs, fmt, progress


def clip_files(folder: Path) -> dict[str, Path]:
    """name -> clip file (``*.npz``) of ``folder``."""
    from occ4d.core.errors import DataError

    if not folder.is_dir():
        raise DataError(folder, "folder not found")
    return {p.stem: p for p in sorted(folder.glob("*.npz"))}


def eval_forecast(args: EvalArgs) -> tuple[dict, list[list]]:
    """Forecast clips in ``args.pred`` against same-named ground-truth clips in ``args.gt``."""
    import numpy as np
    import torch

    from occ4d.core.errors import DataError
    from occ4d.io.clipfile import load_clip
    from occ4d.metrics import ForecastMetric
    from occ4d.models.world.forecasting import REGIONS, update_regions

    gts = clip_files(args.gt)
    if not gts:
        raise DataError(args.gt, "no ground-truth clip files (*.npz)")
    preds = clip_files(args.pred)
    missing = sorted(set(gts) - set(preds))
    if missing and not args.allow_missing:
        raise DataError(args.pred, f"{len(missing)} ground-truth clip(s) have no forecast: {missing[:20]} "
                                   "(use --allow-missing to score them as all-free)")
    if missing:
        args.notes.append(f"{len(missing)} missing forecast(s) scored as all-free: {missing[:20]}")
    metric, parts = None, {}
    dev = torch.device(args.device)
    for name in progress(sorted(gts), "evaluating"):
        gt = load_clip(gts[name])
        future = gt.semantics[gt.current + 1:]
        if metric is None:
            try:
                metric = ForecastMetric(args.protocol or "occworld", gt.vocab, gt.grid,
                                        steps=len(future), hz=gt.hz)
            except ValueError as e:  # too few future frames for the 1 s / 2 s / 3 s horizons
                raise DataError(gts[name], f"{len(future)} future frame(s) after frame {gt.current} at "
                                           f"{gt.hz:g} Hz: {e}") from e
            if args.regions:
                parts = {r: ForecastMetric(metric.protocol_name, gt.vocab, gt.grid, steps=len(future),
                                           hz=gt.hz) for r in REGIONS}
        if name in preds:
            pred = load_clip(preds[name])
            if len(pred) != len(gt) or pred.current != gt.current:
                raise DataError(preds[name], f"forecast has {len(pred)} frames (current {pred.current}); "
                                             f"ground truth {gts[name]} has {len(gt)} (current {gt.current})")
            if (pred.vocab.name, pred.grid.name, pred.hz) != (gt.vocab.name, gt.grid.name, gt.hz):
                raise DataError(preds[name], f"forecast is {pred.vocab.name} labels on the {pred.grid.name} "
                                             f"grid at {pred.hz:g} Hz; ground truth {gts[name]} is "
                                             f"{gt.vocab.name} on {gt.grid.name} at {gt.hz:g} Hz")
            pf = pred.semantics[pred.current + 1:]
            src = f"{preds[name]} (forecast; ground truth {gts[name]})"
        else:
            pf = np.full_like(future, gt.vocab.free)
            src = f"{gts[name]} (ground truth, no forecast: scored all-free)"
        p_t, g_t = torch.from_numpy(pf).to(dev), torch.from_numpy(future).to(dev)
        metric.update(p_t, g_t, source=src)
        if parts:
            traj = torch.from_numpy(gt.trajectory.xyyaw)[None].to(dev)
            update_regions(parts, p_t[None], g_t[None], traj, gt.current + 1, grid=gt.grid, source=src)
    res = metric.compute()
    # Per class: IoU (percent) at each reported horizon and their mean, then the summaries.
    horizons = list(metric.report)
    rows = []
    for name in res["per_class"][horizons[0]]:
        vals = [res["per_class"][h][name] for h in horizons]
        rows.append([name, *(fmt(v) for v in vals), fmt(sum(vals) / len(vals))])
    summaries = [("mIoU", res, "mIoU"), ("IoU (occupied)", res, "IoU")]
    if parts:
        res["regions"] = {r: m.compute() for r, m in parts.items()}
        for r, part in res["regions"].items():
            summaries += [(f"mIoU ({r})", part, "mIoU"), (f"IoU (occupied, {r})", part, "IoU")]
    for label, r, key in summaries:
        rows.append([label, *(fmt(r[f"{key}@{h}"]) for h in horizons), fmt(r[f"{key}_avg"])])
    return res, rows
