"""Perception benchmarks: camera rendering cost, tiny-preset quality against a per-voxel baseline,
the camera-input world model, and FPS / FLOPs / memory per preset.

    python benchmarks/perception.py --data DIR --run RUN [RUN ...] [--device cpu] [--fps-presets tiny]

DIR is a synthetic world written with ``occ4d synth --cameras`` and RUN a ``tiny`` run trained on
it with ``occ4d train perception --preset tiny --data DIR --out RUN``. Tables:

1. rendering: seconds per keyframe (six cameras) by image width, on one synthetic keyframe;
2. quality on DIR's val split: Occ3D mIoU (camera mask, devkit), RayIoU and, for runs with a
   flow head, mAVE and Occ Score on OpenOcc v2 (both official variants) of each run, and of the
   per-voxel most-frequent class of the training split with zero flow (the baseline to beat);
   per class: IoU (camera mask) and RayIoU (mean over its thresholds) of all, the number of
   ground-truth rays of each class, and the AVE of each flow class;
3. forecasting (OccWorld protocol, GT trajectory): copy-last with ground-truth history and with
   history predicted from the cameras, and each ``--forecaster RUN|BASELINE`` both ways (E2EOcc's
   "-F" rows: the world model fed by the perception model's history);
4. cost per preset as OccStudio reports it: parameters, forward GFLOPs (torch.utils.flop_counter,
   batch 1, counted on the meta device so the GPU presets need no GPU), FPS (batch 1, model
   forward only) and peak memory (CUDA allocator peak; on CPU the process's peak RSS).
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def render_table(widths: list[int], seed: int = 0) -> list[tuple]:
    from occ4d.synth import cameras
    from occ4d.synth.rig import camera_rig
    from occ4d.synth.world import simulate_scene

    grabbed = {}

    def grab(f, world, ego, agents):
        grabbed.update(world=world, ego=ego, agents=agents)

    next(simulate_scene(seed, 0, 2, render=grab))
    rows = []
    for w in widths:
        rig = cameras.scaled_rig(camera_rig(), w)
        cameras.render_views(grabbed["world"], grabbed["ego"], grabbed["agents"], rig, (0,))  # compile/warm
        t0 = time.perf_counter()
        reps = 3
        for r in range(reps):
            cameras.render_views(grabbed["world"], grabbed["ego"], grabbed["agents"], rig, (r,))
        sec = (time.perf_counter() - t0) / reps
        c = rig.cameras[0]
        rows.append((f"{c.width}x{c.height}", f"{sec:.3f}", f"{6 * c.width * c.height / sec / 1e6:.2f}"))
    return rows


def quality(data: Path, runs: list[Path], device: str, pred_dir: Path
            ) -> tuple[list[tuple[str, dict, dict]], int, list[tuple]]:
    """([(label, summary, full results)] of each run and of the baseline, val frames, per-class
    rows) on the val split; the first run's predictions are saved in ``pred_dir``."""
    from occ4d.data.index import load_index
    from occ4d.models.perception.recipe import FixedGrid, dataset, most_frequent_grid, perception_scores
    from occ4d.train.registry import load_model

    results = []
    for i, run in enumerate(runs):
        model, cfg, _ = load_model(run, device=device)
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, root=str(data), max_val_samples=0))
        val = dataset(cfg, cfg.data.val_split)
        save = pred_dir if i == 0 else None
        ours, full = perception_scores(model, val, cfg, torch.device(device), save=save)
        results.append((f"{cfg.preset} ({run.name})", ours, full))
    # the baseline through the same scoring, with zero flow (a static world)
    flow_cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, flow_head=True))
    base = FixedGrid(most_frequent_grid(load_index(data, cfg.data.train_split)), flow_cfg.model)
    ours, full = perception_scores(base, val, flow_cfg, torch.device(device))
    results.append(("most frequent class per voxel (train split), zero flow", ours, full))
    rows = []
    for name in results[0][2]["camera"]["per_class"]:
        ious = [f"{r[2]['camera']['per_class'][name]:.2f}" for r in results]
        rays = [f"{100 * _mean(r[2]['ray']['per_class'][name].values()):.2f}" for r in results]
        rows.append((name, *ious, *rays, results[-1][2]["ray"]["gt_rays"][name]))
    return results, len(val), rows


