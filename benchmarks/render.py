"""Render speed: one 200x200x16 frame to PNG (goal <= 1 s) and a 32-frame clip to MP4 (goal <= 30 s).

Both for the numpy top-down pictures and the 3D pyvista renders (off screen, software OpenGL on a
machine without a GPU). The frame is a procedural street (road, sidewalks, terrain, buildings,
trees, cars) from a fixed seed, with about as many occupied voxels as a real Occ3D frame; the
clip drives through it 1.2 m per frame. Each figure is the median of ``--repeat`` runs and
includes writing the file. The last rows time the whole ``occ4d render`` command on the saved
frame (a fresh Python process: interpreter start, imports of pyvista/VTK, reading, rendering,
writing), which is what a user waits for; the goals are for the rendering itself.

    python benchmarks/render.py [--repeat 3] [--frames 32] [--out DIR]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from occ4d.core.grid import OCC3D
from occ4d.core.vocab import OCC3D_VOCAB, Occ3D


def street(seed: int = 0, length: int = 400) -> np.ndarray:
    """A (length, 200, 16) uint8 street along x; crop 200 rows of it for one frame."""
    rng = np.random.default_rng(seed)
    g = np.full((length, 200, 16), OCC3D_VOCAB.free, np.uint8)
    g[:, :, 2] = Occ3D.TERRAIN
    g[:, 80:120, 2] = Occ3D.DRIVEABLE_SURFACE
    g[:, 72:80, 2] = g[:, 120:128, 2] = Occ3D.SIDEWALK
    for _ in range(length // 8):  # buildings behind the sidewalks
        x, w, h = rng.integers(0, length - 20), rng.integers(8, 20), rng.integers(6, 16)
        y0 = rng.choice([rng.integers(20, 50), rng.integers(140, 170)])
        g[x:x + w, y0:y0 + rng.integers(8, 25), 3:3 + h] = Occ3D.MANMADE
    for _ in range(length // 2):  # trees along the kerb
        x, y = rng.integers(2, length - 3), rng.choice([rng.integers(60, 72), rng.integers(128, 140)])
        g[x - 2:x + 3, y - 2:y + 3, 6:11] = Occ3D.VEGETATION
        g[x, y, 3:6] = Occ3D.VEGETATION
    for _ in range(length // 12):  # cars in both lanes
        x, y = rng.integers(0, length - 12), rng.choice([rng.integers(84, 96), rng.integers(104, 114)])
        g[x:x + 11, y:y + 5, 3:7] = Occ3D.CAR
    return g


def timed(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--out", type=Path, default=None, help="keep the outputs here (default: a temp folder)")
    args = ap.parse_args()

    from occ4d.vis.topdown import save_png, topdown_rgb, upscale
    from occ4d.vis.video import clip_frames, write_video
    from occ4d.vis.voxels import VoxelRenderer, render_voxels

    world = street(0, 200 + 3 * args.frames + 8)
    frame = world[:200]
    clip = np.stack([world[3 * t:3 * t + 200] for t in range(args.frames)])
    traj = np.array([[1.2 * t, 0.0, 0.0] for t in range(args.frames)])
    occupied = int((frame != OCC3D_VOCAB.free).sum())
    out = args.out or Path(tempfile.mkdtemp(prefix="occ4d-bench-"))
    out.mkdir(parents=True, exist_ok=True)

    rows = []

    def add(name: str, goal: float | None, fn) -> None:
        s = timed(fn, args.repeat)
        rows.append((name, s, goal))
        print(f"  {name}: {s:.3f} s", flush=True)

    add("frame -> PNG, top-down (3x)", 1.0, lambda: save_png(out / "frame_topdown.png",
                                                            upscale(topdown_rgb(frame, shade=True), 3)))
    add("frame -> PNG, 3D 800x600 (new plotter)", 1.0,
        lambda: save_png(out / "frame_3d.png", render_voxels(frame, view="orbit", size=(800, 600))))
    with VoxelRenderer(800, 600, OCC3D) as r:
        r.render(frame)  # the first render compiles shaders
        add("frame -> PNG, 3D 800x600 (warm plotter)", 1.0,
            lambda: save_png(out / "frame_3d_warm.png", r.render(frame, view="orbit")))
    add(f"{args.frames}-frame clip -> MP4, top-down (3x)", 30.0,
        lambda: write_video(out / "clip_topdown.mp4", clip_frames(clip, trajectory=traj, scale=3), fps=4))
    add(f"{args.frames}-frame clip -> MP4, 3D 640x480 chase", 30.0,
        lambda: write_video(out / "clip_3d.mp4", clip_frames(clip, trajectory=traj, mode="3d", view="chase",
                                                             size=(640, 480)), fps=4))

    from occ4d.core.frame import Frame
    from occ4d.io.occ3d import save_labels

    save_labels(out / "frame" / "labels.npz", Frame(frame))
    for style in ("topdown", "3d"):
        cmd = [sys.executable, "-m", "occ4d.cli", "render", str(out / "frame" / "labels.npz"),
               "--out", str(out / f"cli_{style}.png"), "--style", style]
        add(f"occ4d render frame -> PNG, {style} (whole command)", None,
            lambda cmd=cmd: subprocess.run(cmd, check=True, capture_output=True))

    print(f"\nrender benchmark: {occupied:,} occupied voxels per frame, median of {args.repeat}, "
          f"outputs in {out}")
    print(f"{'task':<48} {'seconds':>9} {'goal':>7}  ok")
    for name, s, goal in rows:
        ok = "" if goal is None else ("yes" if s <= goal else "NO")
        print(f"{name:<48} {s:>9.3f} {'-' if goal is None else f'{goal:.1f}':>7}  {ok}")


if __name__ == "__main__":
    main()
