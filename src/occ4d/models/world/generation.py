"""Generating occupancy clips along an ego trajectory, and writing them as a dataset.

:func:`generate_clips` is ``occ4d generate`` without the printing. A clip comes either from a
generator run (all frames drawn along the trajectory) or, with an opening, from a forecaster run
or baseline continuing ``past`` opening frames along it (:mod:`occ4d.models.world.rollout`). The
trajectory (:func:`load_trajectory`) is ``(T, 3)`` float64, x, y in metres and yaw in radians
relative to its first row, at 2 Hz: a prompt, a JSON file or a real scene's ego poses. Each clip
is written in the Occ3D layout with devkit infos and as one clip file (:func:`write_clip`), with
``summary.json`` holding the seconds per clip and the controllability error (metres / degrees).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path


def load_trajectory(spec: str, frames: int, scene: str = "", start: int = 0) -> tuple:
    """(T, 3) float64 trajectory relative to its first row, and a short name for the clips."""
    import json

    import numpy as np

    from occ4d.core.errors import DataError
    from occ4d.core.trajectory import Trajectory
    from occ4d.models.world.prompts import PROMPTS, prompt_trajectory

    if spec in PROMPTS:
        return prompt_trajectory(spec, frames), spec
    path = Path(spec)
    if not path.exists():
        raise DataError(path, f"not a trajectory prompt ({', '.join(PROMPTS)}) and no such file")
    if path.suffix == ".json":
        try:
            obj = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise DataError(path, f"invalid JSON ({e})") from e
        rows = obj.get("trajectory") if isinstance(obj, dict) else obj
        try:
            traj = Trajectory(
                np.asarray(rows, dtype=np.float64),
                float(obj.get("hz", 2.0)) if isinstance(obj, dict) else 2.0,
            )
        except DataError as e:  # the rows parsed but are not a trajectory (NaN, wrong shape, ...)
            raise DataError(path, e.problem) from e
        except (TypeError, ValueError) as e:
            raise DataError(path, f"trajectory must be a list of [x, y, yaw] rows ({e})") from e
        if len(traj.xyyaw) < 2:
            raise DataError(path, f"trajectory has {len(traj.xyyaw)} row(s); a prompt needs at least 2 "
                            "(the ego's motion from the first to the second frame)")
        return traj.rebased(0).xyyaw, path.stem
    from occ4d.data.trajectories import ego_trajectory

    name, recs = scene_records(path, scene, start, frames, need=1)
    return ego_trajectory(recs, 0).xyyaw, f"{name}-{start}"


def scene_records(path: Path, scene: str, start: int, count: int, *, need: int) -> tuple:
    """(scene name, up to ``count`` keyframe records from ``start``) of a dataset; at least ``need``."""
    from occ4d.core.errors import DataError
    from occ4d.data.index import group_by_scene, load_index

    scenes = group_by_scene(load_index(path))
    if not scenes:
        raise DataError(path, "no keyframes found")
    name = scene or next(iter(scenes))
    if name not in scenes:
        raise DataError(path, f"no scene {name!r}; scenes: {sorted(scenes)[:10]}")
    recs = scenes[name][start : start + count]
    if len(recs) < need:
        have = len(scenes[name])
        raise DataError(path, f"scene {name} has {have} keyframes, fewer than {need} from keyframe {start}")
    return name, recs


def _is_run(spec: str) -> bool:
    return (Path(spec) / "config.json").is_file()


def load_opening(spec: str, past: int, scene: str = "", start: int = 0):
    """(past, X, Y, Z) uint8 labels, (past, 3) poses and the scene of ``past`` keyframes of a dataset."""
    import numpy as np
    import torch

    from occ4d.core.errors import DataError
    from occ4d.core.grid import OCC3D
    from occ4d.data.index import load_frame
    from occ4d.data.trajectories import ego_trajectory

    path = Path(spec)
    if not path.exists():
        raise DataError(path, "no such opening: give a generator run or a dataset folder / info file")
    name, recs = scene_records(path, scene, start, past, need=past)
    sems = []
    for r in recs:
        sem = load_frame(r).semantics
        if tuple(sem.shape) != tuple(OCC3D.shape):
            want = OCC3D.shape
            raise DataError(r.path, f"opening frames must be on the Occ3D grid {want}, not {sem.shape}")
        sems.append(sem)
    return torch.from_numpy(np.stack(sems).astype(np.uint8)), ego_trajectory(recs, 0).xyyaw, name


def _refuse_blocked(traj: str, current, prompt, opening: str) -> None:
    """SystemExit naming where ``prompt`` (relative to the opening's last frame) hits an obstacle."""
    from occ4d.models.world.prompts import prompt_obstacle

    rel = prompt - prompt[:1]  # the prompt starts at the ego's pose in the last opening frame
    hit = prompt_obstacle(current, rel)
    if hit is not None:
        k, what, x, y = hit
        raise SystemExit(
            f"--traj {traj} drives the ego into {what} at prompt step {k} (x {x:.1f} m, y {y:.1f} m in the "
            f"last frame of the opening {opening}): refused; choose another prompt or opening, or pass "
            "--allow-collision"
        )


def load_clip_model(ckpt: str, device: str):
    """("generator", model, None, None) or ("rollout", forecaster, past, future) for ``--ckpt``."""
    from occ4d.models.world.forecasting import BASELINES, load_forecaster
    from occ4d.train.registry import load_model

    if ckpt in BASELINES:
        model, past, future, _ = load_forecaster(ckpt, device=device)
        return "rollout", model, past, future
    model, cfg, _ = load_model(ckpt, device=device)
    kind = getattr(cfg.model, "kind", "")
    if cfg.model_name == "worldmodel" and kind == "generator":
        return "generator", model, None, None
    if cfg.model_name == "worldmodel" and kind in ("forecaster", "refiner", "autoregressive"):
        return "rollout", model, cfg.model.past, cfg.model.future
    raise SystemExit(
        f"{ckpt} is not a generator or forecaster run (it is a {cfg.model_name} {kind}); train one with "
        f"--preset tiny-generator, or pass a forecaster with --opening"
    )


def write_clip(out: Path, clip_name: str, semantics, traj, infos: list) -> None:
    """One generated clip: Occ3D labels per frame, a clip file, and its devkit infos (appended)."""
    import numpy as np

    from occ4d.core.frame import Frame
    from occ4d.core.trajectory import Trajectory
    from occ4d.io.clipfile import save_clip
    from occ4d.io.infos import devkit_info
    from occ4d.io.occ3d import save_labels

    poses = Trajectory(traj[: len(semantics)]).to_poses()
    tokens = [f"{clip_name}-{t:03d}" for t in range(len(semantics))]
    for t, sem in enumerate(semantics):
        rel = Path("gts") / clip_name / tokens[t] / "labels.npz"
        save_labels(out / rel, Frame(semantics=sem, ego2global=poses[t]))
        infos.append(
            devkit_info(
                tokens[t],
                clip_name,
                t,
                1_000_000 + 500_000 * t,
                poses[t],
                str(rel),
                prev=tokens[t - 1] if t else "",
                next=tokens[t + 1] if t + 1 < len(semantics) else "",
                scene_name=clip_name,
            )
        )
    save_clip(out / "clips" / f"{clip_name}.npz", np.asarray(semantics), traj[: len(semantics)])


def generate_clips(
    ckpt: str,
    *,
    traj: str = "straight",
    frames: int = 8,
    samples: int = 1,
    seed: int = 0,
    out: str = "generated",
    sampler: str = "ddim",
    steps: int = 50,
    guidance: float = 1.0,
    scene: str = "",
    start: int = 0,
    opening: str = "",
    opening_scene: str = "",
    opening_start: int = 0,
    control: bool = True,
    device: str = "cpu",
    on_clip: Callable[[dict], None] | None = None,
    allow_collision: bool = False,
) -> dict:
    """Draw ``samples`` clips of ``frames`` frames into ``out`` and return the summary it writes.

    The arguments are ``occ4d generate``'s; ``on_clip`` is called with each clip's row
    (``clip``, ``seconds``, and with ``control`` ``trans_err_m`` / ``yaw_err_deg``) once it is
    written. A prompt that would drive the ego through a static obstacle of a real opening's last
    frame is refused (:func:`~occ4d.models.world.prompts.prompt_obstacle`) unless ``allow_collision``.
    """
    import numpy as np
    import torch

    from occ4d.io.atomic import write_json
    from occ4d.io.infos import save_devkit_infos
    from occ4d.metrics.control import ControlMetric
    from occ4d.models.world.embed import extend_traj
    from occ4d.models.world.rollout import compose_traj, rollout

    mode, model, past, future = load_clip_model(ckpt, device)
    if mode == "rollout" and not opening:
        raise SystemExit(f"{ckpt} forecasts: give --opening (a generator run or a dataset) to open its clips")
    if mode == "generator" and opening:
        raise SystemExit(f"{ckpt} is a generator: --opening is for forecaster runs and baselines")
    if frames < 1 or samples < 1:
        raise SystemExit("--frames and --samples must be positive")
    if mode == "rollout" and frames <= past:
        raise SystemExit(f"--frames must exceed the forecaster's {past} opening frames")
    opener = real = None
    if mode == "rollout" and _is_run(opening):
        from occ4d.train.registry import load_model

        opener, ocfg, _ = load_model(opening, device=device)
        kind = getattr(ocfg.model, "kind", "")
        if ocfg.model_name != "worldmodel" or kind != "generator":
            what = f"{ocfg.model_name} {kind}".strip()
            raise SystemExit(f"--opening {opening} is a {what} run, not a generator run")
    if mode == "rollout" and opener is None:
        real = load_opening(opening, past, opening_scene, opening_start)
        path, name = load_trajectory(traj, frames - past + 1, scene, start)
        prompt = extend_traj(torch.as_tensor(path)[None], frames - past + 1)[0].numpy()
        if not allow_collision:
            _refuse_blocked(traj, real[0][-1].numpy(), prompt, opening)
        path = compose_traj(real[1], prompt)
        name = f"{real[2]}-{opening_start}-{name}"
    else:
        path, name = load_trajectory(traj, frames, scene, start)
    full = extend_traj(torch.as_tensor(path)[None].double(), frames)[0].numpy()[:frames]
    out_dir = Path(out)
    infos: list = []
    rows = []
    sampling = {"sampler": sampler, "steps": steps, "guidance_scale": guidance}
    for k in range(samples):
        g = torch.Generator(device).manual_seed(seed + k)
        tr = torch.as_tensor(path, dtype=torch.float32, device=device)[None]
        t0 = time.perf_counter()
        if mode == "generator":
            clip = model.generate(tr, frames=frames, generator=g, progress=False, **sampling)[0].cpu()
        else:
            if opener is not None:
                first = opener.generate(tr, frames=past, generator=g, progress=False, **sampling)
            else:
                first = real[0][None].to(device)
            clip = rollout(model, first, tr, frames, past=past, future=future, generator=g, **sampling)
            clip = clip[0].cpu()
        seconds = time.perf_counter() - t0
        clip_name = f"{name}-s{seed + k}"
        write_clip(out_dir, clip_name, clip.numpy(), full, infos)
        row = {"clip": clip_name, "seconds": seconds}
        first_steered = 0 if mode == "generator" else past - 1
        if control and frames - first_steered > 1:
            m = ControlMetric()
            m.update(clip[first_steered:], full[first_steered:])
            row.update(m.compute())
            row["control_from_frame"] = first_steered
        rows.append(row)
        if on_clip is not None:
            on_clip(row)
    save_devkit_infos(out_dir / "occ4d_infos_temporal_generated.pkl", infos, "occ4d-generated")
    summary = {
        "ckpt": ckpt,
        "traj": traj,
        "frames": frames,
        "samples": samples,
        "seed": seed,
        "sampler": sampler,
        "steps": steps,
        "guidance": guidance,
        "opening": opening,
        "opening_scene": opening_scene,
        "opening_start": opening_start,
        "trajectory": full.tolist(),
        "clips": rows,
        "seconds_per_clip": float(np.mean([r["seconds"] for r in rows])),
    }
    write_json(out_dir / "summary.json", summary)
    return summary
