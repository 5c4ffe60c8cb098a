"""Make the README's pictures from the synthetic world (never from real data).

    python docs/make_media.py [--seed 7] [--frames 12] [--out docs]

writes ``synthetic_frame.png`` (one keyframe, 3D voxels, orbit camera, ego car in the middle),
``synthetic_clip.gif`` (a top-down clip with the ego path: white behind, red ahead) and
``steered.gif`` (the scene's first four keyframes continued to 12 frames by forecasting with
fused-warp along the straight, left and right prompts, side by side: ``occ4d generate --ckpt
fused-warp --opening DATA --traj PROMPT``) and keeps each under 1 MB. The same seed gives the same
pictures.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

LIMIT = 1_000_000  # bytes per file
STEERED = 12  # frames of each steered clip: 4 real, 8 forecast


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
    outputs["steered.gif"] = gif_bytes(steered_frames(seq, STEERED), seq.hz)
    for name, data in outputs.items():
        if len(data) > LIMIT:
            raise SystemExit(f"{name} would be {len(data):,} bytes, over the {LIMIT:,} limit")
        write_bytes(args.out / name, data)
        print(f"wrote {args.out / name} ({len(data):,} bytes)")


def steered_frames(seq, frames: int) -> list:
    """Top-down frames of the sequence's first 4 keyframes continued along three prompts, side by side."""
    import numpy as np
    import torch

    from occ4d.core.trajectory import Trajectory
    from occ4d.models.world import compose_traj, rollout
    from occ4d.models.world.forecasting import load_forecaster
    from occ4d.models.world.prompts import prompt_trajectory
    from occ4d.vis.layout import hstack
    from occ4d.vis.video import clip_frames

    model, past, future, _ = load_forecaster("fused-warp")
    opening = torch.as_tensor(np.asarray(seq.semantics[:past]))[None]
    own = Trajectory(seq.trajectory[:past], seq.hz).rebased(0).xyyaw
    panels = []
    for prompt in ("straight", "left", "right"):
        path = compose_traj(own, prompt_trajectory(prompt, frames - past + 1))
        drive = torch.as_tensor(path)[None].float()
        with torch.no_grad():
            clip = rollout(model, opening, drive, frames, past=past, future=future)[0].numpy()
        pictures = clip_frames(clip, seq.vocab, seq.grid, path, seq.hz, past - 1, "topdown", scale=2,
                               title=f"steered: {prompt}")
        panels.append(list(pictures))
    return [hstack(list(row)) for row in zip(*panels, strict=True)]


if __name__ == "__main__":
    main()
