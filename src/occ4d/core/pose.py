"""Rigid poses: 4x4 float64 matrices, quaternions in nuScenes' (w, x, y, z) order."""

from __future__ import annotations

import numpy as np

from occ4d.core.errors import DataError


def quat_to_matrix(q) -> np.ndarray:
    """Rotation matrix (3, 3) float64 from a (w, x, y, z) quaternion (normalised first)."""
    w, x, y, z = np.asarray(q, dtype=np.float64)
    n = np.sqrt(w * w + x * x + y * y + z * z)
    if not np.isfinite(n) or n < 1e-12:
        raise ValueError(f"quaternion {q} is not a rotation")
    w, x, y, z = w / n, x / n, y / n, z / n
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def matrix_to_quat(r: np.ndarray) -> np.ndarray:
    """(w, x, y, z) quaternion with w >= 0 from a rotation matrix (3, 3)."""
    r = np.asarray(r, dtype=np.float64)
    t = np.trace(r)
    if t > 0:
        s = np.sqrt(t + 1.0) * 2
        q = [0.25 * s, (r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s]
    else:
        i = int(np.argmax(np.diag(r)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = np.sqrt(1.0 + r[i, i] - r[j, j] - r[k, k]) * 2
        q = [0.0, 0.0, 0.0, 0.0]
        q[0] = (r[k, j] - r[j, k]) / s
        q[1 + i] = 0.25 * s
        q[1 + j] = (r[j, i] + r[i, j]) / s
        q[1 + k] = (r[k, i] + r[i, k]) / s
    q = np.asarray(q)
    return q if q[0] >= 0 else -q


def make_pose(translation, rotation) -> np.ndarray:
    """4x4 float64 pose from a translation (3,) and a (w, x, y, z) quaternion or a 3x3 matrix."""
    pose = np.eye(4)
    rot = np.asarray(rotation, dtype=np.float64)
    pose[:3, :3] = quat_to_matrix(rot) if rot.shape == (4,) else rot
    pose[:3, 3] = np.asarray(translation, dtype=np.float64)
    return pose


def yaw_pose(x: float, y: float, yaw: float, z: float = 0.0) -> np.ndarray:
    """Planar pose: translation (x, y, z) and a rotation of ``yaw`` radians about +z."""
    c, s = np.cos(yaw), np.sin(yaw)
    pose = np.eye(4)
    pose[:2, :2] = [[c, -s], [s, c]]
    pose[:3, 3] = (x, y, z)
    return pose


def invert_pose(pose: np.ndarray) -> np.ndarray:
    """Inverse of a rigid 4x4 transform (R^T, -R^T t)."""
    inv = np.eye(4)
    r = pose[:3, :3]
    inv[:3, :3] = r.T
    inv[:3, 3] = -r.T @ pose[:3, 3]
    return inv


def check_pose(pose, source=None, name: str = "pose", tol: float = 1e-4) -> np.ndarray:
    """Return ``pose`` as float64 (4, 4), or raise DataError if it is not a finite rigid transform."""
    pose = np.asarray(pose)
    if pose.shape != (4, 4):
        raise DataError(source, f"{name} must have shape (4, 4), got {pose.shape}")
    pose = pose.astype(np.float64)
    if not np.all(np.isfinite(pose)):
        raise DataError(source, f"{name} contains NaN or infinite values")
    r = pose[:3, :3]
    if not np.allclose(r @ r.T, np.eye(3), atol=tol) or abs(np.linalg.det(r) - 1.0) > tol:
        raise DataError(source, f"{name} is not rigid (its rotation is not orthonormal with det 1)")
    if not np.allclose(pose[3], (0, 0, 0, 1), atol=tol):
        raise DataError(source, f"{name} has a last row {pose[3].tolist()}, expected [0, 0, 0, 1]")
    return pose
