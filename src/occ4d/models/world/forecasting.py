"""Forecasting a dataset with a world model or a baseline, scored with the OccWorld protocol.

:func:`forecast_dataset` is ``occ4d forecast`` without the printing: it loads a forecaster (a
world-model run or a baseline by name, :func:`load_forecaster`), the windows of a split
(``past`` history frames with the current one last, ``future`` frames at 2 Hz; the window sets of
PROTOCOLS §3.9, :func:`select_windows`), forecasts each one with a generator seeded
``seed + window index`` (:func:`run_forecast`) and returns the metric's result dict: mIoU over
the semantic classes and IoU of "occupied" at 1 s / 2 s / 3 s and their mean, in percent, and,
with ``regions``, the same over the columns the current frame saw and the unseen rest
(:func:`update_regions`). Windows are ``(B, T, X, Y, Z)`` uint8 labels and ``(B, T, 3)``
trajectories (x, y in metres, yaw in radians, relative to the current frame).
"""

from __future__ import annotations

from pathlib import Path

# The last three are models.world.motion.MOTION_BASELINES (a test keeps them equal).
BASELINES = ("copy-last", "ego-warp", "motion-warp", "motion-extrude", "fused-warp")
# Window sets (PROTOCOLS §3.9): every window of past + future consecutive keyframes; OccWorld's
# (12-frame windows, 5 history frames, starts 0 .. L - 13 of a scene of L keyframes: the last
# possible start is skipped, 4219 windows on nuScenes val); DOME's (the first 10 keyframes of each
# scene, 4 history frames: 150 windows on nuScenes val).
WINDOWS = {"all": None, "occworld": (5, 6), "dome": (4, 6)}
# --regions: the columns of each future frame that the current frame saw, and the rest (the area
# entering the grid along the ground-truth trajectory, which no history frame saw).
REGIONS = ("seen", "unseen")


def update_regions(parts: dict, pred, gt, traj, past: int, *, grid=None, source: str | None = None) -> None:
    """Add one window to the ``REGIONS`` metrics in ``parts``: ``pred`` / ``gt`` (1, F, X, Y, Z)
    future labels, ``traj`` (1, past + F, 3) the ground-truth poses relative to the current frame."""
    from occ4d.core.grid import OCC3D
    from occ4d.models.world.baselines import unseen_columns

    unseen = unseen_columns(traj.double(), past, grid=grid or OCC3D)
    parts["seen"].update(pred, gt, source=source, region=~unseen)
    parts["unseen"].update(pred, gt, source=source, region=unseen)


def select_windows(ds, rule: str):
    """Keep the windows of ``ds`` (a ClipDataset) that the named window set scores."""
    if rule not in WINDOWS:
        raise SystemExit(f"unknown window set {rule!r}; choose one of {', '.join(WINDOWS)}")
    want = WINDOWS[rule]
    if want is None:
        return ds
    if (ds.past, ds.future) != want:
        raise SystemExit(
            f"--windows {rule} scores {want[0]} history and {want[1]} future frames; this model has "
            f"{ds.past} and {ds.future} (baselines take --past {want[0]})"
        )
    length = {scene: len(recs) for scene, recs in ds.scenes.items()}
    if rule == "occworld":
        ds.windows = [w for w in ds.windows if w.frames[0] <= length[w.scene] - 13]
    else:
        ds.windows = [w for w in ds.windows if w.frames[0] == 0]
    return ds


def load_forecaster(ckpt: str, *, past: int = 4, future: int = 6, device: str = "cpu"):
    """(model with ``forecast(past_occ, traj, ...)``, past, future, name) for a run or a baseline name."""
    from occ4d.models.world import CopyLast, EgoWarp, MotionWarp
    from occ4d.models.world.motion import MOTION_BASELINES, motion_config

    if ckpt in MOTION_BASELINES:
        return MotionWarp(past=past, future=future, config=motion_config(ckpt)), past, future, ckpt
    if ckpt == "copy-last":
        return CopyLast(past=past, future=future), past, future, ckpt
    if ckpt == "ego-warp":
        return EgoWarp(past=past, future=future), past, future, ckpt
    from occ4d.train.registry import load_model

    model, cfg, _ = load_model(ckpt, device=device)
    m = cfg.model
    if cfg.model_name != "worldmodel" or m.kind not in ("forecaster", "refiner", "autoregressive"):
        raise SystemExit(
            f"{ckpt} is a {cfg.model_name} ({getattr(m, 'kind', '-')}), not a forecaster; "
            f"use a forecaster or autoregressive run, or one of {BASELINES}"
        )
    return model, m.past, m.future, f"{m.kind} ({cfg.preset})"


