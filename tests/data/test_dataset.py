"""Clip windows: time order, scene boundaries, trajectories, masks, determinism, the cache, collation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ondisk import ego_pose, write_dataset

from occ4d.core import OCC3D, Trajectory
from occ4d.core.pose import invert_pose
from occ4d.data.dataset import ClipDataset, collate_clips
from occ4d.data.index import load_index
from occ4d.io.infos import save_pkl
from occ4d.io.occ3d import load_labels


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    infos = write_dataset(root, {"scene-b": 5, "scene-a": 3}, seed=1)
    save_pkl(root / "occ4d_infos_temporal_val.pkl", {"infos": infos[::-1], "metadata": {"version": "t"}})
    return load_index(root)


def test_windows_never_cross_scenes(records):
    ds = ClipDataset(records, past=2, future=2)
    assert [(w.scene, w.frames) for w in ds.windows] == [("scene-b", (0, 1, 2, 3)), ("scene-b", (1, 2, 3, 4))]
    assert len(ClipDataset(records, past=2, future=1)) == 1 + 3  # scene-a gives one window of 3
    strided = ClipDataset(records, past=1, future=1, stride=2)
    assert [(w.scene, w.frames) for w in strided.windows] == [
        ("scene-a", (0, 1)), ("scene-b", (0, 1)), ("scene-b", (2, 3))]
    spaced = ClipDataset(records, past=2, future=1, frame_step=2)
    assert [w.frames for w in spaced.windows] == [(0, 2, 4)] and spaced.hz == 1.0
    with pytest.raises(ValueError):
        ClipDataset(records, past=0, future=2)


def test_item_contents(records):
    ds = ClipDataset(records, past=2, future=2)
    item = ds[1]
    assert item["semantics"].shape == (4, *OCC3D.shape) and item["semantics"].dtype == torch.uint8
    assert item["mask_camera"].dtype == torch.bool and item["mask_lidar"].shape == (4, *OCC3D.shape)
    assert item["scene"] == "scene-b" and item["tokens"] == [f"scene-b-tok{t:02d}" for t in (1, 2, 3, 4)]
    assert item["index"] == 1 and item["poses"].dtype == torch.float64
    assert torch.all(item["timestamps"][1:] > item["timestamps"][:-1])
    on_disk = load_labels(records[3 + 3].path)  # scene-a has 3 frames, so scene-b frame 3 is record 6
    np.testing.assert_array_equal(item["semantics"][2].numpy(), on_disk.semantics)
    np.testing.assert_array_equal(item["mask_camera"][2].numpy(), on_disk.mask_camera)
    traj = item["trajectory"]
    assert traj.dtype == torch.float32 and traj.shape == (4, 3)
    assert torch.all(traj[1] == 0)  # the current frame is index past - 1
    # frame 4 seen from frame 2 (ego_pose: x = 100 + 4t, y = 50 + 0.3t^2, yaw = 0.05t)
    rel = invert_pose(ego_pose(2)) @ ego_pose(4)
    np.testing.assert_allclose(traj[3].numpy(), [rel[0, 3], rel[1, 3], 0.1], rtol=1e-5)
    expected = Trajectory.from_poses(np.stack([ego_pose(t) for t in (1, 2, 3, 4)]), 1).xyyaw
    np.testing.assert_allclose(ds.trajectory(1), expected, atol=1e-9)
    assert "mask_camera" not in ClipDataset(records, past=2, future=2, with_masks=False)[0]
    with pytest.raises(IndexError):
        ds[2]


def test_deterministic_and_cached(records):
    a = ClipDataset(records, past=2, future=1)
    b = ClipDataset(list(reversed(records)), past=2, future=1, cache=True)
    for i in range(len(a)):
        x, y = a[i], b[i]
        for k in ("semantics", "mask_camera", "mask_lidar", "trajectory", "poses", "timestamps"):
            assert torch.equal(x[k], y[k]), k
        assert x["tokens"] == y["tokens"]
    n_cached = len(b.cache)
    assert n_cached == 8 and 0 < b.cache.nbytes < n_cached * OCC3D.num_voxels  # compressed
    again = b[len(b) - 1]
    assert len(b.cache) == n_cached
    assert torch.equal(again["semantics"], a[len(a) - 1]["semantics"])
    assert torch.equal(again["mask_lidar"], a[len(a) - 1]["mask_lidar"])


def test_collate(records):
    ds = ClipDataset(records, past=1, future=1)
    batch = collate_clips([ds[0], ds[3]])
    assert batch["semantics"].shape == (2, 2, *OCC3D.shape) and batch["trajectory"].shape == (2, 2, 3)
    assert batch["mask_camera"].shape == (2, 2, *OCC3D.shape) and batch["index"].tolist() == [0, 3]
    assert batch["scene"] == ["scene-a", "scene-b"] and len(batch["tokens"][1]) == 2
    no_mask = ClipDataset(records, past=1, future=1, with_masks=False)[1]
    assert "mask_camera" not in collate_clips([ds[0], no_mask])
    loader = torch.utils.data.DataLoader(ds, batch_size=3, collate_fn=collate_clips)
    assert [b["index"].tolist() for b in loader] == [[0, 1, 2], [3, 4, 5]]
