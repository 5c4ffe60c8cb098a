"""Perception benchmarks: camera rendering cost, tiny-preset quality against a per-voxel baseline,
the camera-input world model, and FPS / FLOPs / memory per preset.

    python benchmarks/perception.py --data DIR --run RUN [--device cpu] [--fps-presets tiny]

DIR is a synthetic world written with ``occ4d synth --cameras`` and RUN a ``tiny`` run trained on
it with ``occ4d train perception --preset tiny --data DIR --out RUN``. Tables:

1. rendering: seconds per keyframe (six cameras) by image width, on one synthetic keyframe;
2. quality on DIR's val split: Occ3D mIoU (camera mask, devkit) and RayIoU of the run, and of
   the per-voxel most-frequent class of the training split (the baseline to beat);
   per class: IoU (camera mask) and RayIoU (mean over its thresholds) of both, and the number
   of ground-truth rays of each class;
3. forecasting (OccWorld protocol, GT trajectory): copy-last with ground-truth history and with
   history predicted from the cameras, and ``--forecaster RUN`` both ways when given;
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


def quality(data: Path, run: Path, device: str, pred_dir: Path) -> tuple[dict, dict, int, list[tuple]]:
    """(run results, baseline results, val frames, per-class rows) on the val split."""
    from occ4d.data.index import load_frame, load_index
    from occ4d.metrics import Occ3DMIoU, RayIoU
    from occ4d.models.perception.recipe import _origins, dataset, most_frequent_grid, perception_scores
    from occ4d.train.registry import load_model

    model, cfg, _ = load_model(run, device=device)
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, root=str(data), max_val_samples=0))
    val = dataset(cfg, cfg.data.val_split)
    ours, full = perception_scores(model, val, cfg, torch.device(device), save=pred_dir)
    base = most_frequent_grid(load_index(data, cfg.data.train_split))
    miou, ray = Occ3DMIoU(mask="camera"), RayIoU()
    origins = _origins(val)
    for r in load_index(data, cfg.data.val_split):
        f = load_frame(r)
        miou.update(base, f.semantics, mask_camera=f.mask_camera)
        ray.update(base, f.semantics, origins[r.token])
    m, rr = miou.compute(), ray.compute()
    baseline = {"mIoU": m["mIoU"], "IoU": m["IoU_geometry"], "RayIoU": 100 * rr["RayIoU"],
                "RayIoU@1": 100 * rr["RayIoU@1"], "RayIoU@2": 100 * rr["RayIoU@2"],
                "RayIoU@4": 100 * rr["RayIoU@4"]}
    rows = []
    for name, iou in full["camera"]["per_class"].items():
        rays = [_mean(r["per_class"][name].values()) for r in (full["ray"], rr)]
        rows.append((name, f"{iou:.2f}", f"{m['per_class'][name]:.2f}", *(f"{100 * v:.2f}" for v in rays),
                     rr["gt_rays"][name]))
    return ours, baseline, len(val), rows


def _mean(values) -> float:
    v = [x for x in values if not np.isnan(x)]
    return sum(v) / len(v) if v else float("nan")


def forecast_rows(data: Path, run: Path, pred_dir: Path, forecaster: str, device: str) -> list[tuple]:
    from occ4d.data.dataset import ClipDataset
    from occ4d.data.index import load_index
    from occ4d.models.perception.perceived import perceived_history
    from occ4d.models.world.forecasting import load_forecaster, run_forecast

    records = load_index(data, "val")
    rows = []
    for name in ["copy-last", *([forecaster] if forecaster else [])]:
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
    ap.add_argument("--run", type=Path, help="a tiny perception run trained on --data")
    ap.add_argument("--forecaster", default="", help="also a forecaster run (occ4d train worldmodel)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--widths", type=int, nargs="*", default=[352, 704])
    ap.add_argument("--presets", nargs="*", default=["tiny", "r50", "r50-4d"])
    ap.add_argument("--fps-presets", nargs="*", default=["tiny"],
                    help="presets to time (the rest: FLOPs only)")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--no-forecast", action="store_true",
                    help="stop after the quality tables (no forecasting or cost tables)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    show("rendering (six cameras, one keyframe; this machine, shared CPUs)",
         ("image", "s/keyframe", "Mpix/s"), render_table(args.widths))
    if args.data and args.run:
        with tempfile.TemporaryDirectory() as tmp:
            ours, base, n, per_class = quality(args.data, args.run, args.device, Path(tmp))
            keys = ("mIoU", "IoU", "RayIoU", "RayIoU@1", "RayIoU@2", "RayIoU@4")
            show(f"quality on the val split ({n} keyframes; percent)", ("model", *keys),
                 [("tiny (cameras)", *(f"{ours[k]:.2f}" for k in keys)),
                  ("most frequent class per voxel (train split)", *(f"{base[k]:.2f}" for k in keys))])
            show("per class on the val split (IoU: camera mask; RayIoU: mean over 1/2/4 m)",
                 ("class", "IoU tiny", "IoU baseline", "RayIoU tiny", "RayIoU baseline", "GT rays"),
                 per_class)
            if args.no_forecast:
                return
            show("forecasting (OccWorld protocol, GT trajectory, val split)",
                 ("forecaster", "history", "mIoU 1s", "mIoU 2s", "mIoU 3s", "mIoU avg", "IoU avg"),
                 forecast_rows(args.data, args.run, Path(tmp), args.forecaster, args.device))
    show(f"cost per preset (batch 1, six cameras; FPS and memory on {args.device})",
         ("preset", "input", "params (M)", "GFLOPs", "FPS", "peak memory"),
         cost_table(args.presets, args.fps_presets, args.device))


if __name__ == "__main__":
    main()