def run_forecast(
    model,
    data,
    *,
    past: int,
    future: int,
    traj: str = "gt",
    planner=None,
    seed: int = 0,
    sampler: str = "ddim",
    steps: int = 20,
    guidance: float = 1.0,
    max_windows: int = 0,
    protocol: str = "occworld",
    device: str = "cpu",
    progress: bool = True,
    save: str | Path | None = None,
    regions: bool = False,
) -> dict:
    """Forecast every window of ``data`` (a ClipDataset of past + future frames) and score it.

    With ``regions``, also score the columns the current frame saw and those it did not (the area
    entering the grid along the ground-truth trajectory) apart, under ``result["regions"]``."""
    import torch

    from occ4d.metrics.control import PlanningMetric
    from occ4d.metrics.forecast import ForecastMetric

    if traj == "pred" and planner is None:
        raise SystemExit("--traj pred needs --planner RUN (a planner run predicts the future trajectory)")
    n = len(data) if not max_windows else min(max_windows, len(data))
    metric = ForecastMetric(protocol, steps=future)
    parts = {name: ForecastMetric(protocol, steps=future) for name in REGIONS} if regions else {}
    plan_metric = PlanningMetric() if traj == "pred" else None
    windows = range(n)
    if progress:
        from occ4d.core.progress import Progress

        windows = Progress(windows, desc="forecast", unit="window")
    dev = torch.device(device)
    for i in windows:
        item = data[i]
        occ = item["semantics"][None].to(dev)  # (1, past + future, X, Y, Z)
        tr = item["trajectory"][None].to(dev).float()  # (1, past + future, 3), current frame = past - 1
        if traj == "pred":
            plan = planner.plan(occ[:, :past], tr[:, :past])
            plan_metric.update(plan[:, past:], tr[:, past:], occ[:, past:])
            tr = plan
        g = torch.Generator(dev).manual_seed(seed + int(item["index"]))
        pred = model.forecast(
            occ[:, :past], tr, generator=g, sampler=sampler, steps=steps, guidance_scale=guidance
        )
        metric.update(pred, occ[:, past:])
        if parts:
            update_regions(parts, pred, occ[:, past:], item["trajectory"][None].to(dev), past)
        if save is not None:
            from occ4d.io.clipfile import save_clip

            clip = torch.cat([occ[0, :past], pred[0].to(occ.dtype)]).cpu().numpy()
            name = f"{item['scene']}-{i:05d}.npz"
            save_clip(Path(save) / "pred" / name, clip, tr[0].cpu().numpy().astype(float), current=past - 1)
            save_clip(
                Path(save) / "gt" / name,
                occ[0].cpu().numpy(),
                item["trajectory"].numpy().astype(float),
                current=past - 1,
            )
    result = metric.compute()
    result["trajectory"] = traj
    result["history_frames"] = past
    if parts:
        result["regions"] = {name: m.compute() for name, m in parts.items()}
    if plan_metric is not None:
        result["planning"] = plan_metric.compute()
    return result


def format_table(result: dict, title: str) -> str:
    """The OccWorld-style table: rows mIoU / IoU, columns 1 s, 2 s, 3 s, avg."""
    heads = [k.split("@")[1] for k in result if k.startswith("mIoU@")]
    rows = [(name, result, name) for name in ("mIoU", "IoU")]
    for region, r in result.get("regions", {}).items():
        rows += [(name, r, f"{name} {region}") for name in ("mIoU", "IoU")]
    width = max(len(label) for *_, label in rows) + 1
    lines = [title, " " * width + "".join(f"{h:>9}" for h in heads) + f"{'avg':>9}"]
    for name, r, label in rows:
        vals = [r[f"{name}@{h}"] for h in heads] + [r[f"{name}_avg"]]
        lines.append(f"{label:{width}}" + "".join(f"{v:9.2f}" for v in vals))
    return "\n".join(lines)


def forecast_dataset(
    ckpt: str,
    data: str,
    *,
    traj: str = "gt",
    planner: str = "",
    split: str = "val",
    max_windows: int = 0,
    sampler: str = "ddim",
    steps: int = 20,
    guidance: float = 1.0,
    seed: int = 0,
    protocol: str = "occworld",
    windows: str = "all",
    past: int = 4,
    future: int = 6,
    save: str = "",
    device: str = "cpu",
    perception: str = "",
    regions: bool = False,
) -> dict:
    """Score ``ckpt`` (a forecaster run or a baseline name) on the windows of ``data``'s split.

    The arguments are ``occ4d forecast``'s; the result is :func:`run_forecast`'s plus what was
    scored (``model``, ``ckpt``, ``split``, the sampling settings, ``window_set``, ``history``).
    """
    import torch

    from occ4d.core.errors import DataError, check_counts
    from occ4d.data.dataset import ClipDataset
    from occ4d.data.index import load_index

    check_counts(0, max_windows=max_windows)
    check_counts(steps=steps, past=past, future=future)
    model, past, future, name = load_forecaster(ckpt, past=past, future=future, device=device)
    plan_model = None
    if traj == "pred":
        if not planner:
            raise SystemExit("--traj pred needs --planner RUN")
        from occ4d.train.registry import load_model

        plan_model, pcfg, _ = load_model(planner, device=device)
        if getattr(pcfg.model, "kind", "") != "planner" or pcfg.model.past != past:
            raise SystemExit(f"{planner} is not a planner with {past} history frames")
    records = load_index(data, split)
    if not records:
        raise DataError(data, f"no frames in split {split!r}")
    ds = ClipDataset(records, past=past, future=future, stride=1, with_masks=False)
    ds = select_windows(ds, windows)
    if len(ds) == 0:
        span = past + future
        raise DataError(data, f"split {split!r} has no window of {span} keyframes in the {windows!r} set")
    if perception:
        from occ4d.models.perception.perceived import perceived_history

        ds = perceived_history(perception, ds, data, records, past, device)
    with torch.no_grad():
        result = run_forecast(
            model,
            ds,
            past=past,
            future=future,
            traj=traj,
            planner=plan_model,
            seed=seed,
            sampler=sampler,
            steps=steps,
            guidance=guidance,
            max_windows=max_windows,
            protocol=protocol,
            device=device,
            save=save or None,
            regions=regions,
        )
    result.update(
        {
            "model": name,
            "ckpt": ckpt,
            "split": split,
            "sampler": sampler,
            "steps": steps,
            "guidance": guidance,
            "seed": seed,
            "window_set": windows,
            "history": f"cameras via {perception}" if perception else "ground-truth labels",
        }
    )
    return result
