"""``occ4d demo``: the system end to end on the built-in synthetic world, in a few minutes on a CPU.

1. synthesize a small world in the Occ3D layout and print its summary;
2. write top-down pictures of one validation scene (PNGs and a GIF with the ego path);
3. forecast its windows with the copy-last and ego-warp baselines and print the OccWorld
   protocol tables (1 s / 2 s / 3 s / avg, mIoU and IoU);
4. write a self-contained HTML viewer of one window: ground truth against the ego-warp forecast.
"""

from __future__ import annotations

from pathlib import Path


def demo(out: Path = Path("demo_out"), seed: int = 0, scenes: int = 4, frames: int = 24,
         workers: int = 1, pictures: int = 4) -> None:
    """Synthesize a small world, picture it, forecast it with the baselines and open it in a viewer.

    Args:
        out: folder for everything the demo writes.
        seed: seed of the synthetic world (same seed, same bytes).
        scenes: scenes in the synthetic world (at least 2: one goes to the val split).
        frames: 2 Hz keyframes per scene (at least 10: 4 history + 6 future frames).
        workers: processes for the synthetic world.
        pictures: top-down PNG frames to write (the GIF shows the whole scene).
    """
    import time

    import numpy as np
    import torch

    from occ4d.commands.forecast import format_table, load_forecaster, run_forecast
    from occ4d.data.dataset import ClipDataset
    from occ4d.data.index import group_by_scene, load_frame, load_index
    from occ4d.data.summary import format_summary, summarize
    from occ4d.data.trajectories import ego_trajectory
    from occ4d.synth import generate
    from occ4d.vis.topdown import save_png, topdown_rgb, upscale
    from occ4d.vis.video import clip_frames, write_video
    from occ4d.vis.viewer import save_viewer

    past, future = 4, 6
    if scenes < 2:
        raise SystemExit("occ4d demo: --scenes must be at least 2 (one scene is held out for validation)")
    if frames < past + future:
        raise SystemExit(f"occ4d demo: --frames must be at least {past + future} (history + forecast)")
    out = Path(out)
    start = time.perf_counter()
    world = out / "world"
    print(f"[1/4] synthesizing {scenes} scenes x {frames} keyframes into {world}")
    generate(world, scenes, frames, seed, workers=workers, val_fraction=1.0 / scenes)
    print(format_summary(summarize(load_index(world), source=str(world))))

    print("[2/4] writing pictures")
    val = load_index(world, split="val")
    scene, scene_records = next(iter(group_by_scene(val).items()))
    sem = np.stack([load_frame(r).semantics for r in scene_records])
    pics = out / "pictures"
    for i in range(min(max(pictures, 0), len(sem))):
        save_png(pics / f"{scene}_{i:03d}.png", upscale(topdown_rgb(sem[i]), 2))
    traj = ego_trajectory(scene_records, current=0)
    n = write_video(pics / f"{scene}.gif", clip_frames(sem, trajectory=traj, current=0, scale=2,
                                                       title=f"synthetic {scene}"), fps=2.0)
    print(f"wrote {min(pictures, len(sem))} PNG frames and a {n}-frame GIF of {scene} to {pics}")

    print("[3/4] forecasting the validation windows with the baselines (OccWorld protocol, GT trajectory)")
    windows = ClipDataset(val, past=past, future=future, stride=1, with_masks=False)
    tables = {}
    for name in ("copy-last", "ego-warp"):
        model, p, f, _ = load_forecaster(name, past=past, future=future)
        with torch.no_grad():
            result = run_forecast(model, windows, past=p, future=f, traj="gt", progress=False)
        tables[name] = result
        print(format_table(result, f"{name}: {len(windows)} windows, {past} history frames, GT trajectory"))

    print("[4/4] writing the interactive viewer")
    item = windows[0]
    occ = item["semantics"][None]
    model, p, f, _ = load_forecaster("ego-warp", past=past, future=future)
    with torch.no_grad():
        pred = model.forecast(occ[:, :past], item["trajectory"][None].float())
    clip_pred = torch.cat([occ[0, :past], pred[0].to(occ.dtype)]).numpy()
    viewer = out / "viewer.html"
    save_viewer(viewer, {"gt": occ[0].numpy(), "pred": clip_pred},
                trajectory=item["trajectory"].numpy().astype(np.float64), current=past - 1,
                title=f"occ4d demo: {scene}, ground truth vs ego-warp forecast",
                labels={"pred": "ego-warp forecast"})
    print(f"open {viewer} in a browser (no server needed): time slider, GT / forecast / error, class toggles")
    print(f"demo finished in {time.perf_counter() - start:.1f} s; outputs under {out}")
