"""``occ4d demo``: the whole system end to end on the built-in synthetic world.

Stage 1 synthesizes a small world, prints its summary and writes top-down pictures of one
scene (a PNG per keyframe and an animated GIF with the ego path).
"""

from __future__ import annotations

from pathlib import Path


def demo(out: Path = Path("demo_out"), seed: int = 0, scenes: int = 4, frames: int = 24,
         workers: int = 1, pictures: int = 4) -> None:
    """Synthesize a small world, summarise it and write top-down pictures of it.

    Args:
        out: folder for everything the demo writes.
        seed: seed of the synthetic world (same seed, same bytes).
        scenes: scenes in the synthetic world (at least 2: one goes to the val split).
        frames: 2 Hz keyframes per scene.
        workers: processes for the synthetic world.
        pictures: top-down PNG frames to write (the GIF shows the whole scene).
    """
    import time

    from occ4d.data.index import group_by_scene, load_frame, load_index
    from occ4d.data.summary import format_summary, summarize
    from occ4d.synth import generate
    from occ4d.vis.topdown import save_png, topdown_rgb, upscale
    from occ4d.vis.video import clip_frames, write_video

    if scenes < 2:
        raise SystemExit("occ4d demo: --scenes must be at least 2 (one scene is held out for validation)")
    out = Path(out)
    start = time.perf_counter()
    world = out / "world"
    print(f"[1/2] synthesizing {scenes} scenes x {frames} keyframes into {world}")
    generate(world, scenes, frames, seed, workers=workers, val_fraction=1.0 / scenes)
    records = load_index(world)
    print(format_summary(summarize(records, source=str(world))))

    print("[2/2] writing pictures")
    scene, scene_records = next(iter(group_by_scene(load_index(world, split="val")).items()))
    frames_ = [load_frame(r) for r in scene_records]
    pics = out / "pictures"
    for i, frame in enumerate(frames_[: max(pictures, 0)]):
        save_png(pics / f"{scene}_{i:03d}.png", upscale(topdown_rgb(frame.semantics), 2))
    import numpy as np

    from occ4d.data.trajectories import ego_trajectory

    sem = np.stack([f.semantics for f in frames_])
    traj = ego_trajectory(scene_records, current=0)
    n = write_video(pics / f"{scene}.gif", clip_frames(sem, trajectory=traj, current=0, scale=2,
                                                       title=f"synthetic {scene}"), fps=2.0)
    print(f"wrote {min(pictures, len(frames_))} PNG frames and a {n}-frame GIF of {scene} to {pics}")
    print(f"demo finished in {time.perf_counter() - start:.1f} s; outputs under {out}")
