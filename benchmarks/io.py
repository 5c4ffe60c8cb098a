"""Reader benchmark: Occ3D frames per second loaded and validated, and clip items per second.

Uses the real Occ3D frames in ../shared/data when present (copied into a temporary data root,
never into the project), otherwise synthetic frames with a real-like free ratio. Prints a table
with two rates: wall clock, and per core (this process's CPU time, which holds on a shared machine).

    python benchmarks/io.py [--frames 64] [--repeat 3]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from occ4d.core import OCC3D, OCC3D_VOCAB, Frame, yaw_pose
from occ4d.data.dataset import ClipDataset
from occ4d.data.index import load_frame, load_index
from occ4d.io.infos import devkit_info, save_devkit_infos
from occ4d.io.occ3d import load_labels, save_labels

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "occ3d-nuscenes"


def synthetic_frame(rng: np.random.Generator) -> Frame:
    """Ground slab, some boxes and ~94% free, like a real frame (compresses alike)."""
    sem = np.full(OCC3D.shape, OCC3D_VOCAB.free, np.uint8)
    sem[:, :, 1] = 11
    for _ in range(40):
        x, y = rng.integers(0, 190, 2)
        dx, dy, dz = rng.integers(2, 10), rng.integers(2, 10), rng.integers(2, 12)
        sem[x:x + dx, y:y + dy, 2:2 + dz] = rng.integers(0, 17)
    cam = np.zeros(OCC3D.shape, bool)
    cam[60:140, 60:140, :8] = True
    return Frame(sem, mask_camera=cam, mask_lidar=cam.copy())


def build_root(root: Path, n: int, seed: int) -> str:
    sources = sorted(REAL.rglob("*.npz")) if REAL.is_dir() else []
    rng = np.random.default_rng(seed)
    infos = []
    for i in range(n):
        rel = f"gts/scene-bench/tok{i:05d}/labels.npz"
        if sources:
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(sources[i % len(sources)], root / rel)
        else:
            save_labels(root / rel, synthetic_frame(rng))
        infos.append(devkit_info(f"tok{i:05d}", "scene-bench", i, 10**15 + i * 500_000,
                                 yaw_pose(4.0 * i, 0, 0), rel, scene_name="scene-bench"))
    save_devkit_infos(root / "bench_infos_temporal_val.pkl", infos, "bench")
    return "real Occ3D frames" if sources else "synthetic frames"


def rate(fn, n: int, repeat: int) -> tuple[float, float]:
    """(wall-clock, CPU-time) items per second, each the best of ``repeat`` runs."""
    wall = cpu = float("inf")
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall = min(wall, time.perf_counter() - w0)
        cpu = min(cpu, time.process_time() - c0)
    return n / wall, n / cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        kind = build_root(root, args.frames, seed=0)
        records = load_index(root)
        paths = [r.path for r in records]
        ds = ClipDataset(records, past=4, future=6)
        cached = ClipDataset(records, past=4, future=6, cache=True)
        [cached[i] for i in range(len(cached))]  # fill the cache
        per_pass = len(ds) * ds.length
        cases = [
            ("load_labels (read + validate)", lambda: [load_labels(p) for p in paths], len(paths)),
            ("load_frame (index record)", lambda: [load_frame(r) for r in records], len(records)),
            ("ClipDataset items, no cache", lambda: [ds[i] for i in range(len(ds))], per_pass),
            ("ClipDataset items, warm cache", lambda: [cached[i] for i in range(len(cached))], per_pass),
        ]
        rows = [(name, *rate(fn, n, args.repeat)) for name, fn, n in cases]
        on_disk = sum(p.stat().st_size for p in paths) / len(paths)
        print(f"{len(paths)} {kind}, best of {args.repeat}; mean file {on_disk / 1024:.1f} KiB, "
              f"cache {cached.cache.nbytes / len(cached.cache) / 1024:.1f} KiB/frame")
        print(f"{'operation':<34} {'frames/s':>10} {'frames/s/core':>14}")
        print("-" * 60)
        for name, wall, cpu in rows:
            print(f"{name:<34} {wall:>10.1f} {cpu:>14.1f}")


if __name__ == "__main__":
    main()
