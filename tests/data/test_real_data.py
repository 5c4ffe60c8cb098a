"""Real fixtures: both Occ3D frames, and the 81-sample nuScenes-mini OccWorld info file."""

from __future__ import annotations

import numpy as np
import pytest

from occ4d.core import OCC3D_VOCAB, Occ3D, yaw_pose
from occ4d.core.pose import invert_pose
from occ4d.data.dataset import ClipDataset
from occ4d.data.index import group_by_scene, load_index
from occ4d.data.trajectories import lidar_future_displacements
from occ4d.io.infos import load_pkl
from occ4d.io.occ3d import load_labels


def test_both_real_occ3d_frames(occ3d_frame_paths):
    first, second = (load_labels(p) for p in occ3d_frame_paths)
    # figures from ../shared/data/README.md (the devkit's sample frame)
    assert int((first.semantics == Occ3D.FREE).sum()) == 600_908
    assert int(first.mask_camera.sum()) == 43_355 and int(first.mask_lidar.sum()) == 56_601
    assert first.token == "29796060110c4163b07f06eff4af0753"
    for f in (first, second):
        assert f.semantics.dtype == np.uint8 and f.mask_camera.dtype == bool
        assert 0.85 < float((f.semantics == OCC3D_VOCAB.free).mean()) < 0.97


@pytest.fixture
def mini(mini_infos_path):
    return load_index(mini_infos_path), load_pkl(mini_infos_path)["infos"]


def test_mini_infos_index(mini):
    records, raw = mini
    assert len(records) == 81
    scenes = group_by_scene(records)
    assert sorted(scenes) == ["scene-0103", "scene-0916"]
    assert sum(map(len, scenes.values())) == 81
    r = records[0]
    assert r.path.parts[-4:-2] == ("gts", r.scene) and r.path.parts[-2] == r.token
    assert r.path.name == "labels.npz"
    by_token = {x["token"]: x for x in raw}
    for rec in records:  # the file's own LiDAR pose agrees with the pose keys we read
        np.testing.assert_allclose(rec.ego2global @ rec.lidar2ego, by_token[rec.token]["pose_mat"], atol=1e-6)
    assert "gt_ego_fut_trajs" in r.extras and "cams" in r.extras


def test_mini_future_trajectories_match_gt_ego_fut_trajs(mini):
    records, _ = mini
    worst = 0.0
    for recs in group_by_scene(records).values():
        for t, rec in enumerate(recs):
            disp, masks = lidar_future_displacements(recs, t, horizon=6)
            np.testing.assert_array_equal(masks, rec.extras["gt_ego_fut_masks"])
            worst = max(worst, float(np.abs(disp - rec.extras["gt_ego_fut_trajs"]).max()))
    assert worst < 1e-5  # float32 storage in the file

    # The dataset's ego-frame trajectory tells the same story: LiDAR positions rebuilt from the
    # planar (x, y, yaw) trajectory agree with the summed gt displacements to within 1% of the
    # distance + 5 cm (the planar trajectory drops roll, pitch and z; nuScenes poses tilt ~0.01 rad).
    ds = ClipDataset(records, past=1, future=6)
    worst_planar = 0.0
    assert len(ds) == 81 - 2 * 6
    for i in range(len(ds)):
        recs = ds.records(i)
        traj = ds.trajectory(i)
        l2e = recs[0].lidar2ego
        gt_lidar = np.cumsum(recs[0].extras["gt_ego_fut_trajs"], axis=0)  # (6, 2) in current LiDAR frame
        for k in range(1, 7):
            lidar_in_ego = yaw_pose(*traj[k]) @ recs[k].lidar2ego
            p = (invert_pose(l2e) @ lidar_in_ego)[:2, 3]
            err = np.linalg.norm(p - gt_lidar[k - 1])
            assert err < 0.01 * np.linalg.norm(gt_lidar[k - 1]) + 0.05, (i, k, err)
            worst_planar = max(worst_planar, err)
    assert worst_planar > 0  # the planar trajectory is an approximation, not a copy of the file
