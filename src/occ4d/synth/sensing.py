"""One keyframe's labels: the Occ3D grid around the ego and its lidar and camera visibility masks.

The static world map is resampled into the ego grid (rotated with the ego's yaw), the road users
are drawn in as oriented boxes, then the masks are cast from the roof lidar and the six cameras
(occ4d.synth.raycast). The ego car itself is not drawn, as in Occ3D.
"""

from __future__ import annotations

import numpy as np

from occ4d.core.grid import OCC3D
from occ4d.core.vocab import OCC3D_VOCAB, Occ3D
from occ4d.synth import raycast
from occ4d.synth.rig import LIDAR_FOV_DEG, camera_rig, lidar2ego
from occ4d.synth.scenery import RES, WorldMap
from occ4d.synth.voxelize import fill_boxes, sample_static, to_ego

FREE = OCC3D_VOCAB.free


class Sensors:
    """The rig's lidar and cameras with their ray trees, built once (about a second)."""

    def __init__(self):
        self.rig = camera_rig()
        origin = lidar2ego()[:3, 3]
        self.lidar = raycast.Visibility(origin, raycast.lidar_view(origin, LIDAR_FOV_DEG))
        self.cameras = [
            raycast.Visibility(np.asarray(c.sensor2ego)[:3, 3], raycast.camera_view(c))
            for c in self.rig.cameras
        ]
        self.scratch = (np.ones(OCC3D.num_voxels, np.float32), np.zeros(OCC3D.num_voxels, np.float32))

    def masks(self, occupied: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mask_lidar, mask_camera) bool (X, Y, Z) for an occupancy grid in the ego frame."""
        return (
            raycast.mask(occupied, [self.lidar], self.scratch),
            raycast.mask(occupied, self.cameras, self.scratch),
        )


_SENSORS: Sensors | None = None


def sensors() -> Sensors:
    """The process-wide :class:`Sensors` (their trees depend only on the rig)."""
    global _SENSORS
    if _SENSORS is None:
        _SENSORS = Sensors()
    return _SENSORS


def semantics(world: WorldMap, ego_xy_yaw: tuple[float, float, float], boxes_world: np.ndarray) -> np.ndarray:
    """uint8 (200, 200, 16) Occ3D labels around the ego: static world plus road users' boxes."""
    x, y, yaw = ego_xy_yaw
    out = np.empty(OCC3D.shape, np.uint8)
    sample_static(
        world.grid,
        world.origin[0],
        world.origin[1],
        RES,
        x,
        y,
        yaw,
        OCC3D.range_min[0],
        OCC3D.range_min[1],
        OCC3D.voxel_size[0],
        out,
        int(Occ3D.TERRAIN),
        FREE,
    )
    if len(boxes_world):
        near = np.hypot(boxes_world[:, 0] - x, boxes_world[:, 1] - y) < 70.0
        if near.any():
            fill_boxes(
                out,
                OCC3D.range_min[0],
                OCC3D.range_min[1],
                OCC3D.voxel_size[0],
                to_ego(boxes_world[near], x, y, yaw),
                True,
            )
    return out
