"""A tiny Occ3D-layout dataset on disk (gts/<scene>/<token>/labels.npz + annotations.json).

Each frame is a road with a sidewalk, a building row, a tree row and one car that drives
forward 6 voxels per frame, so clips have real temporal structure at a test-sized cost.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from occ4d.core.frame import Frame
from occ4d.core.vocab import Occ3D
from occ4d.io.occ3d import save_labels


def scene_frame(seed: int, t: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    sem = np.full((200, 200, 16), int(Occ3D.FREE), np.uint8)
    sem[:, :, 2] = int(Occ3D.DRIVEABLE_SURFACE)
    sem[:, 120:, 2] = int(Occ3D.SIDEWALK)
    sem[:, 150 + int(rng.integers(0, 20)):, 3:9] = int(Occ3D.MANMADE)
    x0 = 40 + 6 * t + int(rng.integers(0, 20))
    sem[x0:x0 + 10, 90:95, 3:6] = int(Occ3D.CAR)
    sem[int(rng.integers(0, 150)):, 20:24, 3:12] = int(Occ3D.VEGETATION)
    cam = np.zeros((200, 200, 16), np.uint8)
    cam[100:] = 1
    return sem, cam


def write_dataset(root: Path, train_scenes: int = 2, val_scenes: int = 1, frames: int = 4) -> Path:
    split = {"train_split": [], "val_split": []}
    for i in range(train_scenes + val_scenes):
        name = f"scene-{i:04d}"
        split["train_split" if i < train_scenes else "val_split"].append(name)
        for t in range(frames):
            sem, cam = scene_frame(i, t)
            save_labels(root / "gts" / name / f"{name}-tok{t}" / "labels.npz",
                        Frame(semantics=sem, mask_camera=cam, mask_lidar=cam))
    (root / "annotations.json").write_text(json.dumps(split))
    return root


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("occ3d_tiny"))


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every engine test runs on one torch thread (tests/conftest.py)."""
