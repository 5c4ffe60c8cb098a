"""The demo's model stages: train tiny world models on the demo's world, forecast and generate.

Each run is the tiny preset of ``occ4d train`` with its sample budget scaled by ``budget``, so
``occ4d train worldmodel --preset tiny-forecaster-warp ...`` at full budget trains the same
model for longer. The forecaster is the latent diffusion forecaster with the full-resolution
ego-warp skip: at a demo budget the tiny tokenizer is far too weak for latents alone to
forecast well, while the skip starts from the ego-warp baseline and learns corrections. Runs
are resumed when their folder exists, so re-running the demo with the same settings reuses
what it trained.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

# (model, preset, overrides of the model config, share of the demo's --budget): trained in this
# order; the world models read ``tokenizer`` from the folder of the first. The tokenizer is the
# 16x residual-VQ one (tiny-rvq: 75.00 mIoU at its full budget, where the 64x tiny-vae reaches
# 32.40); the world models patch its 50x50 latents 10x10, so they see the same 5x5 tokens per
# frame as on the 25x25 KL-VAE latents with their presets' 5x5 patches.
DEMO_TOKENIZER = "tiny-rvq"
# The generator is the scene-centric one: conditioned on the geometry, its clips follow the prompt
# at any budget, where the embedding-conditioned tiny-generator does not at the demo's.
DEMO_GENERATOR = "tiny-generator-scene"
DEMO_RUNS = (
    ("tokenizer", DEMO_TOKENIZER, {}, "tokenizer"),
    ("worldmodel", "tiny-forecaster-warp", {"patch": (1, 10, 10)}, "world"),
    ("worldmodel", DEMO_GENERATOR, {"patch": (1, 10, 10)}, "world"),
)
DEMO_PROMPTS = ("straight", "left", "right", "stop")


def train_tiny(model: str, preset: str, data: Path, out: Path, budget: float, *, val_samples: int = 4,
               threads: int = 0, **model_overrides) -> Path:
    """Train (or resume, or reuse) ``preset`` of ``model`` with ``budget`` x its sample budget.

    ``val_samples`` caps the validation samples scored (0: the whole validation split)."""
    from occ4d.train.config import RunConfig, TrainConfig
    from occ4d.train.loop import train
    from occ4d.train.registry import get_spec

    spec = get_spec(model)
    p = spec.presets[preset]
    per_step = p.data.batch_size * p.optim.accum
    samples = max(per_step, round(p.optim.total_samples * budget / per_step) * per_step)
    optim = replace(p.optim, total_samples=samples, warmup_samples=min(p.optim.warmup_samples, samples // 4))
    cfg = TrainConfig(
        model_name=model,
        preset=preset,
        model=replace(p.model, **model_overrides),
        data=replace(p.data, root=str(data), max_val_samples=val_samples),
        optim=optim,
        run=RunConfig(out=str(out), resume=True, ckpt_every=samples, log_every=max(per_step, samples // 8),
                      threads=threads),
    )
    print(f"  {model} --preset {preset}: {samples} samples "
          f"({budget:g} x the preset's {p.optim.total_samples})")
    return train(spec, cfg)


def train_models(world: Path, runs: Path, budget: float, threads: int = 0,
                 tokenizer_budget: float | None = None) -> dict[str, Path]:
    """The demo's runs by preset name: a tokenizer (``tokenizer_budget`` x its preset's samples,
    default ``budget``; scored on the whole validation split), then the world models on its
    latents (``budget`` x theirs)."""
    done: dict[str, Path] = {}
    shares = {"tokenizer": budget if tokenizer_budget is None else tokenizer_budget, "world": budget}
    for model, preset, overrides, share in DEMO_RUNS:
        val = 0 if model == "tokenizer" else 4
        if model == "worldmodel":
            overrides = {**overrides, "tokenizer": str(done[DEMO_TOKENIZER])}
        done[preset] = train_tiny(model, preset, world, runs / preset, shares[share], val_samples=val,
                                  threads=threads, **overrides)
        if model == "tokenizer":
            from occ4d.models.tokenizers.baseline import block_mode_scores

            print("  " + reconstruction_note(done[preset], shares[share]))
            base = block_mode_scores(world, factor=4)
            print("  hand-written 16x codec (each 4x4 block keeps its most frequent class per height) "
                  f"on the same {int(base['frames'])} frame(s): {base['mIoU']:.2f} mIoU / "
                  f"{base['IoU']:.2f} IoU")
    return done


def reconstruction_note(run: Path, budget: float, min_frames: int = 20) -> str:
    """The tokenizer's last validation figure, with what it rests on: how many frames were scored
    and what share of the preset's samples were trained, and a warning when either is small."""
    from occ4d.train.logger import read_log

    evals = [r for r in read_log(run) if r["kind"] == "eval"]
    if not evals:
        return "tokenizer: no validation figure was logged"
    r = evals[-1]
    text = (f"tokenizer reconstruction: {r['mIoU']:.2f} mIoU / {r['IoU']:.2f} IoU on {int(r['frames'])} "
            f"validation frame(s) after {r['samples']} training samples ({budget:g} x the preset's budget)")
    if budget < 1:
        text += "; a fraction of the preset's training (the full run reconstructs better)"
    if r["frames"] < min_frames:
        text += (f"; indicative only (fewer than {min_frames} frames scored): "
                 f"`occ4d eval tokenizer --ckpt {run}` scores it on a whole split")
    return text


