"""Ego trajectories of a scene's keyframes, including the OccWorld-family ``gt_ego_fut_trajs`` convention.

What ``gt_ego_fut_trajs`` (6, 2) in the OccWorld / VAD info files means, worked out on the
81-sample nuScenes-mini fixture (``tests/data/test_real_data.py`` checks every sample to < 1e-6 m):

1. Take the LiDAR pose in the world, ``P(f) = ego2global(f) @ lidar2ego(f)`` (the file's
   ``pose_mat``), for the current keyframe t and the next 6 keyframes of the same scene.
2. Express each LiDAR position in the **current LiDAR frame**: ``p_k = (P(t)^-1 P(t+k))[:3, 3]``
   (so x is to the right of the car and y forward, LIDAR_TOP being rotated -90 degrees in yaw).
3. Row k-1 is the **per-step displacement** ``p_k - p_{k-1}`` (x, y), k = 1..6, all in that one
   current frame: not a displacement in each previous frame, not cumulative positions.
4. Past the end of the scene the last position is repeated, so those rows are 0 and
   ``gt_ego_fut_masks`` is 0 there.

Hence OccWorld's "row 0 = relative (x, y) displacement" is the LiDAR's motion to the next
keyframe in the current LiDAR frame: about (0, 4.25) m for a car driving straight at 8.5 m/s.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from occ4d.core.pose import invert_pose
from occ4d.core.trajectory import Trajectory
from occ4d.data.index import FrameRecord


def ego_trajectory(records: Sequence[FrameRecord], current: int, hz: float = 2.0) -> Trajectory:
    """(T, 3) x, y, yaw of every record's ego pose in the ego frame of ``records[current]``."""
    poses = np.stack([r.ego2global for r in records])
    return Trajectory.from_poses(poses, current, hz, str(records[current].path))


def lidar_future_displacements(records: Sequence[FrameRecord], current: int,
                               horizon: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """The OccWorld/VAD ``gt_ego_fut_trajs`` (horizon, 2) and ``gt_ego_fut_masks`` (horizon,) of
    ``records[current]``, where ``records`` is one scene's keyframes in time order (see the module doc)."""
    ref = records[current].ego2global @ records[current].lidar2ego
    ref_inv = invert_pose(ref)
    positions = [np.zeros(3)]
    masks = np.zeros(horizon)
    for k in range(1, horizon + 1):
        j = current + k
        if j < len(records):
            r = records[j]
            positions.append((ref_inv @ r.ego2global @ r.lidar2ego)[:3, 3])
            masks[k - 1] = 1.0
        else:
            positions.append(positions[-1])
    pos = np.stack(positions)
    return pos[1:, :2] - pos[:-1, :2], masks