def lift_grid(item: dict, prior: np.ndarray, stride: int, free: int = 17) -> np.ndarray:
    """Headroom oracle: the ground-truth depth and class of every ``stride``-th pixel of the
    network input (its centre pixel), lifted into the grid over ``prior``: the voxel a pixel's
    depth lands in takes its class, and the voxels its ray crosses before that become free. What
    a camera model with perfect depth and perfect image semantics at that resolution would see."""
    from occ4d.core.grid import OCC3D

    grid = prior.copy()
    depth = item["depth"].numpy()[:, stride // 2::stride, stride // 2::stride]  # (N, h, w)
    sem = item["image_semantics"].numpy()[:, stride // 2::stride, stride // 2::stride]
    n, h, w = depth.shape
    v, u = np.meshgrid(np.arange(h) * stride + stride // 2 + 0.5, np.arange(w) * stride + stride // 2 + 0.5,
                       indexing="ij")
    pix = np.stack([u, v, np.ones_like(u)], -1)  # (h, w, 3)
    lo, size = np.asarray(OCC3D.range_min), np.asarray(OCC3D.voxel_size)
    shape = np.asarray(OCC3D.shape)

    def cells(pts):
        """Voxel indices of ``pts`` and which of them lie inside the grid."""
        idx = np.floor((pts - lo) / size).astype(int)
        return idx, ((idx >= 0) & (idx < shape)).all(-1)

    for c in range(n):
        k, e = item["intrinsics"][-1, c].numpy(), item["sensor2ego"][-1, c].numpy()
        rays = pix @ np.linalg.inv(k).T @ e[:3, :3].T  # (h, w, 3) ego-frame direction per unit depth
        d, cls = depth[c], sem[c]
        hit = (d > 0) & (cls < free)
        for f in np.arange(0.0, 1.0, 0.02):  # carve the free space in front of each surface
            t = d * f
            near = (d > 0) & (t < d - 0.3)
            idx, ok = cells(e[:3, 3] + rays[near] * t[near][:, None])
            grid[idx[ok, 0], idx[ok, 1], idx[ok, 2]] = free
        idx, ok = cells(e[:3, 3] + rays[hit] * d[hit][:, None])
        grid[idx[ok, 0], idx[ok, 1], idx[ok, 2]] = cls[hit][ok]
    return grid


def cfg_stride(run: Path) -> int:
    from occ4d.train.registry import load_model

    return load_model(run)[1].model.feature_stride


def lift_rows(data: Path, run: Path, strides: list[int]) -> list[tuple]:
    """Headroom rows: :func:`lift_grid` at each stride over the most-frequent-class prior, scored
    as the models are (mIoU camera mask, RayIoU) on the val split."""
    from occ4d.data.index import load_index
    from occ4d.metrics import Occ3DMIoU, RayIoU
    from occ4d.models.perception.recipe import _origins, dataset, most_frequent_grid
    from occ4d.train.registry import load_model

    _, cfg, _ = load_model(run)
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, root=str(data), max_val_samples=0))
    val = dataset(cfg, cfg.data.val_split)
    prior = most_frequent_grid(load_index(data, cfg.data.train_split))
    origins = _origins(val)
    rows = []
    for stride in strides:
        miou, ray = Occ3DMIoU(mask="camera"), RayIoU()
        for i in range(len(val)):
            item = val[i]
            grid = lift_grid(item, prior, stride)
            gt = item["semantics"].numpy().astype(np.uint8)
            miou.update(grid, gt, mask_camera=item["mask_camera"].numpy(), source=item["token"])
            ray.update(grid, gt, origins[item["token"]], source=item["token"])
        m, r = miou.compute(), ray.compute()
        cars = 100 * _mean(r["per_class"]["car"].values())
        w, h = cfg.model.image_size
        rows.append((f"GT depth + classes of every {stride}-th pixel of {w}x{h}, over the prior",
                     f"{m['mIoU']:.2f}", f"{m['IoU_geometry']:.2f}", f"{100 * r['RayIoU']:.2f}",
                     f"{cars:.2f}"))
    return rows


