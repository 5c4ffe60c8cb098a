"""The synthetic 4D driving world: ``generate()`` draws scenes and writes them as Occ3D-nuScenes,
and with occupancy flow as OpenOcc v2 beside it (occ4d.synth.writer).

Each scene is its own town, seeded from (seed, scene index) alone, so the output does not
depend on how many workers run or in which order: the same seed gives the same bytes. One scene:
draw the town and the ego's manoeuvre, rasterise the static world around the ego's path once,
spawn traffic, then simulate at 10 Hz and label a keyframe every 0.5 s (2 Hz, as Occ3D).
"""

from __future__ import annotations

import multiprocessing as mp
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from occ4d.core.frame import Frame
from occ4d.core.pose import yaw_pose
from occ4d.core.vocab import OCC3D_VOCAB
from occ4d.io.atomic import remove_temps
from occ4d.synth import writer
from occ4d.synth.agents import spawn_traffic
from occ4d.synth.ego import BEHAVIOURS, plan_ego
from occ4d.synth.paths import STEP
from occ4d.synth.scenery import build_world
from occ4d.synth.sensing import flow, semantics, sensors
from occ4d.synth.shapes import boxes
from occ4d.synth.town import TownConfig, build_town
from occ4d.synth.traffic import DT, Simulation

STEPS_PER_KEYFRAME = int(round(0.5 / DT))
VIEW_MARGIN = 70.0  # m around the ego's path that is rasterised (the grid's half diagonal is 56.6 m)


@dataclass
class SceneResult:
    index: int
    infos: list[dict]
    class_counts: np.ndarray  # (18,) voxels per class over the scene's keyframes
    lidar_observed: int
    camera_observed: int
    behaviour: str
    seconds: float


def scene_rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(index)]))


def simulate_scene(seed: int, index: int, frames: int, density: float = 1.0, render=None):
    """Yield (frame index, Frame, ego speed) for every keyframe of scene ``index``; the last item
    is the behaviour name. Everything random comes from ``scene_rng(seed, index)``. The Frame is
    in Occ3D ids with both masks and its occupancy flow (every road user's velocity on its voxels,
    occ4d.synth.sensing.flow); the Occ3D writer leaves the flow out, the OpenOcc v2 one keeps it.

    ``render(f, world, (x, y, yaw), [(agent id, world boxes (P, 8)), ...])``, when given, is
    called for every keyframe before it is yielded (the camera renderer, occ4d.synth.cameras)."""
    rng = scene_rng(seed, index)
    duration = max(frames - 1, 0) * STEPS_PER_KEYFRAME * DT
    side = int(np.clip(np.ceil((13.0 * duration + 200.0) / 90.0) + 1, 4, 14))
    town = build_town(rng, TownConfig(nodes=(side, side)))
    behaviour = BEHAVIOURS[(index + seed) % len(BEHAVIOURS)]
    plan = plan_ego(town, behaviour, max(duration, DT), rng)
    town.signal_hold = plan.holds

    path = plan.route.path
    s_end = float(np.max(plan.speed)) * duration + plan.s0 + 5.0
    seen = path.xy[int(plan.s0 / STEP) : int(s_end / STEP) + 2]
    lo, hi = seen.min(axis=0) - VIEW_MARGIN, seen.max(axis=0) + VIEW_MARGIN
    world = build_world(town, (lo[0], lo[1], hi[0], hi[1]), rng)
    agents = spawn_traffic(
        town, (lo[0] + 10, lo[1] + 10, hi[0] - 10, hi[1] - 10), duration, rng, path, plan.s0, density
    )
    sim = Simulation(town, plan.agent(), agents, plan.speed)
    rig = sensors()
    heights = [a.size for a in sim.agents]
    for f in range(frames):
        if f:
            sim.advance(STEPS_PER_KEYFRAME)
        state = sim.poses()
        velocity = sim.velocities()
        ex, ey, eyaw, ev = state[0]
        bxs, ids, vel = [], [], []
        for i in range(1, len(state)):
            x, y, yaw, _ = state[i]
            if (x - ex) ** 2 + (y - ey) ** 2 > 70.0**2:
                continue
            bxs.append(boxes(sim.agents[i].kind, x, y, yaw, heights[i]))
            ids.append(i)
            vel.append(np.repeat(velocity[i : i + 1], len(bxs[-1]), axis=0))  # every part moves with it
        if render is not None:
            render(f, world, (ex, ey, eyaw), list(zip(ids, bxs, strict=True)))
        all_boxes = np.concatenate(bxs) if bxs else np.zeros((0, 8))
        all_velocities = np.concatenate(vel) if vel else np.zeros((0, 2))
        sem = semantics(world, (ex, ey, eyaw), all_boxes)
        lidar, camera = rig.masks(sem != OCC3D_VOCAB.free)
        tok = writer.token(seed, index, f)
        frame = Frame(
            semantics=sem,
            mask_camera=camera,
            mask_lidar=lidar,
            flow=flow((ex, ey, eyaw), all_boxes, all_velocities),
            ego2global=yaw_pose(ex, ey, eyaw),
            timestamp=writer.timestamp(index, f),
            scene=writer.scene_name(index),
            token=tok,
        )
        yield f, frame.validate(), float(ev)
    yield plan.behaviour


