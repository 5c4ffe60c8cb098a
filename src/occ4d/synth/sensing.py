"""One keyframe's labels: the Occ3D grid around the ego, its lidar and camera visibility masks and
its occupancy flow.

The static world map is resampled into the ego grid (rotated with the ego's yaw), the road users
are drawn in as oriented boxes, then the masks are cast from the roof lidar and the six cameras
(occ4d.synth.raycast). The ego car itself is not drawn, as in Occ3D. The flow (OpenOcc v2,
PROTOCOLS §2.4) gives the voxels of each road user's boxes that road user's velocity.
"""

from __future__ import annotations

import numpy as np

from occ4d.core.grid import OCC3D
from occ4d.core.vocab import OCC3D_VOCAB, Occ3D
from occ4d.synth import raycast
from occ4d.synth.rig import LIDAR_FOV_DEG, camera_rig, lidar2ego
from occ4d.synth.scenery import RES, WorldMap
from occ4d.synth.voxelize import fill_boxes, paint_boxes, sample_static, to_ego

FREE = OCC3D_VOCAB.free
VIEW_RADIUS = 70.0  # m: boxes centred farther from the ego are not drawn (grid half diagonal 56.6 m)


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
        near = _in_view(boxes_world, x, y)
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


def flow(
    ego_xy_yaw: tuple[float, float, float], boxes_world: np.ndarray, velocity_world: np.ndarray
) -> np.ndarray:
    """float32 (200, 200, 16, 2) occupancy flow around the ego: (vx, vy) m/s in the ego frame.

    ``velocity_world`` (P, 2) is each box's velocity in the world (its road user's own motion,
    m/s). Every voxel :func:`semantics` gives a box's class carries that box's velocity rotated
    into the ego frame, as OpenOcc v2 takes flow from the nuScenes box velocities (PROTOCOLS §2.4):
    the object's motion, not its motion relative to the ego. Every other voxel is exactly 0.
    """
    x, y, yaw = ego_xy_yaw
    velocity_world = np.asarray(velocity_world, np.float64)
    if velocity_world.shape != (len(boxes_world), 2):
        raise ValueError(f"need one (vx, vy) per box: {len(boxes_world)} boxes, "
                         f"velocities of shape {velocity_world.shape}")
    out = np.zeros((*OCC3D.shape, 2), np.float32)
    if not len(boxes_world):
        return out
    near = _in_view(boxes_world, x, y)
    if not near.any():
        return out
    box = np.full(OCC3D.shape, -1, np.int32)  # index of the box drawn last on each voxel
    paint_boxes(
        box,
        OCC3D.range_min[0],
        OCC3D.range_min[1],
        OCC3D.voxel_size[0],
        to_ego(boxes_world[near], x, y, yaw),
        np.arange(int(near.sum()), dtype=np.int32),
        True,
    )
    hit = box >= 0
    out[hit] = velocity_to_ego(velocity_world[near], yaw).astype(np.float32)[box[hit]]
    return out


def velocity_to_ego(velocity_world: np.ndarray, ego_yaw: float) -> np.ndarray:
    """Velocities (P, 2) from the world frame into the ego frame: rotated by -yaw (no ego motion
    subtracted), as :func:`occ4d.synth.voxelize.to_ego` rotates positions."""
    v = np.asarray(velocity_world, np.float64).reshape(-1, 2)
    c, s = np.cos(ego_yaw), np.sin(ego_yaw)
    return np.stack([c * v[:, 0] + s * v[:, 1], -s * v[:, 0] + c * v[:, 1]], axis=1)


def _in_view(boxes_world: np.ndarray, x: float, y: float) -> np.ndarray:
    return np.hypot(boxes_world[:, 0] - x, boxes_world[:, 1] - y) < VIEW_RADIUS
