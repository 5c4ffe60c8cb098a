"""The synthetic car's sensors: a roof lidar and six surround cameras placed as on the nuScenes car.

Positions follow nuScenes' calibration (LIDAR_TOP about (0.94, 0, 1.84) m in ego, rotated -90 deg
in yaw, PROTOCOLS §1.1); cameras look forward, +-55 deg, back and +-110 deg with horizontal
fields of view of 70 deg (front, sides) and 110 deg (back) on 1600x900 images. The rig is stored
in every info's ``cams`` in the devkit converter's form (PROTOCOLS §2.2).
"""

from __future__ import annotations

import numpy as np

from occ4d.core.camera import NUSCENES_CAMERAS, Camera, CameraRig
from occ4d.core.pose import invert_pose, make_pose, matrix_to_quat

LIDAR_TRANSLATION = (0.943713, 0.0, 1.84023)
LIDAR_FOV_DEG = (-30.67, 10.67)  # vertical field of view of a 32-beam roof lidar
IMAGE_W, IMAGE_H = 1600, 900

# name: (x, y, z) m in ego, yaw deg, horizontal field of view deg
_CAMERAS = {
    "CAM_FRONT": ((1.70, 0.016, 1.51), 0.0, 70.0),
    "CAM_FRONT_RIGHT": ((1.55, -0.49, 1.50), -55.0, 70.0),
    "CAM_FRONT_LEFT": ((1.52, 0.49, 1.51), 55.0, 70.0),
    "CAM_BACK": ((0.03, 0.0, 1.57), 180.0, 110.0),
    "CAM_BACK_LEFT": ((1.04, 0.48, 1.56), 110.0, 70.0),
    "CAM_BACK_RIGHT": ((1.04, -0.48, 1.56), -110.0, 70.0),
}


def lidar2ego() -> np.ndarray:
    """4x4: lidar x points to ego -y (right), lidar y to ego +x (forward)."""
    return make_pose(LIDAR_TRANSLATION, [np.cos(-np.pi / 4), 0.0, 0.0, np.sin(-np.pi / 4)])


def camera_rig() -> CameraRig:
    """Six pinhole cameras (OpenCV axes: x right, y down, z forward) in nuScenes order."""
    cams = []
    for name in NUSCENES_CAMERAS:
        (x, y, z), yaw_deg, fov = _CAMERAS[name]
        yaw = np.deg2rad(yaw_deg)
        forward = np.array([np.cos(yaw), np.sin(yaw), 0.0])
        right = np.array([np.sin(yaw), -np.cos(yaw), 0.0])
        down = np.array([0.0, 0.0, -1.0])
        f = (IMAGE_W / 2) / np.tan(np.deg2rad(fov) / 2)
        k = np.array([[f, 0.0, IMAGE_W / 2], [0.0, f, IMAGE_H / 2], [0.0, 0.0, 1.0]])
        cams.append(
            Camera(name, k, make_pose((x, y, z), np.stack([right, down, forward], axis=1)), IMAGE_W, IMAGE_H)
        )
    return CameraRig(tuple(cams)).validate()


def cams_info(rig: CameraRig, ego2global: np.ndarray, timestamp: int, token_of) -> dict:
    """``cams`` of one devkit info: per camera its calibration, with ``data_path`` empty (no images
    are rendered yet). ``token_of(name)`` gives the camera's sample_data token."""
    l2e = lidar2ego()
    e2l = invert_pose(l2e)
    out = {}
    for cam in rig.cameras:
        s2e = np.asarray(cam.sensor2ego, np.float64)
        s2l = e2l @ s2e
        out[cam.name] = {
            "data_path": "",
            "type": cam.name,
            "sample_data_token": token_of(cam.name),
            "sensor2ego_translation": s2e[:3, 3].tolist(),
            "sensor2ego_rotation": matrix_to_quat(s2e[:3, :3]).tolist(),
            "ego2global_translation": ego2global[:3, 3].tolist(),
            "ego2global_rotation": matrix_to_quat(ego2global[:3, :3]).tolist(),
            "timestamp": int(timestamp),
            "sensor2lidar_rotation": s2l[:3, :3].copy(),
            "sensor2lidar_translation": s2l[:3, 3].copy(),
            "cam_intrinsic": np.asarray(cam.intrinsic, np.float64).copy(),
        }
    return out