def _mean(values) -> float:
    v = [x for x in values if not np.isnan(x)]
    return sum(v) / len(v) if v else float("nan")


def forecast_rows(data: Path, run: Path, pred_dir: Path, forecasters: list[str], device: str) -> list[tuple]:
    from occ4d.data.dataset import ClipDataset
    from occ4d.data.index import load_index
    from occ4d.models.perception.perceived import perceived_history
    from occ4d.models.world.forecasting import load_forecaster, run_forecast

    records = load_index(data, "val")
    rows = []
    for name in dict.fromkeys(["copy-last", *forecasters]):
        model, past, future, label = load_forecaster(name, device=device)
        clips = ClipDataset(records, past=past, future=future, stride=1, with_masks=False)
        cams = perceived_history(run, clips, data, records, past, device)
        for token in cams.by_token:  # predictions already made by the quality table
            with np.load(pred_dir / f"{token}.npz") as z:
                cams.remember(token, torch.from_numpy(z["arr_0"]))
        for source, ds in (("labels", clips), ("cameras", cams)):
            with torch.no_grad():
                res = run_forecast(model, ds, past=past, future=future, device=device, progress=False)
            rows.append((label, source, *(f"{res[k]:.2f}" for k in
                                          ("mIoU@1s", "mIoU@2s", "mIoU@3s", "mIoU_avg", "IoU_avg"))))
    return rows


def cost_table(presets: list[str], fps_presets: list[str], device: str) -> list[tuple]:
    import torch.fx.experimental._config as fx_config
    from torch.utils.flop_counter import FlopCounterMode

    from occ4d.models.perception import CameraOccupancy
    from occ4d.models.perception.recipe import PRESETS

    fx_config.meta_nonzero_assume_all_nonzero = True  # boolean masks on the meta device (no data)
    rows = []
    for name in presets:
        cfg = PRESETS[name].model
        w, h = cfg.image_size
        t = cfg.history + 1
        with torch.device("meta"):
            meta = CameraOccupancy(cfg)
            args = (torch.empty(1, t, 6, 3, h, w), torch.empty(1, t, 6, 3, 3), torch.empty(1, t, 6, 4, 4),
                    torch.empty(1, t, 4, 4))
        counter = FlopCounterMode(display=False)
        with counter:
            meta(*args)
        params = sum(p.numel() for p in meta.parameters()) / 1e6
        fps = mem = "-"
        if name in fps_presets:
            fps, mem = _speed(cfg, device)
        rows.append((name, f"{w}x{h}", f"{params:.2f}", f"{counter.get_total_flops() / 1e9:.1f}", fps, mem))
    return rows


def _speed(cfg, device: str) -> tuple[str, str]:
    import resource

    from occ4d.models.perception import CameraOccupancy
    from occ4d.synth.cameras import scaled_rig
    from occ4d.synth.rig import camera_rig

    dev = torch.device(device)
    torch.manual_seed(0)
    model = CameraOccupancy(cfg).to(dev).eval()
    w, h = cfg.image_size
    t = cfg.history + 1
    rig = scaled_rig(camera_rig(), w)
    k = torch.tensor(rig.intrinsics, dtype=torch.float32)
    k[:, 1, 2] -= rig.cameras[0].height - h
    args = (torch.randn(1, t, 6, 3, h, w, device=dev), k.expand(1, t, 6, 3, 3).to(dev),
            torch.tensor(rig.sensor2ego, dtype=torch.float32).expand(1, t, 6, 4, 4).to(dev),
            torch.eye(4, device=dev).expand(1, t, 4, 4))
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    with torch.no_grad():
        model(*args)
        reps = 5
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        t0 = time.perf_counter()
        for _ in range(reps):
            model(*args)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        fps = reps / (time.perf_counter() - t0)
    if dev.type == "cuda":
        mem = torch.cuda.max_memory_allocated(dev) / 2**30
        label = f"{mem:.2f} GiB (CUDA peak)"
    else:
        mem = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        label = f"{mem:.2f} GiB (process RSS)"
    return f"{fps:.2f}", label


