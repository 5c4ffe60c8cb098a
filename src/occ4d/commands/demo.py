"""``occ4d demo``: the system end to end on the built-in synthetic world, in a few minutes on a CPU.

1. synthesize a small world in the Occ3D layout and print its summary;
2. write top-down pictures of one validation scene (PNGs and a GIF with the ego path);
3. forecast its windows with the copy-last, ego-warp, motion-warp, motion-extrude and fused-warp
   baselines and print the OccWorld protocol tables (1 s / 2 s / 3 s / avg, mIoU and IoU); then
   continue the first window's real opening along each trajectory prompt with fused-warp
   (generation by forecasting) and print its controllability error against a control that
   ignores the prompt, with a GIF of each clip;
4. train the tiny tokenizer (16x residual VQ) and, on its latents, the tiny diffusion forecaster (with
   its full-resolution ego-warp skip) and generator, the tokenizer with ``tokenizer_budget`` and
   the world models with ``budget`` x their presets' sample budgets (progress bars; skipped with
   ``--no-train``);
5. forecast the validation windows with the trained forecaster (same protocol table), generate
   one clip per trajectory prompt and print the controllability error with and without the
   trajectory condition, with a GIF of each generated clip;
6. write a self-contained HTML viewer of one window: ground truth against the forecasts.

At the default budgets the whole demo took 18.8 minutes on one thread of a two-core CPU shared
with another job.
"""

from __future__ import annotations

from pathlib import Path


def demo(out: Path = Path("demo_out"), seed: int = 0, scenes: int = 4, frames: int = 24,
         workers: int = 1, pictures: int = 4, train: bool = True, budget: float = 0.15,
         tokenizer_budget: float = 0.6, steps: int = 20, gen_frames: int = 8, threads: int = 0) -> None:
    """Synthesize a small world, picture it, train tiny world models, forecast, generate, and view it.

    Args:
        out: folder for everything the demo writes.
        seed: seed of the synthetic world (same seed, same bytes).
        scenes: scenes in the synthetic world (at least 2: one goes to the val split).
        frames: 2 Hz keyframes per scene (at least 10: 4 history + 6 future frames).
        workers: processes for the synthetic world.
        pictures: top-down PNG frames to write (the GIF shows the whole scene).
        train: train the tiny tokenizer, forecaster and generator (--no-train: baselines only).
        budget: share of each tiny world model preset's sample budget to train for (1 = the full preset).
        tokenizer_budget: share of the tiny tokenizer preset's sample budget (the world models
            train on its latents, so it gets the larger share).
        steps: DDIM steps when the trained models sample.
        gen_frames: frames of each generated clip.
        threads: torch threads while training (0: torch's default).
    """
    from occ4d.demo.stages import run_demo

    run_demo(out, seed=seed, scenes=scenes, frames=frames, workers=workers, pictures=pictures, train=train,
             budget=budget, tokenizer_budget=tokenizer_budget, steps=steps, gen_frames=gen_frames,
             threads=threads)
