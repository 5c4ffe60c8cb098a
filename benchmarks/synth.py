"""Synthetic world speed: keyframes per second per core (labels plus both masks) and peak memory.

    python benchmarks/synth.py [--scenes 3] [--frames 40] [--seed 0]

Prints one table. "per core" figures divide by CPU seconds of this process (one worker), so they
hold on a machine shared with other jobs; wall-clock figures are printed beside them. Stages:
- scene setup: town, ego plan, static world map, traffic (once per scene);
- keyframe: 0.5 s of traffic simulation, the 200x200x16 labels and the lidar and camera masks;
- write: one compressed labels.npz (occ4d.io.occ3d.save_labels);
- end to end: occ4d.synth.generate with one worker, info files included.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from occ4d.io.occ3d import save_labels
from occ4d.synth import generate, simulate_scene
from occ4d.synth.sensing import sensors


def clocks() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", type=int, default=3)
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    w0, c0 = clocks()
    sensors()  # ray-order tables of the seven sensors, built once per process
    setup_sensors = np.subtract(clocks(), (w0, c0))
    generate(tempfile.mkdtemp(), scenes=1, frames=2, seed=args.seed + 99, progress=False)  # numba warm-up

    setup, frame, write = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for scene in range(args.scenes):
            gen = simulate_scene(args.seed, scene, args.frames)
            start = clocks()
            for item in gen:
                now = clocks()
                if isinstance(item, str):
                    break
                (setup if item[0] == 0 else frame).append(np.subtract(now, start))
                f = item[1]
                save_labels(Path(tmp) / f"{scene}_{item[0]}.npz", f)
                start = clocks()
                write.append(np.subtract(start, now))
        setup_first = np.array(setup)  # scene setup plus the first keyframe
        frame, write = np.array(frame), np.array(write)

        w0, c0 = clocks()
        summary = generate(
            Path(tmp) / "world",
            scenes=args.scenes,
            frames=args.frames,
            seed=args.seed,
            workers=1,
            progress=False,
        )
        e2e = np.subtract(clocks(), (w0, c0))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    n = args.scenes * args.frames

    rows = [
        ("sensor tables (once per process)", setup_sensors[0], setup_sensors[1], None),
        ("scene setup + first keyframe", setup_first[:, 0].mean(), setup_first[:, 1].mean(), None),
        (
            "keyframe: sim + labels + both masks",
            frame[:, 0].mean(),
            frame[:, 1].mean(),
            1 / frame[:, 1].mean(),
        ),
        ("write labels.npz", write[:, 0].mean(), write[:, 1].mean(), 1 / write[:, 1].mean()),
        (f"end to end ({args.scenes}x{args.frames} keyframes)", e2e[0] / n, e2e[1] / n, n / e2e[1]),
    ]
    print(
        f"occ4d synth benchmark: {args.scenes} scenes x {args.frames} keyframes, seed {args.seed}, 1 worker"
    )
    print(f"{'stage':<42}{'wall ms':>10}{'cpu ms':>10}{'keyframes/s/core':>18}")
    for name, wall, cpu, rate in rows:
        print(f"{name:<42}{1000 * wall:>10.1f}{1000 * cpu:>10.1f}{'' if rate is None else f'{rate:.1f}':>18}")
    print(f"peak memory (max RSS): {peak_mb:.0f} MB; goal: >= 10 keyframes/s/core (labels + both masks)")
    print(
        f"free {100 * summary['free_fraction']:.1f}%, mask_lidar {100 * summary['lidar_coverage']:.1f}%, "
        f"mask_camera {100 * summary['camera_coverage']:.1f}% of voxels"
    )


if __name__ == "__main__":
    main()
