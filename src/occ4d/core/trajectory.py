"""Ego trajectories: (T, 3) rows of x, y (metres) and yaw (radians) in the current ego frame."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from occ4d.core.errors import DataError
from occ4d.core.pose import check_pose, invert_pose, yaw_pose


@dataclass(frozen=True)
class Trajectory:
    """Ego positions over time relative to a reference ("current") ego pose.

    ``xyyaw[t] = (x, y, yaw)`` of frame t in the reference frame (x forward, y left), so the
    reference frame's own row is (0, 0, 0). ``hz`` is the sampling rate (2 Hz for Occ3D).
    """

    xyyaw: np.ndarray
    hz: float = 2.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "xyyaw", np.asarray(self.xyyaw, dtype=np.float64))
        self.validate()

    def validate(self, source=None) -> None:
        if self.xyyaw.ndim != 2 or self.xyyaw.shape[1] != 3:
            raise DataError(source, f"trajectory must have shape (T, 3), got {self.xyyaw.shape}")
        if not np.all(np.isfinite(self.xyyaw)):
            raise DataError(source, "trajectory contains NaN or infinite values")
        if not self.hz > 0:
            raise DataError(source, f"trajectory rate must be positive, got {self.hz}")

    def __len__(self) -> int:
        return len(self.xyyaw)

    @classmethod
    def from_poses(cls, poses: np.ndarray, ref: int, hz: float = 2.0, source=None) -> Trajectory:
        """From ego-to-global poses (T, 4, 4): each frame expressed in frame ``ref``'s ego frame."""
        poses = np.asarray(poses, dtype=np.float64)
        ref_inv = invert_pose(check_pose(poses[ref], source, f"pose {ref}"))
        out = np.empty((len(poses), 3))
        for t, p in enumerate(poses):
            rel = ref_inv @ check_pose(p, source, f"pose {t}")
            out[t] = rel[0, 3], rel[1, 3], np.arctan2(rel[1, 0], rel[0, 0])
        out[ref] = 0.0  # inv(P) @ P leaves ~1e-17 round-off; the reference row is exactly the origin
        return cls(out, hz)

    def to_poses(self, ref_pose: np.ndarray | None = None) -> np.ndarray:
        """Planar poses (T, 4, 4); composed with ``ref_pose`` (ego-to-global) when given."""
        ref = np.eye(4) if ref_pose is None else np.asarray(ref_pose, dtype=np.float64)
        return np.stack([ref @ yaw_pose(x, y, yaw) for x, y, yaw in self.xyyaw])

    def rebased(self, ref: int) -> Trajectory:
        """The same trajectory expressed relative to its row ``ref``."""
        return Trajectory.from_poses(self.to_poses(), ref, self.hz)

    def displacements(self) -> np.ndarray:
        """Per-step (dx, dy) in each previous frame's own ego frame, shape (T-1, 2)."""
        poses = self.to_poses()
        return np.stack([(invert_pose(a) @ b)[:2, 3] for a, b in zip(poses[:-1], poses[1:])])

    @property
    def speed(self) -> np.ndarray:
        """Speed (T-1,) in m/s between consecutive rows."""
        return np.linalg.norm(np.diff(self.xyyaw[:, :2], axis=0), axis=1) * self.hz
