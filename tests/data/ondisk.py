"""Small on-disk datasets for the io and data tests (written with occ4d's own writers)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from occ4d.core import OCC3D, OCC3D_VOCAB, Frame, matrix_to_quat, yaw_pose
from occ4d.io.occ3d import save_labels


def random_frame(rng: np.random.Generator, free_fraction: float = 0.9) -> Frame:
    """A random Occ3D frame: mostly free, random classes elsewhere, random masks."""
    sem = rng.integers(0, OCC3D_VOCAB.free, OCC3D.shape, dtype=np.uint8)
    sem[rng.random(OCC3D.shape) < free_fraction] = OCC3D_VOCAB.free
    return Frame(sem, mask_camera=rng.random(OCC3D.shape) < 0.3, mask_lidar=rng.random(OCC3D.shape) < 0.4)


def ego_pose(t: int, scene_offset: float = 0.0) -> np.ndarray:
    """A gently curving drive: 4 m per frame forward, yaw growing 0.05 rad per frame."""
    return yaw_pose(100.0 + scene_offset + 4.0 * t, 50.0 + 0.3 * t * t, 0.05 * t)


def devkit_info(token: str, scene: str, t: int, rel_path: str, pose: np.ndarray, **extra) -> dict:
    """An info dict with the devkit converter's pose keys (quaternions w, x, y, z)."""
    return {
        "token": token,
        "scene_token": f"tok-{scene}",
        "timestamp": 1_600_000_000_000_000 + t * 500_000,
        "ego2global_translation": pose[:3, 3].tolist(),
        "ego2global_rotation": matrix_to_quat(pose[:3, :3]).tolist(),
        "lidar2ego_translation": [0.985793, 0.0, 1.84019],
        "lidar2ego_rotation": [0.70675, -0.01530, 0.01740, -0.70708],
        "occ_gt_path": rel_path,
        **extra,
    }


def write_dataset(root: Path, scenes: dict[str, int], seed: int = 0) -> list[dict]:
    """Write ``gts/<scene>/<token>/labels.npz`` for each scene and return devkit-style infos."""
    rng = np.random.default_rng(seed)
    infos = []
    for s_i, (scene, n) in enumerate(scenes.items()):
        for t in range(n):
            token = f"{scene}-tok{t:02d}"
            rel = f"gts/{scene}/{token}/labels.npz"
            save_labels(root / rel, random_frame(rng))
            infos.append(devkit_info(token, scene, t + 10 * s_i, rel, ego_pose(t, 1000.0 * s_i)))
    return infos
