"""``occ4d generate --ckpt RUN --traj PROMPT|FILE --frames N --samples K --seed S --out DIR``.

Draws K occupancy clips of N frames from a generator run, each following the given ego
trajectory, and writes them in the Occ3D layout:

- ``DIR/gts/<clip>/<token>/labels.npz`` per frame (all-ones masks: generated scenes have no
  sensors), with ``DIR/occ4d_infos_temporal_generated.pkl`` (devkit keys; ego poses follow the
  trajectory, 2 Hz timestamps), so ``occ4d`` readers, ``eval`` and ``render`` take them as a split
  named ``generated``;
- ``DIR/clips/<clip>.npz`` one clip file each (``occ4d.io.clipfile``);
- ``DIR/summary.json``: the command, seconds per clip and the controllability error of each clip
  (the ego motion registered from its static classes against the trajectory, metres / degrees).

``--traj`` takes a prompt (straight, left, right, stop, accelerate), a JSON file (a list of
[x, y, yaw] rows, or {"trajectory": rows, "hz": 2}) or a real info file / dataset folder
(``--scene`` and ``--start`` choose the keyframes; e.g. ../shared/data/nuscenes-mini-infos). A
trajectory shorter than N frames is continued at constant velocity. Clips longer than the model's
training horizon are made window by window, each conditioned on the frames already made.

``--ckpt`` may also be a forecaster run or a forecasting baseline (``fused-warp``,
``motion-extrude``, ``motion-warp``, ``ego-warp``) with ``--opening``: the clip then starts with
``past`` opening frames and is continued by forecasting along the trajectory (DOME's
controllable generation, :mod:`occ4d.models.world.rollout`). The opening is either a generator
run (its first frames, drawn along the prompt; the whole clip follows the prompt) or a dataset
folder / info file (``--opening-scene`` / ``--opening-start`` choose the keyframes; the prompt
starts at the last of them). The controllability error of such clips is measured from the last
opening frame on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal


def generate(
    ckpt: str,
    traj: str = "straight",
    frames: int = 8,
    samples: int = 1,
    seed: int = 0,
    out: str = "generated",
    sampler: Literal["ddpm", "ddim", "dpm++"] = "ddim",
    steps: int = 50,
    guidance: float = 1.0,
    scene: str = "",
    start: int = 0,
    opening: str = "",
    opening_scene: str = "",
    opening_start: int = 0,
    control: bool = True,
    device: str = "cpu",
    allow_collision: bool = False,
) -> None:
    """Generate occupancy clips that follow an ego trajectory.

    Args:
        ckpt: a generator world-model run (``occ4d train worldmodel --preset tiny-generator``), or
            with ``--opening`` a forecaster run or a forecasting baseline (``fused-warp``).
        traj: straight | left | right | stop | accelerate, a JSON file, or an info file / dataset folder.
        frames: frames per clip (2 Hz); longer than the training horizon uses sliding windows.
        samples: clips to draw.
        seed: clip k uses a generator seeded seed + k (same seed, same clips).
        out: output folder.
        sampler: ddpm (ancestral), ddim or dpm++ (DPM-Solver++ 2M).
        steps: network evaluations per window (1000 = full DDPM).
        guidance: classifier-free guidance on the trajectory (0 = ignore it, 1 = plain conditional).
        scene: scene of an info file / dataset to take the trajectory from (default: the first).
        start: first keyframe of that scene.
        opening: for a forecaster ``--ckpt``: a generator run or a dataset folder / info file whose
            first frames open each clip, continued by forecasting along the trajectory.
        opening_scene: scene of an opening dataset (default: the first).
        opening_start: first keyframe of that scene.
        control: measure each clip's controllability error (registration of its static classes).
        device: cpu or cuda.
        allow_collision: with a dataset opening, generate even when the prompt drives the ego box
            through a wall, tree, barrier or cone of the opening's last frame (refused otherwise).
    """
    from occ4d.models.world.generation import generate_clips

    def report(row: dict) -> None:
        msg = f"{row['clip']}: {frames} frames in {row['seconds']:.1f} s"
        if "trans_err_m" in row:
            msg += f", control error {row['trans_err_m']:.2f} m / {row['yaw_err_deg']:.2f} deg"
        print(msg)

    summary = generate_clips(
        ckpt, traj=traj, frames=frames, samples=samples, seed=seed, out=out, sampler=sampler, steps=steps,
        guidance=guidance, scene=scene, start=start, opening=opening, opening_scene=opening_scene,
        opening_start=opening_start, control=control, device=device, on_clip=report,
        allow_collision=allow_collision,
    )
    per_clip = summary["seconds_per_clip"]
    print(f"wrote {samples} clip(s) to {Path(out)} (split 'generated'); {per_clip:.1f} s per clip")
