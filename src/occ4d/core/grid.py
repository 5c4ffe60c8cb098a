"""Voxel grid specifications: extent, voxel size and shape of every supported format.

A grid is indexed ``[x, y, z]``; voxel ``(i, j, k)`` has its centre at
``min + (index + 0.5) * voxel_size`` (PROTOCOLS §1.1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GridSpec:
    """An axis-aligned voxel grid. ``frame`` names the coordinate frame ("ego" or "lidar")."""

    name: str
    shape: tuple[int, int, int]
    voxel_size: tuple[float, float, float]
    range_min: tuple[float, float, float]
    frame: str = "ego"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        if len(self.shape) != 3 or any(int(s) <= 0 for s in self.shape):
            raise ValueError(f"grid {self.name}: shape must be three positive ints, got {self.shape}")
        if len(self.voxel_size) != 3 or any(v <= 0 for v in self.voxel_size):
            raise ValueError(f"grid {self.name}: voxel sizes must be positive, got {self.voxel_size}")
        if len(self.range_min) != 3:
            raise ValueError(f"grid {self.name}: range_min must have 3 values, got {self.range_min}")
        if self.frame not in ("ego", "lidar"):
            raise ValueError(f"grid {self.name}: frame must be 'ego' or 'lidar', got {self.frame!r}")

    @property
    def range_max(self) -> tuple[float, float, float]:
        return tuple(m + n * v for m, n, v in zip(self.range_min, self.shape, self.voxel_size))  # type: ignore[return-value]

    @property
    def num_voxels(self) -> int:
        return int(np.prod(self.shape))

    def axis_centres(self, axis: int) -> np.ndarray:
        """Centres along one axis, float64, metres."""
        n, v, m = self.shape[axis], self.voxel_size[axis], self.range_min[axis]
        return m + v * (np.arange(n, dtype=np.float64) + 0.5)

    def voxel_centres(self, index: np.ndarray) -> np.ndarray:
        """Centres (N, 3) float64 of integer voxel indices (N, 3) given as [x, y, z]."""
        index = np.asarray(index, dtype=np.float64)
        return np.asarray(self.range_min) + (index + 0.5) * np.asarray(self.voxel_size)

    def point_to_index(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Map points (N, 3) in metres to voxel indices (N, 3) int64 and an in-grid mask (N,).

        Uses floor((p - min) / size); a point is inside when 0 <= index < shape (PROTOCOLS §1.1).
        """
        points = np.asarray(points, dtype=np.float64)
        idx = np.floor((points - np.asarray(self.range_min)) / np.asarray(self.voxel_size)).astype(np.int64)
        inside = np.all((idx >= 0) & (idx < np.asarray(self.shape)), axis=-1)
        return idx, inside


OCC3D = GridSpec("occ3d", (200, 200, 16), (0.4, 0.4, 0.4), (-40.0, -40.0, -1.0), "ego")
OPENOCC_V2 = OCC3D
SURROUNDOCC = GridSpec("surroundocc", (200, 200, 16), (0.5, 0.5, 0.5), (-50.0, -50.0, -5.0), "lidar")
OPENOCCUPANCY = GridSpec("openoccupancy", (512, 512, 40), (0.2, 0.2, 0.2), (-51.2, -51.2, -5.0), "lidar")
OPENOCC_V1 = GridSpec("openocc_v1", (200, 200, 16), (0.5, 0.5, 0.5), (-50.0, -50.0, -5.0), "lidar")
WAYMO_04 = GridSpec("occ3d_waymo_0.4", (200, 200, 16), (0.4, 0.4, 0.4), (-40.0, -40.0, -1.0), "ego")
WAYMO_01 = GridSpec("occ3d_waymo_0.1", (1600, 1600, 64), (0.1, 0.1, 0.2), (-80.0, -80.0, -5.0), "ego")

GRIDS: dict[str, GridSpec] = {
    g.name: g for g in (OCC3D, SURROUNDOCC, OPENOCCUPANCY, OPENOCC_V1, WAYMO_04, WAYMO_01)
}