def show(title: str, head: tuple, rows: list[tuple]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows, strict=True)]
    print(f"\n{title}")
    for r in (head, *rows):
        print("  ".join(str(x).rjust(wd) for x, wd in zip(r, widths, strict=True)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, help="synthetic world with cameras (occ4d synth --cameras)")
    ap.add_argument("--run", type=Path, nargs="*", default=[],
                    help="perception runs trained on --data (the first one feeds the forecasting table)")
    ap.add_argument("--forecaster", nargs="*", default=[],
                    help="also these forecasters, each fed ground-truth and camera history: runs of "
                         "occ4d train worldmodel or baseline names (fused-warp, ego-warp, ...)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--widths", type=int, nargs="*", default=[352, 704])
    ap.add_argument("--presets", nargs="*", default=["tiny", "tiny-4d", "r50", "r50-4d", "r50-4d-flow"])
    ap.add_argument("--fps-presets", nargs="*", default=["tiny"],
                    help="presets to time (the rest: FLOPs only)")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--headroom", action="store_true",
                    help="also the oracle rows: ground-truth depth and classes lifted into the grid")
    ap.add_argument("--no-forecast", action="store_true",
                    help="stop after the quality tables (no forecasting or cost tables)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    show("rendering (six cameras, one keyframe; this machine, shared CPUs)",
         ("image", "s/keyframe", "Mpix/s"), render_table(args.widths))
    if args.data and args.run:
        with tempfile.TemporaryDirectory() as tmp:
            results, n, per_class = quality(args.data, args.run, args.device, Path(tmp))
            keys = ("mIoU", "IoU", "RayIoU", "RayIoU@1", "RayIoU@2", "RayIoU@4")
            flow_keys = ("mAVE", "OccScore", "mAVE_all", "OccScore_all")
            show(f"quality on the val split ({n} keyframes; percent; mAVE in m/s on OpenOcc v2, tp@2m and "
                 "all-valid-rays)", ("model", *keys, *flow_keys),
                 [(label, *(f"{r[k]:.2f}" for k in keys),
                   *(f"{r[k]:.3f}" if k in r else "-" for k in flow_keys)) for label, r, _ in results])
            labels = [f"m{i}" for i in range(len(results) - 1)] + ["base"]
            show("per class on the val split (IoU: camera mask; RayIoU: mean over 1/2/4 m); "
                 + ", ".join(f"{t} = {r[0]}" for t, r in zip(labels, results, strict=True)),
                 ("class", *(f"IoU {t}" for t in labels), *(f"RayIoU {t}" for t in labels), "GT rays"),
                 per_class)
            flow_rows = [(name, *(f"{r[2]['flow']['per_class_AVE'].get(name, float('nan')):.3f}"
                                  if "flow" in r[2] else "-" for r in results))
                         for name in results[-1][2]["flow"]["per_class_AVE"]]
            show("AVE per flow class (m/s, tp@2m; nan: no true-positive ray)", ("class", *labels), flow_rows)
            if args.headroom:
                show("headroom on the val split (oracle rows; percent)",
                     ("oracle", "mIoU", "IoU", "RayIoU", "car RayIoU"),
                     lift_rows(args.data, args.run[0], sorted({1, 4, 8, cfg_stride(args.run[0])})))
            if args.no_forecast:
                return
            show("forecasting (OccWorld protocol, GT trajectory, val split)",
                 ("forecaster", "history", "mIoU 1s", "mIoU 2s", "mIoU 3s", "mIoU avg", "IoU avg"),
                 forecast_rows(args.data, args.run[0], Path(tmp), args.forecaster, args.device))
    show(f"cost per preset (batch 1, six cameras; FPS and memory on {args.device})",
         ("preset", "input", "params (M)", "GFLOPs", "FPS", "peak memory"),
         cost_table(args.presets, args.fps_presets, args.device))


if __name__ == "__main__":
    main()
