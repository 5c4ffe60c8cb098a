"""``occ4d forecast --ckpt RUN --data DIR [--traj gt|pred] [--json FILE]``: the OccWorld forecasting table.

Scores a forecaster on every window of a split (PROTOCOLS §3.9: ``past`` history frames with the
current one last, 6 future frames at 2 Hz, all voxels, no mask; mIoU over the 17 semantic
classes and IoU of "occupied" at 1 s / 2 s / 3 s and their mean). The trajectory the model is
conditioned on is stated with the table, because published numbers differ on it (DOME#1):

- ``gt``: the ground-truth future ego poses of each window;
- ``pred``: the poses a planner run (``--planner RUN``) predicts from the history frames.

``--ckpt`` is a world-model run (forecaster or autoregressive), or a baseline by name:
``copy-last``, ``ego-warp``, ``motion-warp`` (ego-warp plus constant-velocity tracked objects,
:mod:`occ4d.models.world.motion`) or ``motion-extrude`` (motion-warp with the ground classes of
the grid's border continued into the area that enters the grid) or ``fused-warp`` (motion-extrude
with static columns resampled from every history frame). Sampling uses a generator
seeded with ``seed + window index``, so the same command gives the same numbers.

``--regions`` adds rows scored over the columns the current frame saw and over the rest (the
area entering the grid), so a forecaster's guesses about what no history frame saw are measured
apart from how it moves what it saw (with the OccWorld protocol a class absent from a region's
ground truth scores 1 there, as everywhere).
"""

from __future__ import annotations

from typing import Literal


def forecast(
    ckpt: str,
    data: str,
    traj: Literal["gt", "pred"] = "gt",
    planner: str = "",
    json: str = "",
    split: str = "val",
    max_windows: int = 0,
    sampler: Literal["ddpm", "ddim", "dpm++"] = "ddim",
    steps: int = 20,
    guidance: float = 1.0,
    seed: int = 0,
    protocol: Literal["occworld", "strict"] = "occworld",
    windows: Literal["all", "occworld", "dome"] = "all",
    past: int = 4,
    future: int = 6,
    save: str = "",
    device: str = "cpu",
    perception: str = "",
    regions: bool = False,
) -> None:
    """Score a forecaster with the OccWorld protocol (1 s / 2 s / 3 s / avg, mIoU and IoU).

    Args:
        ckpt: a forecaster or autoregressive world-model run, or ``copy-last`` / ``ego-warp`` /
            ``motion-warp`` / ``motion-extrude`` / ``fused-warp``.
        data: dataset folder (or info file) with the split to score.
        traj: condition on the ground-truth future trajectory (gt) or the planner's (pred).
        planner: planner run for ``--traj pred``.
        json: also write the full result (per class, per step, condition) to this file.
        split: which split of ``data`` to score.
        max_windows: score only the first N windows (0: all).
        sampler: diffusion sampler (diffusion forecasters only).
        steps: sampling steps (diffusion forecasters only).
        guidance: classifier-free guidance scale on the trajectory (0 = unconditional, 1 = plain).
        seed: window i samples with a generator seeded seed + i.
        protocol: occworld (IoU = 1 for classes without ground truth) or strict (devkit rules).
        windows: all (every window of past + future keyframes), occworld (OccWorld's set: 5 history
            frames, starts 0 .. L - 13 per scene) or dome (DOME's: the first 10 keyframes of each
            scene, 4 history frames).
        past: history frames for the baselines (world-model runs use their own).
        future: forecast frames for the baselines.
        save: write forecast and ground-truth clip files under SAVE/pred and SAVE/gt
            (``occ4d eval forecast --pred SAVE/pred --gt SAVE/gt`` re-scores them).
        device: cpu or cuda.
        perception: a perception run (``occ4d train perception``): the history frames are predicted
            from each keyframe's cameras instead of read from the labels (camera-input world model);
            the future frames stay ground truth.
        regions: also score the columns the current frame saw and the unseen rest apart.
    """
    from occ4d.io.atomic import write_json
    from occ4d.models.world.forecasting import forecast_dataset, format_table

    result = forecast_dataset(
        ckpt, data, traj=traj, planner=planner, split=split, max_windows=max_windows, sampler=sampler,
        steps=steps, guidance=guidance, seed=seed, protocol=protocol, windows=windows, past=past,
        future=future, save=save, device=device, perception=perception, regions=regions,
    )
    name, past = result["model"], result["history_frames"]
    title = (
        f"{name} | {result['protocol']} | {result['windows']} windows of {split} ({windows} set) | "
        f"history {past} frames | "
        f"trajectory: {'ground truth' if traj == 'gt' else 'predicted by ' + planner} | "
        f"history: {result['history']}"
    )
    print(format_table(result, title))
    if "planning" in result:
        p = result["planning"]
        print("planner: " + ", ".join(f"{k}={v:.3f}" for k, v in p.items()))
    if json:
        write_json(json, result)