def forecast_row(run: Path, windows, *, past: int, future: int, steps: int):
    """(the loaded forecaster, its OccWorld-protocol result on the validation windows)."""
    from occ4d.models.world.forecasting import load_forecaster, run_forecast

    model, p, f, _ = load_forecaster(str(run), past=past, future=future)
    if (p, f) != (past, future):
        raise SystemExit(f"{run}: trained for {p} + {f} frames, the demo scores {past} + {future}")
    with torch.no_grad():
        return model, run_forecast(model, windows, past=p, future=f, traj="gt", steps=steps, progress=True,
                                   regions=True)


def generate_clips(run: Path, out: Path, *, frames: int, steps: int,
                   seed: int = 0) -> tuple[list[dict], str]:
    """One clip per trajectory prompt, and a control clip; their control errors, and what the
    control column holds.

    The control shows what the condition does: for a scene-centric generator
    (:mod:`occ4d.models.world.scene_frame`), the same clip left in its window's reference frame
    (not moved along the prompt); otherwise the same model's unconditional branch (guidance 0,
    trained with condition dropout).
    """
    from occ4d.io.clipfile import save_clip
    from occ4d.metrics.control import ControlMetric
    from occ4d.models.world.prompts import prompt_trajectory
    from occ4d.train.registry import load_model

    model, _, _ = load_model(str(run))
    model.eval()
    if model.config.scene_centric:
        control, label = {"move": False}, "control: not moved along the prompt"
    else:
        control, label = {"guidance_scale": 0.0}, "without (unconditional branch)"
    rows = []
    for name in DEMO_PROMPTS:
        traj = prompt_trajectory(name, frames)
        row = {"prompt": name}
        for key, kw in (("cond", {"guidance_scale": 1.0}), ("uncond", control)):
            g = torch.Generator().manual_seed(seed)
            clip = model.generate(torch.as_tensor(traj, dtype=torch.float32)[None], frames=frames,
                                  generator=g, steps=steps, **kw)[0]
            m = ControlMetric()
            m.update(clip, traj)
            err = m.compute()
            row[f"{key}_m"], row[f"{key}_deg"] = err["trans_err_m"], err["yaw_err_deg"]
            if key == "cond":
                save_clip(out / f"{name}.npz", clip.numpy(), np.asarray(traj, dtype=np.float64))
                row["clip"] = clip
        rows.append(row)
    return rows, label


def steer_clips(windows, out: Path, *, past: int, future: int, frames: int) -> list[dict]:
    """Generation by forecasting: the first window's opening continued along each prompt.

    ``fused-warp`` (no training) continues the opening's ``past`` real frames to ``frames``
    frames along each prompt (``occ4d generate --ckpt fused-warp --opening DATA``), and, as the
    control, along the opening's own history at constant velocity. Both are scored against the
    prompt from the last opening frame on; clip files and GIFs go to ``out``.
    """
    from occ4d.io.clipfile import save_clip
    from occ4d.metrics.control import ControlMetric
    from occ4d.models.world.embed import extend_traj
    from occ4d.models.world.forecasting import load_forecaster
    from occ4d.models.world.prompts import prompt_trajectory
    from occ4d.models.world.rollout import compose_traj, rollout
    from occ4d.vis.video import clip_frames, write_video

    model, past, future, _ = load_forecaster("fused-warp", past=past, future=future)
    item = windows[0]
    occ, own = item["semantics"][None, :past], item["trajectory"][:past].double().numpy()
    rows = []
    for name in DEMO_PROMPTS:
        full = compose_traj(own, prompt_trajectory(name, frames - past + 1))
        row = {"prompt": name}
        ahead = extend_traj(torch.as_tensor(own)[None], frames)[0].numpy()
        for key, drive in (("cond", full), ("uncond", ahead)):
            path = torch.as_tensor(drive)[None].float()
            with torch.no_grad():
                clip = rollout(model, occ, path, frames, past=past, future=future)[0]
            m = ControlMetric()
            m.update(clip[past - 1 :], full[past - 1 :])
            err = m.compute()
            row[f"{key}_m"], row[f"{key}_deg"] = err["trans_err_m"], err["yaw_err_deg"]
            if key == "cond":
                save_clip(out / f"{name}.npz", clip.numpy(), full, current=past - 1)
                write_video(out / f"{name}.gif", clip_frames(clip.numpy(), trajectory=full, current=past - 1,
                                                             scale=2, title=f"steered: {name}"), fps=2.0)
        rows.append(row)
    return rows


def format_control(rows: list[dict], without: str = "without (unconditional branch)") -> str:
    lines = [f"prompt      error with trajectory (m / deg)   {without}"]
    for r in rows:
        lines.append(f"{r['prompt']:<10}  {r['cond_m']:6.2f} / {r['cond_deg']:5.2f}"
                     f"                 {r['uncond_m']:6.2f} / {r['uncond_deg']:5.2f}")
    return "\n".join(lines)
