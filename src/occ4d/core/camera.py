"""Surround camera rigs: intrinsics and sensor-to-ego extrinsics, and point projection."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from occ4d.core.errors import DataError
from occ4d.core.pose import check_pose, invert_pose

# nuScenes / devkit camera order (PROTOCOLS §2.2).
NUSCENES_CAMERAS = (
    "CAM_FRONT", "CAM_FRONT_RIGHT", "CAM_FRONT_LEFT", "CAM_BACK", "CAM_BACK_LEFT", "CAM_BACK_RIGHT",
)


@dataclass(frozen=True)
class Camera:
    """A pinhole camera: ``intrinsic`` (3, 3), ``sensor2ego`` (4, 4), image ``width`` x ``height``.

    The camera frame is OpenCV's: x right, y down, z forward.
    """

    name: str
    intrinsic: np.ndarray
    sensor2ego: np.ndarray
    width: int
    height: int

    def validate(self, source=None) -> Camera:
        k = np.asarray(self.intrinsic, dtype=np.float64)
        if k.shape != (3, 3) or not np.all(np.isfinite(k)):
            raise DataError(source, f"{self.name}: intrinsic must be a finite (3, 3) matrix, got shape {k.shape}")
        if k[0, 0] <= 0 or k[1, 1] <= 0 or not np.allclose(k[2], (0, 0, 1)):
            raise DataError(source, f"{self.name}: intrinsic must have positive focal lengths and last row [0, 0, 1]")
        check_pose(self.sensor2ego, source, f"{self.name} sensor2ego")
        if self.width <= 0 or self.height <= 0:
            raise DataError(source, f"{self.name}: image size must be positive, got {self.width}x{self.height}")
        return self

    def project(self, points_ego: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Project ego-frame points (N, 3) to pixels (N, 2), depth (N,) and an in-image mask (N,)."""
        pts = np.asarray(points_ego, dtype=np.float64)
        ego2cam = invert_pose(np.asarray(self.sensor2ego, dtype=np.float64))
        cam = pts @ ego2cam[:3, :3].T + ego2cam[:3, 3]
        depth = cam[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            uv = (cam @ np.asarray(self.intrinsic, dtype=np.float64).T)[:, :2] / depth[:, None]
        inside = (depth > 1e-3) & (uv[:, 0] >= 0) & (uv[:, 0] < self.width) & (uv[:, 1] >= 0) & (uv[:, 1] < self.height)
        return uv, depth, inside

    def scaled(self, sx: float, sy: float, crop_x: float = 0.0, crop_y: float = 0.0,
               width: int | None = None, height: int | None = None) -> Camera:
        """The camera after resizing the image by (sx, sy) and then cropping at (crop_x, crop_y)."""
        k = np.asarray(self.intrinsic, dtype=np.float64).copy()
        k[0] *= sx
        k[1] *= sy
        k[0, 2] -= crop_x
        k[1, 2] -= crop_y
        return Camera(self.name, k, self.sensor2ego, width or round(self.width * sx), height or round(self.height * sy))


@dataclass(frozen=True)
class CameraRig:
    """The cameras of one keyframe, in a fixed order (nuScenes' by default)."""

    cameras: tuple[Camera, ...]

    def validate(self, source=None) -> CameraRig:
        if not self.cameras:
            raise DataError(source, "a camera rig needs at least one camera")
        names = [c.name for c in self.cameras]
        if len(set(names)) != len(names):
            raise DataError(source, f"camera names repeat: {names}")
        for c in self.cameras:
            c.validate(source)
        return self

    def __len__(self) -> int:
        return len(self.cameras)

    def __getitem__(self, name: str) -> Camera:
        for c in self.cameras:
            if c.name == name:
                return c
        raise KeyError(name)

    @property
    def intrinsics(self) -> np.ndarray:
        return np.stack([c.intrinsic for c in self.cameras]).astype(np.float64)

    @property
    def sensor2ego(self) -> np.ndarray:
        return np.stack([c.sensor2ego for c in self.cameras]).astype(np.float64)
