"""Shared test fixtures: the real data beside the project (skipped when absent) and small grids."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
OCC3D_FRAME = SHARED_DATA / "occ3d-nuscenes" / "29796060110c4163b07f06eff4af0753" / "labels.npz"
OCC3D_FRAME_2 = SHARED_DATA / "occ3d-nuscenes" / "occupancy-vis" / "3D_occupancy_data.npz"
OPENOCC_FRAME = SHARED_DATA / "openocc-v2" / "occupancy-vis" / "3D_occupancy_flow_data.npz"
MINI_INFOS = SHARED_DATA / "nuscenes-mini-infos" / "world-nuscenes_mini_infos_val.pkl"
NUSCENES_KEYFRAME = SHARED_DATA / "nuscenes-keyframe"
LIDAR_SWEEP = SHARED_DATA / "lidar" / "3D_lidar.npy"


def need(path: Path) -> Path:
    """Skip the calling test, with a reason, when a real fixture file is absent."""
    if not path.exists():
        pytest.skip(f"real data fixture {path} is absent (../shared/data is not beside the project)")
    return path


@pytest.fixture
def occ3d_frame_path() -> Path:
    return need(OCC3D_FRAME)


@pytest.fixture
def occ3d_frame_paths() -> list[Path]:
    return [need(OCC3D_FRAME), need(OCC3D_FRAME_2)]


@pytest.fixture
def openocc_frame_path() -> Path:
    return need(OPENOCC_FRAME)


@pytest.fixture
def nuscenes_keyframe_info() -> Path:
    """The mmdet3d v1.1 info of the real nuScenes keyframe (six images and a LiDAR sweep beside it)."""
    return need(NUSCENES_KEYFRAME / "n015-2018-07-24-11-22-45+0800.pkl")


@pytest.fixture
def mini_infos_path() -> Path:
    return need(MINI_INFOS)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def one_thread():
    """One torch intra-op thread for the test: small CPU models on a shared 2-core machine run
    several times faster without a second thread that mostly waits (measured: 3 s vs 0.05 s per
    training step). Files of tiny models use it for every test through ``pytestmark``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