def _run_scene(job: tuple) -> SceneResult:
    root, seed, index, frames, split, density, camera_width = job
    t0 = time.perf_counter()
    counts = np.zeros(OCC3D_VOCAB.num_classes, np.int64)
    lidar = camera = 0
    poses, speeds, behaviour = [], [], ""
    cam_entries: dict[int, dict] = {}
    render = None
    if camera_width:
        from occ4d.synth import cameras

        rig = cameras.scaled_rig(sensors().rig, camera_width)

        def render(f, world, ego, agents):
            views = cameras.render_views(world, ego, agents, rig, (seed, index, f))
            cam_entries[f] = cameras.write_views(Path(root), writer.token(seed, index, f), views)

    for item in simulate_scene(seed, index, frames, density, render):
        if isinstance(item, str):
            behaviour = item
            continue
        f, frame, speed = item
        writer.write_labels(Path(root), frame, index)
        writer.write_openocc(Path(root), frame, index)
        counts += np.bincount(frame.semantics.ravel(), minlength=OCC3D_VOCAB.num_classes)
        lidar += int(frame.mask_lidar.sum())
        camera += int(frame.mask_camera.sum())
        poses.append(frame.ego2global)
        speeds.append(speed)
    infos = writer.scene_infos(seed, index, np.stack(poses), np.asarray(speeds), behaviour, split)
    for f, entries in cam_entries.items():  # images written: fill data_path as the converter does
        for cam, entry in entries.items():
            infos[f]["cams"][cam].update(entry)
    return SceneResult(index, infos, counts, lidar, camera, behaviour, time.perf_counter() - t0)


def split_scenes(scenes: int, val_fraction: float, seed: int) -> list[str]:
    """'train' or 'val' per scene: round(scenes * val_fraction) val scenes (at least one when the
    fraction is positive and there are two or more scenes), drawn from the seed."""
    n_val = int(round(scenes * val_fraction))
    if val_fraction > 0 and scenes >= 2:
        n_val = max(n_val, 1)
    n_val = min(n_val, scenes - 1) if scenes >= 2 else 0
    order = np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, 2**31 - 1])).permutation(
        scenes
    )
    val = set(order[:n_val].tolist())
    return ["val" if i in val else "train" for i in range(scenes)]


def generate(
    out_dir: str | Path,
    scenes: int,
    frames: int,
    seed: int,
    workers: int = 1,
    val_fraction: float = 0.2,
    density: float = 1.0,
    progress: bool = True,
    camera_width: int = 0,
) -> dict:
    """Write a synthetic world of ``scenes`` scenes of ``frames`` 2 Hz keyframes to ``out_dir``.

    With ``camera_width`` > 0 the six surround cameras are rendered too, at that image width
    (occ4d.synth.cameras). Returns a summary: counts, splits, behaviours, class histogram, mask
    coverage and timing.
    """
    if scenes < 1 or frames < 1:
        raise ValueError(f"need at least one scene and one frame, got scenes={scenes}, frames={frames}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if density <= 0:
        raise ValueError(f"density must be positive, got {density}")
    from occ4d.core.progress import Progress

    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    remove_temps(root, recursive=True)  # left by a run killed mid-write; this run rewrites every file
    splits = split_scenes(scenes, val_fraction, seed)
    if camera_width < 0:
        raise ValueError(f"camera_width must be >= 0, got {camera_width}")
    jobs = [(str(root), int(seed), i, int(frames), splits[i], float(density), int(camera_width))
            for i in range(scenes)]
    t0 = time.perf_counter()
    results: list[SceneResult] = []
    bar = Progress(total=scenes * frames, unit="keyframe", desc="synth", enabled=progress)
    if workers == 1 or scenes == 1:
        for job in jobs:
            results.append(_run_scene(job))
            bar.update(frames)
    else:
        fork = sys.platform.startswith("linux")
        if fork:
            sensors()  # built once here; forked workers inherit the sensors' ray-order tables
        ctx = mp.get_context("fork" if fork else "spawn")
        with ctx.Pool(min(workers, scenes)) as pool:
            for res in pool.imap(_run_scene, jobs):
                results.append(res)
                bar.update(frames)
    bar.close()
    seconds = time.perf_counter() - t0

    results.sort(key=lambda r: r.index)
    for split in ("train", "val"):
        infos = [info for r in results if splits[r.index] == split for info in r.infos]
        writer.write_infos(root, split, infos)
        writer.write_openocc_infos(root, split, infos)
    counts = np.sum([r.class_counts for r in results], axis=0)
    voxels = int(counts.sum())
    record = {
        "version": writer.VERSION,
        "seed": int(seed),
        "scenes": int(scenes),
        "frames": int(frames),
        "val_fraction": float(val_fraction),
        "density": float(density),
        "camera_width": int(camera_width),
        "train": [writer.scene_name(i) for i in range(scenes) if splits[i] == "train"],
        "val": [writer.scene_name(i) for i in range(scenes) if splits[i] == "val"],
        "behaviours": {writer.scene_name(r.index): r.behaviour for r in results},
    }
    writer.write_world_json(root, record)
    return {
        **record,
        "out": str(root),
        "keyframes": scenes * frames,
        "class_counts": {OCC3D_VOCAB.names[c]: int(counts[c]) for c in range(len(counts))},
        "free_fraction": float(counts[OCC3D_VOCAB.free] / max(voxels, 1)),
        "lidar_coverage": sum(r.lidar_observed for r in results) / max(voxels, 1),
        "camera_coverage": sum(r.camera_observed for r in results) / max(voxels, 1),
        "seconds": seconds,
        "keyframes_per_second": scenes * frames / max(seconds, 1e-9),
    }


__all__ = ["generate", "simulate_scene", "split_scenes", "SceneResult"]
