"""The stages of ``occ4d demo``, in order, each printing what it made.

1. synthesize a small world in the Occ3D layout and print its summary;
2. write top-down pictures of one validation scene (PNGs and a GIF with the ego path);
3. forecast its windows with the copy-last, ego-warp, motion-warp, motion-extrude and fused-warp
   baselines (OccWorld protocol tables, 1 s / 2 s / 3 s / avg, mIoU and IoU in percent), then
   continue the first window's real opening along each trajectory prompt with fused-warp;
4. and 5. (with ``train``) train the tiny tokenizer, forecaster and generator
   (:mod:`occ4d.demo.models`), forecast with the forecaster and generate one clip per prompt;
6. write a self-contained HTML viewer of one window: ground truth against the forecasts.

Windows are ``past`` = 4 history and ``future`` = 6 forecast frames at 2 Hz, ``(1, T, X, Y, Z)``
uint8 labels with ``(1, T, 3)`` trajectories (x, y in metres, yaw in radians). The demo's text
is its product, so :func:`run_demo` takes the function that prints it (``log``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

PAST, FUTURE = 4, 6
BASELINE_NAMES = ("copy-last", "ego-warp", "motion-warp", "motion-extrude", "fused-warp")


def write_pictures(val, pics: Path, pictures: int):
    """Top-down PNGs of the first ``pictures`` frames of the first scene of ``val`` and a GIF of
    all of it: (scene name, its records, PNGs written, GIF frames)."""
    from occ4d.data.index import group_by_scene, load_frame
    from occ4d.data.trajectories import ego_trajectory
    from occ4d.vis.topdown import save_png, topdown_rgb, upscale
    from occ4d.vis.video import clip_frames, write_video

    scene, scene_records = next(iter(group_by_scene(val).items()))
    sem = np.stack([load_frame(r).semantics for r in scene_records])
    for i in range(min(max(pictures, 0), len(sem))):
        save_png(pics / f"{scene}_{i:03d}.png", upscale(topdown_rgb(sem[i]), 2))
    traj = ego_trajectory(scene_records, current=0)
    n = write_video(pics / f"{scene}.gif", clip_frames(sem, trajectory=traj, current=0, scale=2,
                                                       title=f"synthetic {scene}"), fps=2.0)
    return scene, scene_records, min(pictures, len(sem)), n


def forecast_baselines(windows, log: Callable[[str], None]) -> tuple[dict, dict]:
    """Score every baseline on ``windows`` and log its table; the baselines and their results by name."""
    from occ4d.models.world.forecasting import format_table, load_forecaster, run_forecast

    forecasters, results = {}, {}
    for name in BASELINE_NAMES:
        model, p, f, _ = load_forecaster(name, past=PAST, future=FUTURE)
        with torch.no_grad():
            result = run_forecast(model, windows, past=p, future=f, traj="gt", progress=False, regions=True)
        forecasters[name], results[name] = model, result
        log(format_table(result, f"{name}: {len(windows)} windows, {PAST} history frames, GT trajectory"))
    return forecasters, results


def versus_best_baseline(result: dict, baselines: dict, budget: float) -> str:
    """Plain lines: the trained forecaster's average mIoU against the best baseline's, over the
    whole grid and, when every result carries ``regions``, in the area entering the grid (what no
    history frame saw, where a learned model has to guess and no warp can)."""
    views = {"": (result, baselines)}
    if all("regions" in r for r in (result, *baselines.values())):
        unseen = {n: r["regions"]["unseen"] for n, r in baselines.items()}
        views[" in the area entering the grid"] = (result["regions"]["unseen"], unseen)
    lines = []
    for where, (mine, theirs) in views.items():
        best = max(theirs, key=lambda n: theirs[n]["mIoU_avg"])
        gap = mine["mIoU_avg"] - theirs[best]["mIoU_avg"]
        if gap > 0:
            lines.append(f"the trained forecaster is {gap:.2f} avg mIoU ahead of {best}, the best "
                         f"hand-written baseline{where}, on these windows")
        else:
            lines.append(f"at {budget:g} x its budget the trained forecaster is not ahead of {best}, the "
                         f"best hand-written baseline{where}: {-gap:.2f} avg mIoU behind it on these windows")
    return "\n".join(lines) + " (README, World models, has the full-budget figures)"


def write_viewer(path: Path, item: dict, forecasters: dict, *, steps: int, seed: int, scene: str) -> None:
    """The HTML viewer of one window: its ground truth against each forecaster but copy-last; the
    last (the trained model when there is one) is "pred" and gets the error view."""
    from occ4d.vis.viewer import save_viewer

    occ = item["semantics"][None]
    clips, labels = {"gt": occ[0].numpy()}, {}
    shown = [n for n in forecasters if n != "copy-last"]
    for name in shown:
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            pred = forecasters[name].forecast(occ[:, :PAST], item["trajectory"][None].float(), generator=g,
                                              steps=steps)
        key = "pred" if name == shown[-1] else name.replace(" ", "-")
        clips[key] = torch.cat([occ[0, :PAST], pred[0].to(occ.dtype)]).numpy()
        labels[key] = f"{name} forecast"
    save_viewer(path, clips, trajectory=item["trajectory"].numpy().astype(np.float64), current=PAST - 1,
                title=f"occ4d demo: {scene}, ground truth vs forecasts", labels=labels)


def run_demo(out: Path, *, seed: int = 0, scenes: int = 4, frames: int = 24, workers: int = 1,
             pictures: int = 4, train: bool = True, budget: float = 0.15, tokenizer_budget: float = 0.6,
             steps: int = 20, gen_frames: int = 8, threads: int = 0,
             log: Callable[[str], None] = print) -> None:
    """Every stage of ``occ4d demo`` into ``out``, its text through ``log``; the arguments are the
    command's."""
    import time

    from occ4d.data.dataset import ClipDataset
    from occ4d.data.index import load_index
    from occ4d.data.summary import format_summary, summarize
    from occ4d.demo.models import format_control, steer_clips
    from occ4d.models.world.prompts import prompt_trajectory
    from occ4d.synth import generate
    from occ4d.vis.video import clip_frames, write_video

    past, future = PAST, FUTURE
    if scenes < 2:
        raise SystemExit("occ4d demo: --scenes must be at least 2 (one scene is held out for validation)")
    if frames < past + future:
        raise SystemExit(f"occ4d demo: --frames must be at least {past + future} (history + forecast)")
    out = Path(out)
    start = time.perf_counter()
    stages = 6 if train else 4
    world = out / "world"
    log(f"[1/{stages}] synthesizing {scenes} scenes x {frames} keyframes into {world}")
    generate(world, scenes, frames, seed, workers=workers, val_fraction=1.0 / scenes)
    log(format_summary(summarize(load_index(world), source=str(world))))

    log(f"[2/{stages}] writing pictures")
    val = load_index(world, split="val")
    pics = out / "pictures"
    scene, _, pngs, n = write_pictures(val, pics, pictures)
    log(f"wrote {pngs} PNG frames and a {n}-frame GIF of {scene} to {pics}")

    log(f"[3/{stages}] forecasting the validation windows with the baselines "
        "(OccWorld protocol, GT trajectory)")
    windows = ClipDataset(val, past=past, future=future, stride=1, with_masks=False)
    forecasters, baseline_results = forecast_baselines(windows, log)
    steered = out / "steered"
    rows = steer_clips(windows, steered, past=past, future=future, frames=past + future)
    log("generation by forecasting: the first window's real opening continued along each prompt by "
        "fused-warp (control: along its own history)")
    log(format_control(rows, "control (history extrapolated)"))
    log(f"wrote the steered clips (clip files and GIFs) to {steered}")

    if train:
        from occ4d.demo.models import (
            DEMO_GENERATOR,
            forecast_row,
            generate_clips,
            train_models,
        )
        from occ4d.models.world.forecasting import format_table

        log(f"[4/{stages}] training the tiny tokenizer ({tokenizer_budget:g} x its preset's sample budget) "
            f"and world models ({budget:g} x theirs)")
        runs = train_models(world, out / "runs", budget, threads=threads, tokenizer_budget=tokenizer_budget)
        log(f"[5/{stages}] forecasting with the trained diffusion forecaster and generating clips")
        run = runs["tiny-forecaster-warp"]
        model, result = forecast_row(run, windows, past=past, future=future, steps=steps)
        log(format_table(result, f"diffusion forecaster (tiny-forecaster-warp at {budget:g} x budget): "
                                 f"{len(windows)} windows, GT trajectory, DDIM {steps} steps"))
        log(versus_best_baseline(result, baseline_results, budget))
        forecasters["diffusion forecaster"] = model
        gen = out / "generated"
        rows, control = generate_clips(runs[DEMO_GENERATOR], gen, frames=gen_frames, steps=steps, seed=seed)
        for r in rows:
            write_video(gen / f"{r['prompt']}.gif",
                        clip_frames(r["clip"].numpy(), trajectory=prompt_trajectory(r["prompt"], gen_frames),
                                    current=0, scale=2, title=f"generated: {r['prompt']}"), fps=2.0)
        log(format_control(rows, control))
        log(f"wrote the generated clips (clip files and GIFs) to {gen}")

    log(f"[{stages}/{stages}] writing the interactive viewer")
    viewer = out / "viewer.html"
    write_viewer(viewer, windows[0], forecasters, steps=steps, seed=seed, scene=scene)
    log(f"open {viewer} in a browser (no server needed): time slider, GT / forecast / error, class toggles")
    log(f"demo finished in {time.perf_counter() - start:.1f} s; outputs under {out}")
