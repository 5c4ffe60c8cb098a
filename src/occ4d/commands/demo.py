"""``occ4d demo``: the system end to end on the built-in synthetic world, in a few minutes on a CPU.

1. synthesize a small world in the Occ3D layout and print its summary;
2. write top-down pictures of one validation scene (PNGs and a GIF with the ego path);
3. forecast its windows with the copy-last, ego-warp, motion-warp, motion-extrude and fused-warp
   baselines and print the OccWorld protocol tables (1 s / 2 s / 3 s / avg, mIoU and IoU); then
   continue the first window's real opening along each trajectory prompt with fused-warp
   (generation by forecasting) and print its controllability error against a control that
   ignores the prompt, with a GIF of each clip;
4. train the tiny tokenizer (KL-VAE) and, on its latents, the tiny diffusion forecaster (with
   its full-resolution ego-warp skip) and generator, each with ``budget`` x its preset's sample
   budget (progress bars; skipped with ``--no-train``);
5. forecast the validation windows with the trained forecaster (same protocol table), generate
   one clip per trajectory prompt and print the controllability error with and without the
   trajectory condition, with a GIF of each generated clip;
6. write a self-contained HTML viewer of one window: ground truth against the forecasts.

At the default budget the whole demo took 11-14 minutes on a two-core CPU shared with another job.
"""

from __future__ import annotations

from pathlib import Path


def demo(out: Path = Path("demo_out"), seed: int = 0, scenes: int = 4, frames: int = 24,
         workers: int = 1, pictures: int = 4, train: bool = True, budget: float = 0.15,
         steps: int = 20, gen_frames: int = 8, threads: int = 0) -> None:
    """Synthesize a small world, picture it, train tiny world models, forecast, generate, and view it.

    Args:
        out: folder for everything the demo writes.
        seed: seed of the synthetic world (same seed, same bytes).
        scenes: scenes in the synthetic world (at least 2: one goes to the val split).
        frames: 2 Hz keyframes per scene (at least 10: 4 history + 6 future frames).
        workers: processes for the synthetic world.
        pictures: top-down PNG frames to write (the GIF shows the whole scene).
        train: train the tiny tokenizer, forecaster and generator (--no-train: baselines only).
        budget: share of each tiny preset's sample budget to train for (1 = the full preset).
        steps: DDIM steps when the trained models sample.
        gen_frames: frames of each generated clip.
        threads: torch threads while training (0: torch's default).
    """
    import time

    import numpy as np
    import torch

    from occ4d.data.dataset import ClipDataset
    from occ4d.data.index import group_by_scene, load_frame, load_index
    from occ4d.data.summary import format_summary, summarize
    from occ4d.data.trajectories import ego_trajectory
    from occ4d.models.world.forecasting import format_table, load_forecaster, run_forecast
    from occ4d.models.world.prompts import prompt_trajectory
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
    stages = 6 if train else 4
    world = out / "world"
    print(f"[1/{stages}] synthesizing {scenes} scenes x {frames} keyframes into {world}")
    generate(world, scenes, frames, seed, workers=workers, val_fraction=1.0 / scenes)
    print(format_summary(summarize(load_index(world), source=str(world))))

    print(f"[2/{stages}] writing pictures")
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

    print(f"[3/{stages}] forecasting the validation windows with the baselines "
          "(OccWorld protocol, GT trajectory)")
    windows = ClipDataset(val, past=past, future=future, stride=1, with_masks=False)
    forecasters = {}
    for name in ("copy-last", "ego-warp", "motion-warp", "motion-extrude", "fused-warp"):
        model, p, f, _ = load_forecaster(name, past=past, future=future)
        with torch.no_grad():
            result = run_forecast(model, windows, past=p, future=f, traj="gt", progress=False)
        forecasters[name] = model
        print(format_table(result, f"{name}: {len(windows)} windows, {past} history frames, GT trajectory"))
    from occ4d.commands.demo_models import format_control, steer_clips

    steered = out / "steered"
    rows = steer_clips(windows, steered, past=past, future=future, frames=past + future)
    print("generation by forecasting: the first window's real opening continued along each prompt by "
          "fused-warp (control: along its own history)")
    print(format_control(rows, "control (history extrapolated)"))
    print(f"wrote the steered clips (clip files and GIFs) to {steered}")

    if train:
        from occ4d.commands.demo_models import forecast_row, generate_clips, train_models

        print(f"[4/{stages}] training the tiny world models ({budget:g} x each preset's sample budget)")
        runs = train_models(world, out / "runs", budget, threads=threads)
        print(f"[5/{stages}] forecasting with the trained diffusion forecaster and generating clips")
        run = runs["tiny-forecaster-warp"]
        model, result = forecast_row(run, windows, past=past, future=future, steps=steps)
        print(format_table(result, f"diffusion forecaster (tiny-forecaster-warp at {budget:g} x budget): "
                                   f"{len(windows)} windows, GT trajectory, DDIM {steps} steps"))
        forecasters["diffusion forecaster"] = model
        gen = out / "generated"
        rows = generate_clips(runs["tiny-generator"], gen, frames=gen_frames, steps=steps, seed=seed)
        for r in rows:
            write_video(gen / f"{r['prompt']}.gif",
                        clip_frames(r["clip"].numpy(), trajectory=prompt_trajectory(r["prompt"], gen_frames),
                                    current=0, scale=2, title=f"generated: {r['prompt']}"), fps=2.0)
        print(format_control(rows))
        print(f"wrote the generated clips (clip files and GIFs) to {gen}")

    print(f"[{stages}/{stages}] writing the interactive viewer")
    item = windows[0]
    occ = item["semantics"][None]
    clips, labels = {"gt": occ[0].numpy()}, {}
    shown = [n for n in forecasters if n != "copy-last"]
    for name in shown:  # the last (the trained model when there is one) is "pred": it gets the error view
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            pred = forecasters[name].forecast(occ[:, :past], item["trajectory"][None].float(), generator=g,
                                              steps=steps)
        key = "pred" if name == shown[-1] else name.replace(" ", "-")
        clips[key] = torch.cat([occ[0, :past], pred[0].to(occ.dtype)]).numpy()
        labels[key] = f"{name} forecast"
    viewer = out / "viewer.html"
    save_viewer(viewer, clips, trajectory=item["trajectory"].numpy().astype(np.float64), current=past - 1,
                title=f"occ4d demo: {scene}, ground truth vs forecasts", labels=labels)
    print(f"open {viewer} in a browser (no server needed): time slider, GT / forecast / error, class toggles")
    print(f"demo finished in {time.perf_counter() - start:.1f} s; outputs under {out}")
