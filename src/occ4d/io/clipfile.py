"""Single-file clips for generated and forecast occupancy: one ``.npz`` per clip.

Entries of the file (all plain arrays, loadable with ``allow_pickle=False``):

- ``semantics``: uint8 (T, X, Y, Z), ``[x, y, z]`` per frame in the header's grid and vocabulary;
- ``trajectory``: float64 (T, 3), x, y (m) and yaw (rad) of every frame in the ego frame of
  frame ``current`` (DESIGN: trajectories are relative to the current pose);
- ``mask_camera``: uint8 (T, X, Y, Z) {0, 1}, optional;
- ``header``: a JSON string ``{"format": "occ4d-clip", "version": 1, "vocab", "grid", "hz", "current"}``;
- ``meta``: a JSON string with whatever the producer wants to record (model, seed, source tokens ...).

:func:`load_clip` validates everything and returns a :class:`ClipData`; ``ClipData.to_clip()``
gives an ``occ4d.core.Clip`` (poses rebuilt from the planar trajectory, timestamps from ``hz``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from occ4d.core.errors import DataError
from occ4d.core.frame import Clip, Frame, check_labels, check_mask
from occ4d.core.grid import GRIDS, GridSpec
from occ4d.core.trajectory import Trajectory
from occ4d.core.vocab import VOCABS, Vocabulary
from occ4d.io.atomic import save_npz
from occ4d.io.occ3d import read_npz

CLIP_FORMAT = "occ4d-clip"
CLIP_VERSION = 1


@dataclass
class ClipData:
    """A loaded clip file. ``semantics`` (T, X, Y, Z) uint8; ``mask_camera`` (T, X, Y, Z) bool or None."""

    semantics: np.ndarray
    trajectory: Trajectory
    vocab: Vocabulary
    grid: GridSpec
    hz: float = 2.0
    current: int = 0
    mask_camera: np.ndarray | None = None
    meta: dict = field(default_factory=dict)
    source: str | None = None

    def __len__(self) -> int:
        return len(self.semantics)

    def to_clip(self, scene: str = "", ref_pose: np.ndarray | None = None, start_us: int = 0) -> Clip:
        """An ``occ4d.core.Clip``: poses = ``ref_pose`` (ego-to-global of frame ``current``,
        identity if None) composed with the trajectory; timestamps ``start_us + t / hz`` seconds."""
        poses = self.trajectory.to_poses(ref_pose)
        step = round(1e6 / self.hz)
        frames = [
            Frame(
                semantics=self.semantics[t],
                vocab=self.vocab,
                grid=self.grid,
                mask_camera=None if self.mask_camera is None else self.mask_camera[t],
                ego2global=poses[t],
                timestamp=start_us + t * step,
                scene=scene,
                token=f"{Path(self.source).stem if self.source else 'clip'}-{t:03d}",
                source=self.source,
            ).validate()
            for t in range(len(self))
        ]
        return Clip(frames, self.current, self.hz).validate()


def save_clip(path: str | Path, semantics: np.ndarray, trajectory: np.ndarray | Trajectory, *,
              vocab: str = "occ3d", grid: str = "occ3d", hz: float = 2.0, current: int = 0,
              mask_camera: np.ndarray | None = None, meta: dict | None = None) -> None:
    """Write a clip atomically (validated first, so a bad clip never reaches disk)."""
    traj = trajectory.xyyaw if isinstance(trajectory, Trajectory) else np.asarray(trajectory, np.float64)
    header = {"format": CLIP_FORMAT, "version": CLIP_VERSION, "vocab": vocab, "grid": grid,
              "hz": float(hz), "current": int(current)}
    try:
        meta_json = json.dumps(meta or {})
    except (TypeError, ValueError) as e:
        raise DataError(path, f"meta must be JSON-serialisable ({e})") from e
    arrays = {"semantics": np.asarray(semantics), "trajectory": traj, "header": np.array(json.dumps(header)),
              "meta": np.array(meta_json)}
    if mask_camera is not None:
        arrays["mask_camera"] = np.asarray(mask_camera)
    data = _validate(arrays, str(path))
    out = {"semantics": data.semantics, "trajectory": data.trajectory.xyyaw,
           "header": arrays["header"], "meta": arrays["meta"]}
    if data.mask_camera is not None:
        out["mask_camera"] = data.mask_camera.astype(np.uint8)
    save_npz(path, True, **out)


def load_clip(path: str | Path) -> ClipData:
    """Read and validate a clip file; any problem is a DataError naming the file."""
    arrays = read_npz(path, ("semantics", "trajectory", "header"), ("meta", "mask_camera"))
    return _validate(arrays, str(path))


def _json(arrays: dict, key: str, source: str) -> dict:
    raw = arrays.get(key)
    if raw is None:
        return {}
    if raw.shape != () or raw.dtype.kind != "U":
        raise DataError(source, f"{key} must be a JSON string entry, got dtype {raw.dtype} shape {raw.shape}")
    try:
        value = json.loads(str(raw))
    except json.JSONDecodeError as e:
        raise DataError(source, f"{key} is not valid JSON ({e})") from e
    if not isinstance(value, dict):
        raise DataError(source, f"{key} must be a JSON object, got {type(value).__name__}")
    return value


def _validate(arrays: dict, source: str) -> ClipData:
    header = _json(arrays, "header", source)
    if header.get("format") != CLIP_FORMAT:
        raise DataError(source, f"not an {CLIP_FORMAT} file (header format {header.get('format')!r})")
    if header.get("version") != CLIP_VERSION:
        raise DataError(source, f"unsupported clip version {header.get('version')!r} "
                                f"(expected {CLIP_VERSION})")
    vocab = VOCABS.get(header.get("vocab"))
    if vocab is None:
        raise DataError(source, f"unknown vocabulary {header.get('vocab')!r}; known: {sorted(VOCABS)}")
    grid = GRIDS.get(header.get("grid"))
    if grid is None:
        raise DataError(source, f"unknown grid {header.get('grid')!r}; known: {sorted(GRIDS)}")
    sem = np.asarray(arrays["semantics"])
    if sem.ndim != 4 or sem.shape[0] < 1:
        raise DataError(source, f"semantics must have shape (T, X, Y, Z) with T >= 1, got {sem.shape}")
    if sem.dtype != np.uint8:
        raise DataError(source, f"semantics must be uint8, got dtype {sem.dtype}")
    t = sem.shape[0]
    sem = check_labels(sem, vocab, (t, *grid.shape), source, "semantics")
    traj = np.asarray(arrays["trajectory"])
    if traj.shape != (t, 3):
        raise DataError(source, f"trajectory must have shape ({t}, 3), got {traj.shape}")
    if traj.dtype.kind != "f":
        raise DataError(source, f"trajectory must be floating point, got dtype {traj.dtype}")
    if not np.all(np.isfinite(traj)):
        raise DataError(source, "trajectory contains NaN or infinite values")
    hz, current = header.get("hz"), header.get("current")
    if not isinstance(hz, (int, float)) or not hz > 0:
        raise DataError(source, f"hz must be a positive number, got {hz!r}")
    if not isinstance(current, int) or not 0 <= current < t:
        raise DataError(source, f"current must be a frame index in 0..{t - 1}, got {current!r}")
    if not np.allclose(traj[current], 0.0, atol=1e-6):
        raise DataError(source, f"trajectory row {current} (the current frame) must be (0, 0, 0), "
                                f"got {traj[current]}")
    mask = arrays.get("mask_camera")
    if mask is not None:
        mask = check_mask(mask, (t, *grid.shape), source, "mask_camera")
    trajectory = Trajectory(traj.astype(np.float64), float(hz))
    meta = _json(arrays, "meta", source)
    return ClipData(sem, trajectory, vocab, grid, float(hz), current, mask, meta, source)
