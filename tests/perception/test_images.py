"""Image and calibration loading: bad input names its file; the real nuScenes keyframe loads with its
calibration, and its LiDAR sweep projects into the six cameras where it should."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from occ4d.core.camera import NUSCENES_CAMERAS
from occ4d.core.errors import DataError
from occ4d.core.pose import matrix_to_quat
from occ4d.io.images import load_image, load_lidar_points, load_mmdet3d_keyframe, rig_from_cams
from occ4d.synth.rig import camera_rig


def _cams() -> dict:
    out = {}
    for c in camera_rig().cameras:
        s2e = np.asarray(c.sensor2ego)
        out[c.name] = {"data_path": f"samples/{c.name}/x.jpg", "cam_intrinsic": np.asarray(c.intrinsic),
                       "sensor2ego_translation": s2e[:3, 3].tolist(),
                       "sensor2ego_rotation": matrix_to_quat(s2e[:3, :3]).tolist()}
    return out


SIZES = {name: (1600, 900) for name in NUSCENES_CAMERAS}


def test_rig_from_devkit_cams_round_trips_the_rig():
    rig = rig_from_cams(_cams(), SIZES, "info.pkl")
    for a, b in zip(rig.cameras, camera_rig().cameras, strict=True):
        assert a.name == b.name
        assert np.allclose(a.sensor2ego, b.sensor2ego, atol=1e-9)
        assert np.allclose(a.intrinsic, b.intrinsic)


@pytest.mark.parametrize("bad", ["shape", "nan", "missing"])
def test_bad_calibration_is_a_data_error_naming_the_file(bad):
    cams = _cams()
    if bad == "shape":
        cams["CAM_BACK"]["cam_intrinsic"] = np.eye(4)
    elif bad == "nan":
        cams["CAM_FRONT"]["sensor2ego_translation"] = [np.nan, 0.0, 1.5]
    else:
        del cams["CAM_BACK_LEFT"]
    with pytest.raises(DataError, match="info.pkl"):
        rig_from_cams(cams, SIZES, "info.pkl")


def test_missing_or_broken_image_names_the_file(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_image(tmp_path / "none.jpg")
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match="broken.jpg"):
        load_image(tmp_path / "broken.jpg")
    (tmp_path / "odd.bin").write_bytes(np.zeros(7, np.float32).tobytes())
    with pytest.raises(DataError, match="odd.bin"):
        load_lidar_points(tmp_path / "odd.bin")


def test_real_keyframe_loads_with_its_calibration(nuscenes_keyframe_info):
    kf = load_mmdet3d_keyframe(nuscenes_keyframe_info)
    assert kf.token == "ca9a282c9e77460f8360f564131a8af5"
    assert [c.name for c in kf.rig.cameras] == list(NUSCENES_CAMERAS)
    assert all((c.width, c.height) == (1600, 900) for c in kf.rig.cameras)
    front = kf.rig["CAM_FRONT"]
    assert np.asarray(front.sensor2ego)[:3, 2] @ np.array([1.0, 0, 0]) > 0.99  # optical axis = ego forward
    assert np.asarray(kf.rig["CAM_BACK"].sensor2ego)[:3, 2] @ np.array([-1.0, 0, 0]) > 0.99
    assert kf.load_images().shape == (6, 900, 1600, 3)


def test_cam2ego_and_lidar2cam_agree_up_to_ego_motion(nuscenes_keyframe_info, tmp_path):
    """Without cam2ego the pose comes from lidar2ego @ inverse(lidar2cam). mmdet3d's lidar2cam also
    holds the ego motion between the LiDAR and camera timestamps (tens of ms), so the two agree in
    rotation and differ in translation by a short step along the driving direction (ego x)."""
    from occ4d.io.infos import load_pkl

    obj = load_pkl(nuscenes_keyframe_info)
    for cam in obj["data_list"][0]["images"].values():
        del cam["cam2ego"]
    alt = tmp_path / "alt.pkl"
    alt.write_bytes(pickle.dumps(obj))
    a = load_mmdet3d_keyframe(nuscenes_keyframe_info)
    b = load_mmdet3d_keyframe(alt, data_dir=nuscenes_keyframe_info.parent)
    for ca, cb in zip(a.rig.cameras, b.rig.cameras, strict=True):
        ra, rb = np.asarray(ca.sensor2ego), np.asarray(cb.sensor2ego)
        assert np.allclose(ra[:3, :3], rb[:3, :3], atol=5e-3)
        step = rb[:3, 3] - ra[:3, 3]
        assert np.linalg.norm(step) < 0.6
        assert abs(step[0]) >= np.abs(step[1:]).max()


def test_bad_mmdet3d_calibration_names_the_info_file(nuscenes_keyframe_info, tmp_path):
    from occ4d.io.infos import load_pkl

    obj = load_pkl(nuscenes_keyframe_info)
    obj["data_list"][0]["images"]["CAM_FRONT"]["cam2img"] = [[1.0, 0.0], [0.0, 1.0]]
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(pickle.dumps(obj))
    with pytest.raises(DataError, match="bad.pkl.*cam2img"):
        load_mmdet3d_keyframe(bad, data_dir=nuscenes_keyframe_info.parent)


def test_real_lidar_projects_into_the_cameras_where_it_should(nuscenes_keyframe_info):
    kf = load_mmdet3d_keyframe(nuscenes_keyframe_info)
    pts = kf.lidar_in_ego()
    assert pts.shape == (34688, 3)
    counts = {}
    hits = np.zeros(len(pts), int)
    for cam in kf.rig.cameras:
        uv, depth, inside = cam.project(pts)
        counts[cam.name] = int(inside.sum())
        hits += inside
        assert np.all(depth[inside] > 0)
        # Ground returns (ego z near 0, beyond 4 m) lie below the horizon: lower half of the image.
        ground = inside & (np.abs(pts[:, 2]) < 0.3) & (depth > 4)
        assert ground.sum() > 100
        assert np.mean(uv[ground, 1] > cam.height / 2) > 0.97
    # A 32-beam sweep puts thousands of points into every camera.
    assert all(1_000 < n < 10_000 for n in counts.values()), counts
    # Within about 16 deg of the optical axis both ways (the cameras see about +-19 deg vertically).
    lens = np.abs(pts[:, 2] - 1.5)
    ahead = (pts[:, 0] > 10) & (np.abs(pts[:, 1]) < 0.3 * pts[:, 0]) & (lens < 0.3 * pts[:, 0])
    behind = (pts[:, 0] < -10) & (np.abs(pts[:, 1]) < 0.3 * -pts[:, 0]) & (lens < 0.3 * -pts[:, 0])
    in_front = kf.rig["CAM_FRONT"].project(pts[ahead])[2]
    in_back = kf.rig["CAM_BACK"].project(pts[behind])[2]
    assert ahead.sum() > 500 and in_front.mean() > 0.95
    assert behind.sum() > 500 and in_back.mean() > 0.95
    assert kf.rig["CAM_BACK"].project(pts[ahead])[2].sum() == 0
    # Points beside the car (left) are seen by the left cameras, not the right ones.
    left = (pts[:, 1] > 5) & (np.abs(pts[:, 0]) < 2)
    seen_left = kf.rig["CAM_FRONT_LEFT"].project(pts[left])[2] | kf.rig["CAM_BACK_LEFT"].project(pts[left])[2]
    assert seen_left.mean() > 0.5
    assert not kf.rig["CAM_FRONT_RIGHT"].project(pts[left])[2].any()


def test_projected_ground_recedes_towards_the_horizon(nuscenes_keyframe_info):
    """On every camera, ground returns further away land higher in the image (towards the horizon),
    and returns from 2.5 m and more above the ground land above the ground returns at the same range."""
    from scipy.stats import spearmanr

    kf = load_mmdet3d_keyframe(nuscenes_keyframe_info)
    pts = kf.lidar_in_ego()
    for cam in kf.rig.cameras:
        uv, depth, inside = cam.project(pts)
        ground = inside & (np.abs(pts[:, 2]) < 0.3)
        assert spearmanr(depth[ground], uv[ground, 1]).statistic < -0.8, cam.name
        band = (depth > 8) & (depth < 15)
        high = inside & band & (pts[:, 2] > 2.5)
        if high.sum() > 20 and (ground & band).sum() > 20:
            assert np.median(uv[high, 1]) < np.median(uv[ground & band, 1]), cam.name
