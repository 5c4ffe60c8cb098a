"""Frame and Clip: one labelled occupancy grid, and a time-ordered run of them from one scene."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from occ4d.core.errors import DataError
from occ4d.core.grid import OCC3D, GridSpec
from occ4d.core.pose import check_pose
from occ4d.core.trajectory import Trajectory
from occ4d.core.vocab import IGNORE, OCC3D_VOCAB, Vocabulary


def check_labels(labels, vocab: Vocabulary, shape, source=None, name: str = "semantics",
                 allow_ignore: bool = False) -> np.ndarray:
    """Check a label grid's shape, dtype and range; return it as uint8.

    Integer dtypes are accepted (OpenOcc v2 ships int32 semantics) when every value fits; floats
    are refused because a float label grid is almost always a logits or probability mistake.
    """
    labels = np.asarray(labels)
    if tuple(labels.shape) != tuple(shape):
        raise DataError(source, f"{name} must have shape {tuple(shape)}, got {tuple(labels.shape)}")
    if labels.dtype.kind not in "ui":
        raise DataError(source, f"{name} must be an integer array, got dtype {labels.dtype}")
    if labels.size:
        lo, hi = int(labels.min()), int(labels.max())
        valid_hi = vocab.num_classes - 1
        if lo < 0 or (hi > valid_hi and not (allow_ignore and hi == IGNORE)):
            bad = labels[(labels < 0) | ((labels > valid_hi) & ~(allow_ignore & (labels == IGNORE)))]
            raise DataError(
                source,
                f"{name} has class id {int(bad.flat[0])} outside 0..{valid_hi} "
                f"({bad.size} voxels; vocabulary {vocab.name})",
            )
    return labels.astype(np.uint8, copy=False)


def check_mask(mask, shape, source=None, name: str = "mask") -> np.ndarray:
    """Return a visibility mask as bool. Stored masks are uint8 {0, 1}; anything else is refused."""
    mask = np.asarray(mask)
    if tuple(mask.shape) != tuple(shape):
        raise DataError(source, f"{name} must have shape {tuple(shape)}, got {tuple(mask.shape)}")
    if mask.dtype != np.bool_:
        if mask.dtype.kind not in "uib" or (mask.size and (mask.min() < 0 or mask.max() > 1)):
            raise DataError(source, f"{name} must hold only 0 and 1 (dtype {mask.dtype})")
        mask = mask.astype(bool)
    return mask


@dataclass
class Frame:
    """One keyframe's occupancy: semantics uint8 ``[x, y, z]`` in ``grid``'s frame.

    Masks are bool (True = observed); ``flow`` is (X, Y, Z, 2) float32 m/s; ``ego2global`` is a
    4x4 float64 pose; ``timestamp`` is in microseconds as in nuScenes.
    """

    semantics: np.ndarray
    vocab: Vocabulary = OCC3D_VOCAB
    grid: GridSpec = OCC3D
    mask_camera: np.ndarray | None = None
    mask_lidar: np.ndarray | None = None
    flow: np.ndarray | None = None
    ego2global: np.ndarray = field(default_factory=lambda: np.eye(4))
    timestamp: int = 0
    scene: str = ""
    token: str = ""
    source: str | None = None

    def validate(self, allow_ignore: bool = False) -> Frame:
        """Check every field; coerce stored dtypes (uint8 masks to bool). Returns self."""
        src = self.source
        self.semantics = check_labels(self.semantics, self.vocab, self.grid.shape, src, "semantics", allow_ignore)
        if self.mask_camera is not None:
            self.mask_camera = check_mask(self.mask_camera, self.grid.shape, src, "mask_camera")
        if self.mask_lidar is not None:
            self.mask_lidar = check_mask(self.mask_lidar, self.grid.shape, src, "mask_lidar")
        if self.flow is not None:
            flow = np.asarray(self.flow)
            if flow.shape != (*self.grid.shape, 2):
                raise DataError(src, f"flow must have shape {(*self.grid.shape, 2)}, got {flow.shape}")
            if flow.dtype.kind != "f":
                raise DataError(src, f"flow must be floating point, got dtype {flow.dtype}")
            if not np.all(np.isfinite(flow)):
                raise DataError(src, "flow contains NaN or infinite values")
            self.flow = flow.astype(np.float32, copy=False)
        self.ego2global = check_pose(self.ego2global, src, "ego2global")
        return self

    @property
    def occupied(self) -> np.ndarray:
        """Bool grid: True where the voxel is not free."""
        return self.semantics != self.vocab.free


@dataclass
class Clip:
    """T frames of one scene in time order; ``current`` is the index of the present frame.

    Frames before and at ``current`` are the past (history); frames after it are the future.
    """

    frames: list[Frame]
    current: int = 0
    hz: float = 2.0

    def validate(self) -> Clip:
        if not self.frames:
            raise DataError(None, "a clip needs at least one frame")
        if not 0 <= self.current < len(self.frames):
            raise DataError(self.frames[0].source, f"current index {self.current} outside 0..{len(self.frames) - 1}")
        first = self.frames[0]
        for f in self.frames:
            if f.scene != first.scene:
                raise DataError(f.source, f"clip crosses scenes: {first.scene!r} and {f.scene!r}")
            if f.grid != first.grid or f.vocab != first.vocab:
                raise DataError(f.source, "all frames of a clip must share grid and vocabulary")
        ts = [f.timestamp for f in self.frames]
        if any(b <= a for a, b in zip(ts[:-1], ts[1:])):
            raise DataError(first.source, f"clip timestamps are not strictly increasing: {ts}")
        return self

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def semantics(self) -> np.ndarray:
        """(T, X, Y, Z) uint8."""
        return np.stack([f.semantics for f in self.frames])

    @property
    def poses(self) -> np.ndarray:
        """(T, 4, 4) float64 ego-to-global."""
        return np.stack([f.ego2global for f in self.frames])

    @property
    def trajectory(self) -> Trajectory:
        """Every frame's ego pose in the current frame's ego frame."""
        return Trajectory.from_poses(self.poses, self.current, self.hz, self.frames[0].source)

    def stacked_mask(self, name: str) -> np.ndarray | None:
        """(T, X, Y, Z) bool of ``mask_camera`` or ``mask_lidar`` if every frame has it."""
        masks = [getattr(f, name) for f in self.frames]
        return None if any(m is None for m in masks) else np.stack(masks)
