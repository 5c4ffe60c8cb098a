"""The data model: grids, vocabularies, poses, trajectories, frames, clips and camera rigs."""

from occ4d.core.camera import NUSCENES_CAMERAS, Camera, CameraRig
from occ4d.core.errors import DataError
from occ4d.core.frame import Clip, Frame, check_labels, check_mask
from occ4d.core.grid import GRIDS, OCC3D, GridSpec
from occ4d.core.pose import check_pose, invert_pose, make_pose, matrix_to_quat, quat_to_matrix, yaw_pose
from occ4d.core.trajectory import Trajectory
from occ4d.core.vocab import (
    IGNORE,
    OCC3D_VOCAB,
    OPENOCC_VOCAB,
    OPENOCCUPANCY_VOCAB,
    SURROUNDOCC_VOCAB,
    VOCABS,
    WAYMO_VOCAB,
    Occ3D,
    OpenOcc,
    SurroundOcc,
    Vocabulary,
    Waymo,
    convert_labels,
)

__all__ = [
    "NUSCENES_CAMERAS", "Camera", "CameraRig", "DataError", "Clip", "Frame", "check_labels", "check_mask",
    "GRIDS", "OCC3D", "GridSpec", "check_pose", "invert_pose", "make_pose", "matrix_to_quat",
    "quat_to_matrix", "yaw_pose", "Trajectory", "IGNORE", "OCC3D_VOCAB", "OPENOCC_VOCAB",
    "OPENOCCUPANCY_VOCAB", "SURROUNDOCC_VOCAB", "VOCABS", "WAYMO_VOCAB", "Occ3D", "OpenOcc",
    "SurroundOcc", "Vocabulary", "Waymo", "convert_labels",
]
