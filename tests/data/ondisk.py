"""Small on-disk datasets for the io and data tests (written with occ4d's own writers)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from occ4d.core import OCC3D, OCC3D_VOCAB, Frame, matrix_to_quat, yaw_pose
from occ4d.io.occ3d import save_labels


def random_frame(rng: np.random.Generator) -> Frame:
    """A random Occ3D frame shaped like a real one (ground layer, boxes, mostly free) so that it
    compresses, and writes, about as fast as real data; masks are random boxes too."""
    sem = np.full(OCC3D.shape, OCC3D_VOCAB.free, np.uint8)
    sem[:, :, 1] = rng.integers(11, 15)
    masks = [np.zeros(OCC3D.shape, bool), np.zeros(OCC3D.shape, bool)]
    for _ in range(30):
        x, y, z = rng.integers(0, 190), rng.integers(0, 190), rng.integers(2, 12)
        dx, dy, dz = rng.integers(1, 10), rng.integers(1, 10), rng.integers(1, 4)
        sem[x:x + dx, y:y + dy, z:z + dz] = rng.integers(0, 17)
        m = masks[int(rng.integers(0, 2))]
        m[x:x + rng.integers(5, 40), y:y + rng.integers(5, 40), : rng.integers(2, 16)] = True
    return Frame(sem, mask_camera=masks[0], mask_lidar=masks[1])


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
