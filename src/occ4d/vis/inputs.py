"""What ``occ4d render`` can show, read into one shape: a :class:`Sequence` of frames.

An input is any of
- a labels file (Occ3D ``labels.npz`` or another format's frame file occ4d reads),
- a prediction file (``<token>.npz`` with ``arr_0`` or ``pred``, PROTOCOLS §2.3),
- a clip file (``occ4d.io.clipfile``: generated or forecast clips with their trajectory),
- a token folder holding ``labels.npz``,
- a prediction folder (``<token>.npz`` files),
- a folder of clip files (``occ4d forecast --save`` writes ``pred/`` and ``gt/``, ``occ4d generate``
  writes ``clips/``): one clip is read, named by its file stem,
- an Occ3D data folder (info file or ``gts/<scene>/<token>/labels.npz``) or one scene folder of it:
  one scene is read, in time order, with its ego trajectory from the poses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from occ4d.core.errors import DataError
from occ4d.core.frame import check_labels
from occ4d.core.grid import OCC3D, GridSpec
from occ4d.core.trajectory import Trajectory
from occ4d.core.vocab import OCC3D_VOCAB, Vocabulary


@dataclass
class Sequence:
    """T frames to show: ``semantics`` (T, X, Y, Z) uint8, masks (T, X, Y, Z) bool or None.

    ``trajectory`` (T, 3) is relative to frame ``current`` (DESIGN), or None when unknown.
    """

    semantics: np.ndarray
    vocab: Vocabulary = OCC3D_VOCAB
    grid: GridSpec = OCC3D
    mask_camera: np.ndarray | None = None
    trajectory: np.ndarray | None = None
    hz: float = 2.0
    current: int = 0
    tokens: list[str] = field(default_factory=list)
    name: str = ""
    source: str = ""  # the file or folder it was read from, for error messages

    def __len__(self) -> int:
        return len(self.semantics)

    def select(self, indices: list[int]) -> Sequence:
        """A sub-sequence; the trajectory is rebased onto the first kept frame if ``current`` is dropped."""
        idx = list(indices)
        current = idx.index(self.current) if self.current in idx else 0
        traj = None
        if self.trajectory is not None:
            traj = Trajectory(self.trajectory[idx], self.hz).rebased(current).xyyaw
        return Sequence(self.semantics[idx], self.vocab, self.grid,
                        None if self.mask_camera is None else self.mask_camera[idx], traj, self.hz, current,
                        [self.tokens[i] for i in idx] if self.tokens else [], self.name, self.source)


def _is_clip_file(path: Path) -> bool:
    try:
        with np.load(path, allow_pickle=False) as z:
            return "header" in z.files and "trajectory" in z.files
    except Exception:  # unreadable files are reported by the reader that follows
        return False


def _from_clip_file(path: Path) -> Sequence:
    from occ4d.io.clipfile import load_clip

    c = load_clip(path)
    return Sequence(c.semantics, c.vocab, c.grid, c.mask_camera, c.trajectory.xyyaw, c.hz, c.current,
                    [f"{path.stem}-{t:03d}" for t in range(len(c))], path.stem)


def _single_file(path: Path) -> Sequence:
    from occ4d.io.occ3d import read_npz

    if path.suffix == ".npz" and _is_clip_file(path):
        return _from_clip_file(path)
    keys = set(read_npz(path, (), ("semantics", "arr_0", "pred")))
    if "semantics" in keys or path.suffix == ".npy":
        from occ4d.io.formats import detect_format, read_frame

        frame = read_frame(path, detect_format(path))
        token = frame.token or (path.parent.name if path.name == "labels.npz" else path.stem)
        mask = None if frame.mask_camera is None else frame.mask_camera[None]
        return Sequence(frame.semantics[None], frame.vocab, frame.grid, mask, None, tokens=[token],
                        name=token)
    return Sequence(_read_prediction(path)[None], tokens=[path.stem], name=path.stem)


def _read_prediction(path: Path) -> np.ndarray:
    from occ4d.io.predictions import read_prediction

    labels, _ = read_prediction(path, OCC3D.shape)
    return check_labels(labels, OCC3D_VOCAB, OCC3D.shape, path, "prediction")


def _clip_folder(path: Path, name: str | None) -> Sequence | None:
    """The clip ``name`` (a file stem; default: the first) of a folder of clip files, else None."""
    files = sorted(path.glob("*.npz"))
    if not files or not _is_clip_file(files[0]):
        return None
    clips = {p.stem: p for p in files if _is_clip_file(p)}
    name = name if name is not None else next(iter(clips))
    if name not in clips:
        raise DataError(path, f"clip {name!r} not found; clips here: {', '.join(list(clips)[:10])}"
                              + (" ..." if len(clips) > 10 else ""))
    return _from_clip_file(clips[name])


def _prediction_folder(path: Path, order: list[str] | None) -> Sequence | None:
    from occ4d.io.predictions import index_predictions

    files = index_predictions(path)
    if not files or any(p.name == "labels.npz" for p in files.values()):
        return None  # a labels tree is read as a dataset (with poses), not as bare predictions
    tokens = [t for t in order if t in files] if order else sorted(files)
    if order and not tokens:
        raise DataError(path, "none of the ground truth's tokens has a prediction file here")
    sem = np.stack([_read_prediction(files[t]) for t in tokens])
    return Sequence(sem, tokens=tokens, name=path.name)


def _dataset_scene(path: Path, scene: str | None) -> Sequence:
    from occ4d.data.index import group_by_scene, load_frame, load_index

    scenes = group_by_scene(load_index(path))
    if scene is None:
        scene = next(iter(scenes))
    if scene not in scenes:
        raise DataError(path, f"scene {scene!r} not found; scenes here: {', '.join(list(scenes)[:10])}"
                              + (" ..." if len(scenes) > 10 else ""))
    frames = [load_frame(r) for r in scenes[scene]]
    first = frames[0]
    masks = None if any(f.mask_camera is None for f in frames) else np.stack([f.mask_camera for f in frames])
    traj = None
    poses = np.stack([f.ego2global for f in frames])
    if not np.allclose(poses, np.eye(4)):  # a folder scan has identity poses: no real trajectory
        traj = Trajectory.from_poses(poses, 0, 2.0, first.source).xyyaw
    return Sequence(np.stack([f.semantics for f in frames]), first.vocab, first.grid, masks, traj, 2.0, 0,
                    [f.token for f in frames], scene)


def load_sequence(path: str | Path, scene: str | None = None, order: list[str] | None = None) -> Sequence:
    """Read any supported input (module docstring) as a Sequence.

    ``scene`` picks the scene of a dataset folder or the clip of a clip folder (default: the first
    one); ``order`` lists the tokens to read from a prediction folder, in that order (e.g. the
    ground truth's).
    """
    path = Path(path)
    seq = _load(path, scene, order)
    seq.source = str(path)
    return seq


def _load(path: Path, scene: str | None, order: list[str] | None) -> Sequence:
    if path.is_file():
        return _single_file(path)
    if not path.is_dir():
        raise DataError(path, "no such file or folder")
    if (path / "labels.npz").is_file():
        return _single_file(path / "labels.npz")
    clip = _clip_folder(path, scene)
    if clip is not None:
        return clip
    preds = _prediction_folder(path, order)
    if preds is not None:
        return preds
    return _dataset_scene(path, scene)


def pair(pred: Sequence, gt: Sequence) -> tuple[Sequence, Sequence]:
    """Align a prediction with its ground truth: by token when they share tokens, else by position."""
    if pred.grid != gt.grid or pred.semantics.shape[1:] != gt.semantics.shape[1:]:
        raise DataError(pred.source or pred.name, f"prediction grid {pred.semantics.shape[1:]} differs from "
                                                  f"the ground truth's {gt.semantics.shape[1:]} "
                                                  f"({gt.source})")
    shared = [t for t in gt.tokens if t in set(pred.tokens)]
    if shared and (len(shared) < len(gt) or len(shared) < len(pred)):
        gt = gt.select([gt.tokens.index(t) for t in shared])
        pred = pred.select([pred.tokens.index(t) for t in shared])
    elif shared:
        pred = pred.select([pred.tokens.index(t) for t in gt.tokens])
    elif len(pred) != len(gt):
        raise DataError(pred.source or pred.name, f"prediction has {len(pred)} frames and the ground truth "
                                                  f"{gt.source} has {len(gt)}, and they share no tokens to "
                                                  "pair them by")
    if pred.trajectory is None and gt.trajectory is not None:
        pred.trajectory, pred.current = gt.trajectory, gt.current
    return pred, gt
