"""Make the README's pictures from the synthetic world (never from real data).

    python docs/make_media.py [--seed 7] [--frames 12] [--out docs]

writes ``synthetic_frame.png`` (one keyframe, 3D voxels, orbit camera, ego car in the middle) and
``synthetic_clip.gif`` (a top-down clip with the ego path: white behind, red ahead) and keeps
each under 1 MB. The same seed gives the same pictures.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

LIMIT = 1_000_000  # bytes per file


def main() -> None:
    ap = argparse.ArgumentParser(description="render the README's synthetic frame and clip")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    args = ap.parse_args()

    from occ4d.core.trajectory import Trajectory
    from occ4d.io.atomic import write_bytes
    from occ4d.synth import generate
    from occ4d.vis.inputs import load_sequence
    from occ4d.vis.layout import titled
    from occ4d.vis.topdown import png_bytes
    from occ4d.vis.video import clip_frames, gif_bytes
    from occ4d.vis.voxels import render_voxels

    with tempfile.TemporaryDirectory(prefix="occ4d-docs-") as tmp:
        generate(tmp, scenes=1, frames=args.frames, seed=args.seed, val_fraction=0.0, progress=False)
        seq = load_sequence(tmp)
    mid = len(seq) // 2
    frame = titled(render_voxels(seq.semantics[mid], seq.vocab, seq.grid, view="orbit", size=(720, 480)),
                   f"occ4d synthetic world, seed {args.seed}, scene {seq.name}, keyframe {mid}")
    clip = seq.select(list(range(len(seq))))
    clip.current = mid  # the middle keyframe is "now": half the path behind, half ahead
    if clip.trajectory is not None:
        clip.trajectory = Trajectory(clip.trajectory, clip.hz).rebased(mid).xyyaw
    frames = list(clip_frames(clip.semantics, clip.vocab, clip.grid, clip.trajectory, clip.hz, clip.current,
                              "topdown", scale=2, title=f"synthetic {seq.name}"))
    outputs = {"synthetic_frame.png": png_bytes(frame), "synthetic_clip.gif": gif_bytes(frames, clip.hz)}
    for name, data in outputs.items():
        if len(data) > LIMIT:
            raise SystemExit(f"{name} would be {len(data):,} bytes, over the {LIMIT:,} limit")
        write_bytes(args.out / name, data)
        print(f"wrote {args.out / name} ({len(data):,} bytes)")


if __name__ == "__main__":
    main()
