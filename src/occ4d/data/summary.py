"""Dataset summaries: scenes, frames, class histogram, mask coverage, ego motion, behaviours.

``summarize(records)`` reads every frame once; ``format_summary`` renders the plain-text report
that ``occ4d info`` prints (and the demo reuses).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from occ4d.core.errors import DataError
from occ4d.core.frame import Frame
from occ4d.core.vocab import IGNORE, Vocabulary
from occ4d.data.index import FrameRecord, group_by_scene, load_frame

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SceneMotion:
    """Ego motion over one scene, from its poses and timestamps."""

    scene: str
    frames: int
    duration_s: float
    path_length_m: float
    mean_speed: float  # m/s
    max_speed: float  # m/s
    mean_abs_yaw_rate: float  # rad/s


@dataclass
class DatasetSummary:
    source: str
    frames: int  # frames read successfully
    scenes: int
    vocab: Vocabulary | None
    class_counts: np.ndarray  # (num_classes + 1,): per class, then IGNORE
    voxels: int
    mask_counts: dict[str, tuple[int, int]]  # name -> (observed voxels, voxels of frames that have it)
    motion: list[SceneMotion]
    behaviours: Counter
    splits: Counter = field(default_factory=Counter)  # frames per split (from the info file names)
    bad: list[str] = field(default_factory=list)
    scanned: bool = False


def scene_motion(records: Sequence[FrameRecord]) -> SceneMotion:
    """Speed, yaw rate and path length of one scene's time-ordered records."""
    xy = np.stack([r.ego2global[:2, 3] for r in records])
    yaw = np.array([np.arctan2(r.ego2global[1, 0], r.ego2global[0, 0]) for r in records])
    t = np.array([r.timestamp for r in records], dtype=np.float64) * 1e-6
    if len(records) < 2:
        return SceneMotion(records[0].scene, len(records), 0.0, 0.0, 0.0, 0.0, 0.0)
    dt = np.diff(t)
    step = np.linalg.norm(np.diff(xy, axis=0), axis=1)
    dyaw = np.angle(np.exp(1j * np.diff(yaw)))  # wrapped to (-pi, pi]
    speed, yaw_rate = step / dt, np.abs(dyaw) / dt
    return SceneMotion(records[0].scene, len(records), float(t[-1] - t[0]), float(step.sum()),
                       float(step.sum() / (t[-1] - t[0])), float(speed.max()), float(yaw_rate.mean()))


def class_histogram(frames: Iterable[Frame], vocab: Vocabulary) -> np.ndarray:
    """Voxel counts per class id of ``vocab``, plus a last entry for IGNORE."""
    counts = np.zeros(vocab.num_classes + 1, np.int64)
    for f in frames:
        c = np.bincount(f.semantics.reshape(-1), minlength=256)
        counts[: vocab.num_classes] += c[: vocab.num_classes]
        counts[-1] += c[IGNORE]
    return counts


def summarize(records: Sequence[FrameRecord], source: str = "", skip_bad: bool = False,
              bad: Iterable[str] = (), progress: bool = False) -> DatasetSummary:
    """Read every record's frame once and gather the statistics (bad frames raise unless ``skip_bad``)."""
    vocab, counts, voxels, read = None, None, 0, 0
    masks = {"mask_camera": [0, 0], "mask_lidar": [0, 0]}
    bad = list(bad)
    iterator = records
    if progress:
        from occ4d.core.progress import Progress

        iterator = Progress(records, desc="reading frames", unit="frame")
    for rec in iterator:
        try:
            frame = load_frame(rec)
            if vocab is not None and frame.vocab != vocab:
                raise DataError(rec.path, f"vocabulary {frame.vocab.name} differs from the first "
                                          f"frame's {vocab.name}")
        except DataError as e:
            if not skip_bad:
                raise
            log.warning("skipped: %s", e)
            bad.append(str(e))
            continue
        read += 1
        if vocab is None:
            vocab, counts = frame.vocab, np.zeros(frame.vocab.num_classes + 1, np.int64)
        counts += class_histogram([frame], vocab)
        voxels += frame.semantics.size
        for name, acc in masks.items():
            m = getattr(frame, name)
            if m is not None:
                acc[0] += int(m.sum())
                acc[1] += m.size
    groups = group_by_scene(records)
    behaviours = Counter(str(r.extras["behaviour"]) for r in records if "behaviour" in r.extras)
    return DatasetSummary(
        source=source, frames=read, scenes=len(groups),
        vocab=vocab, class_counts=counts if counts is not None else np.zeros(1, np.int64), voxels=voxels,
        mask_counts={k: (v[0], v[1]) for k, v in masks.items()},
        motion=[scene_motion(g) for g in groups.values()], behaviours=behaviours, bad=bad,
        splits=Counter(str(r.extras["split"]) for r in records if "split" in r.extras),
        scanned=any(r.extras.get("scanned") for r in records),
    )


def format_summary(s: DatasetSummary) -> str:
    """The plain-text report of ``occ4d info``."""
    lines = [f"dataset: {s.source}", f"scenes: {s.scenes}   frames read: {s.frames}"]
    if s.splits:
        lines.append("splits: " + ", ".join(f"{k} {n} frames" for k, n in sorted(s.splits.items())))
    if s.scanned:
        lines.append("no info file: frames found by scanning gts/; poses are identity, motion is meaningless")
    if s.bad:
        lines.append(f"bad frames skipped: {len(s.bad)}")
    if s.vocab is not None and s.voxels:
        lines.append(f"\nclass histogram ({s.vocab.name}, % of {s.voxels:,} voxels):")
        names = [*s.vocab.names, "ignore (255)"]
        for i, (name, n) in enumerate(zip(names, s.class_counts, strict=True)):
            if i == s.vocab.num_classes and n == 0:
                continue
            cid = i if i < s.vocab.num_classes else IGNORE
            lines.append(f"  {cid:>3} {name:<22} {100 * n / s.voxels:8.3f}%  {int(n):>14,}")
    lines.append("\nmask coverage (% of voxels marked observed):")
    for name, (obs, total) in s.mask_counts.items():
        lines.append(f"  {name:<12} " + (f"{100 * obs / total:7.2f}%" if total else "   absent"))
    moving = [m for m in s.motion if m.frames > 1]
    lines.append(f"\nego motion over {len(moving)} scene(s) with 2+ frames:")
    if moving:
        def row(label, values, unit):
            v = np.array(values)
            return f"  {label:<22} min {v.min():8.2f}  mean {v.mean():8.2f}  max {v.max():8.2f} {unit}"

        lines.append(row("duration", [m.duration_s for m in moving], "s"))
        lines.append(row("path length", [m.path_length_m for m in moving], "m"))
        lines.append(row("mean speed", [m.mean_speed for m in moving], "m/s"))
        lines.append(row("max speed", [m.max_speed for m in moving], "m/s"))
        lines.append(row("mean |yaw rate|", [m.mean_abs_yaw_rate for m in moving], "rad/s"))
    if s.behaviours:
        lines.append("\nbehaviours (frames):")
        for name, n in sorted(s.behaviours.items()):
            lines.append(f"  {name:<22} {n}")
    return "\n".join(lines)
