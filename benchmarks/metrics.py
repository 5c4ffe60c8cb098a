"""Speed of the official metrics: Occ3D mIoU frames/s and RayIoU seconds per frame.

    python benchmarks/metrics.py [--device cpu|cuda] [--frames 200] [--ray-frames 5]

A "frame" is one ground-truth/prediction pair. For mIoU it is one ``update()`` with the camera
mask (640,000 voxels, on tensors already in memory: file reading is not timed). For RayIoU it is
the full per-sample work of the protocol: 8 origins x 14,040 rays cast through the ground truth
and through the prediction, plus scoring. For the forecasting metric a "window" is one
``update()`` of the OccWorld protocol's 6 future steps (6 x 640,000 voxels). Data: the real
Occ3D frames in ../shared/data when present (perturbed copies as predictions), otherwise a
synthetic street.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from occ4d.core import OCC3D, Occ3D
from occ4d.metrics import ForecastMetric, Occ3DMIoU, RayIoU

FREE = int(Occ3D.FREE)
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "occ3d-nuscenes"
# Eight origins along a 2 Hz drive (metres, ego frame), like a mid-scene sample.
ORIGINS = np.array([[0.986 + 4.5 * k, 0.05 * k, 1.84] for k in range(-4, 4)])


def frames(rng: np.random.Generator) -> tuple[list[tuple[np.ndarray, np.ndarray]], str]:
    files = [SHARED / "29796060110c4163b07f06eff4af0753" / "labels.npz",
             SHARED / "occupancy-vis" / "3D_occupancy_data.npz"]
    if all(f.exists() for f in files):
        from occ4d.io.occ3d import load_labels

        out = []
        for f in files:
            fr = load_labels(f)
            out.append((fr.semantics, fr.mask_camera))
        return out, "real Occ3D frames"
    sem = np.full(OCC3D.shape, FREE, np.uint8)
    sem[:, :, :2] = Occ3D.DRIVEABLE_SURFACE
    sem[:, :40, :10] = Occ3D.MANMADE
    sem[:, 160:, :8] = Occ3D.VEGETATION
    return [(sem, rng.random(OCC3D.shape) < 0.1)], "synthetic street"


def perturb(sem: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    pred = np.roll(sem, 1, axis=0)
    flip = rng.random(sem.shape) < 0.01
    pred[flip] = rng.integers(0, FREE + 1, int(flip.sum()))
    return pred


def bench_miou(data, device: str, n: int, rng) -> float:
    tensors = [(torch.from_numpy(perturb(s, rng)).to(device), torch.from_numpy(s).to(device),
                torch.from_numpy(m).to(device)) for s, m in data]
    m = Occ3DMIoU("camera")
    m.update(*tensors[0])  # warm-up
    _sync(device)
    t = time.perf_counter()
    for i in range(n):
        m.update(*tensors[i % len(tensors)])
    m.compute()
    _sync(device)
    return n / (time.perf_counter() - t)


def bench_forecast(data, device: str, n: int, rng) -> float:
    gt = np.stack([np.roll(data[t % len(data)][0], t, axis=0) for t in range(6)])
    pred, gt = torch.from_numpy(perturb(gt, rng)).to(device), torch.from_numpy(gt).to(device)
    m = ForecastMetric("occworld")
    m.update(pred, gt)  # warm-up
    _sync(device)
    t = time.perf_counter()
    for _ in range(n):
        m.update(pred, gt)
    m.compute()
    _sync(device)
    return n / (time.perf_counter() - t)


def bench_ray(data, device: str, backend: str, n: int, rng) -> float:
    pairs = [(torch.from_numpy(perturb(s, rng)).to(device), torch.from_numpy(s).to(device)) for s, _ in data]
    m = RayIoU(backend=backend)
    m.update(*pairs[0], ORIGINS[:1])  # warm-up (numba loads its cached kernel)
    _sync(device)
    t = time.perf_counter()
    for i in range(n):
        m.update(*pairs[i % len(pairs)], ORIGINS)
    m.compute()
    _sync(device)
    return (time.perf_counter() - t) / n


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--frames", type=int, default=200, help="mIoU updates to time")
    ap.add_argument("--ray-frames", type=int, default=5, help="RayIoU samples to time per backend")
    ap.add_argument("--windows", type=int, default=50, help="forecast-metric windows to time")
    ap.add_argument("--skip-torch-cpu", action="store_true", help="skip the (slow) torch RayIoU path on CPU")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    data, what = frames(rng)
    rows = [("Occ3D mIoU (camera mask)", f"{bench_miou(data, args.device, args.frames, rng):.0f} frames/s",
             ">= 500 frames/s")]
    rows.append(("OccWorld forecast metric (6 steps)",
                 f"{bench_forecast(data, args.device, args.windows, rng):.0f} windows/s", ""))
    cpu = args.device == "cpu"
    if cpu:
        sec = bench_ray(data, "cpu", "numba", args.ray_frames, rng)
        rows.append(("RayIoU, numba path (8 x 14,040 rays)", f"{sec:.3f} s/frame", "<= 0.5 s/frame"))
    if not (cpu and args.skip_torch_cpu):
        n = args.ray_frames if not cpu else max(1, args.ray_frames // 5)
        sec = bench_ray(data, args.device, "torch", n, rng)
        rows.append((f"RayIoU, torch path on {args.device}", f"{sec:.3f} s/frame", "(GPU path)"))
    if args.device.startswith("cuda"):
        name = torch.cuda.get_device_name()
    else:
        name = f"CPU, {torch.get_num_threads()} threads"
    print(f"occ4d metrics benchmark — {name}; data: {what}")
    width = max(len(r[0]) for r in rows)
    print(f"{'metric'.ljust(width)} | {'measured':>16} | goal")
    print(f"{'-' * width}-+-{'-' * 16}-+-----------------")
    for label, value, goal in rows:
        print(f"{label.ljust(width)} | {value:>16} | {goal}")


if __name__ == "__main__":
    main()
