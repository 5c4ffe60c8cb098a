import math

import numpy as np
import pytest
import torch
from metrics_reference import (
    assert_same,
    calc_rayiou,
    occupancy_zyx,
    sparseocc_origins,
    sparseocc_rays,
    voxel_inputs,
    walk_one_ray,
)

from occ4d.core import OCC3D, DataError, Occ3D, make_pose
from occ4d.io.infos import load_pkl
from occ4d.io.occ3d import load_labels
from occ4d.metrics import RayIoU, origins_by_token, ray_directions, ray_origins
from occ4d.metrics.raycast import cast, voxel_space, walk_torch
from occ4d.metrics.raycast_numba import walk

FREE = int(Occ3D.FREE)
LIDAR = np.array([[0.985793, 0.0, 1.84019]])  # the nuScenes LiDAR position in ego (PROTOCOLS §1.1)


def _free():
    return np.full(OCC3D.shape, FREE, dtype=np.uint8)


def _mini_scenes(path):
    infos = load_pkl(path)["infos"]
    scenes: dict[str, list] = {}
    for info in infos:
        scene = info["occ_path"].replace("\\", "/").split("/")[-2]
        scenes.setdefault(scene, []).append(info)
    return {s: sorted(v, key=lambda i: i["timestamp"]) for s, v in scenes.items()}


def _poses(scene):
    e2g = [make_pose(i["ego2global_translation"], i["ego2global_rotation"]) for i in scene]
    l2e = [make_pose(i["lidar2ego_translation"], i["lidar2ego_rotation"]) for i in scene]
    return e2g, l2e


def test_origins_by_token_orders_each_scene_by_time():
    """Records given shuffled and mixed across scenes get the origins of their own scene in time order."""
    from pathlib import Path

    from occ4d.data.index import FrameRecord

    def rec(scene, k, x):
        return FrameRecord(f"{scene}-{k}", scene, timestamp=k * 500_000, path=Path(f"/d/{scene}/{k}"),
                           ego2global=make_pose([x, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]), lidar2ego=np.eye(4))

    a = [rec("a", k, 5.0 * k) for k in range(6)]
    b = [rec("b", k, -3.0 * k) for k in range(4)]
    got = origins_by_token([a[3], b[2], a[0], a[5], b[0], a[1], b[3], a[2], b[1], a[4]])
    assert sorted(got) == sorted(r.token for r in a + b)
    for scene in (a, b):
        e2g, l2e = [r.ego2global for r in scene], [r.lidar2ego for r in scene]
        for i, r in enumerate(scene):
            np.testing.assert_array_equal(got[r.token], ray_origins(i, e2g, l2e))
    assert not np.array_equal(got["a-0"], got["a-3"])  # the frame index matters, so order is tested


def test_ray_directions_match_protocol():
    d = ray_directions()
    assert d.shape == (14040, 3) and d.dtype == np.float32
    np.testing.assert_array_equal(d, sparseocc_rays())
    pitch = np.arcsin(d[::360, 2].astype(np.float64))
    assert len(pitch) == 39
    assert pitch[0] == pytest.approx(-math.pi / 4, abs=1e-6)
    assert pitch[-1] == pytest.approx(0.219, abs=1e-5)
    np.testing.assert_allclose(np.diff(pitch[10:]), 0.0109886, atol=2e-6)
    np.testing.assert_allclose(np.linalg.norm(d, axis=1), 1.0, atol=1e-6)
    assert np.degrees(np.arctan2(d[1, 1], d[1, 0])) == pytest.approx(1.0, abs=1e-4)  # azimuth-minor order


def test_origins_match_sparseocc_on_real_poses(mini_infos_path):
    for scene in _mini_scenes(mini_infos_path).values():
        e2g, l2e = _poses(scene)
        for r in (0, 1, len(scene) // 2, len(scene) - 1):
            ours = ray_origins(r, e2g, l2e)
            ref = sparseocc_origins(scene, r)
            assert ours.shape == ref.shape and 1 <= len(ours) <= 8
            np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-6)


def test_origin_bound_and_linspace_rule():
    e2g = [make_pose([5.0 * k, 0.0, 0.0], [1, 0, 0, 0]) for k in range(20)]
    l2e = [np.eye(4)] * 20
    np.testing.assert_array_equal(ray_origins(0, e2g, l2e)[:, 0], 5.0 * np.arange(8))  # 40 m is out
    # Frame 10 keeps x = -35..35 (15 origins), then indices round(linspace(0, 14, 8)).
    np.testing.assert_array_equal(ray_origins(10, e2g, l2e)[:, 0], [-35, -25, -15, -5, 5, 15, 25, 35])
    with pytest.raises(DataError, match="outside"):
        ray_origins(20, e2g, l2e)


def test_numba_walk_matches_slow_kernel_transcription(occ3d_frame_path):
    sem = load_labels(occ3d_frame_path).semantics
    occ_zyx = occupancy_zyx(sem, FREE)
    # The last two origins lie above and below the grid.
    origins = np.array([LIDAR[0], [-12.3, 7.7, 1.9], [3.0, -2.0, 6.3], [1.0, 1.0, -1.15]])
    rays = ray_directions()
    subset = np.arange(0, len(rays), 37)
    hits = cast(sem != FREE, origins, rays, backend="numba")
    depth = hits.depth.numpy().reshape(len(origins), -1)
    vox = hits.voxel.numpy().reshape(len(origins), -1, 3)
    for t, o in enumerate(origins):
        o_vox, e_vox = voxel_inputs(o, rays)
        for r in subset:
            d, v = walk_one_ray(occ_zyx, o_vox, e_vox[r])
            assert depth[t, r] == np.float32(d * np.float32(0.4)) and tuple(vox[t, r]) == v, (t, r)


def _walk_both(occ, o_vox, e_vox):
    depth = np.empty(e_vox.shape[:2], np.float32)
    vox = np.empty((*e_vox.shape[:2], 3), np.int64)
    walk(occ, o_vox, e_vox, depth, vox)
    d_t, v_t = walk_torch(torch.from_numpy(occ), o_vox, e_vox)
    np.testing.assert_array_equal(d_t.numpy(), depth.reshape(-1))
    np.testing.assert_array_equal(v_t.numpy(), vox.reshape(-1, 3))
    return depth.reshape(-1), vox.reshape(-1, 3)


@pytest.mark.parametrize(
    "end, expected",
    [
        ((11.5, 11.5, 10.5), (10, 11, 10)),  # X = Y tie steps Y
        ((11.5, 10.5, 11.5), (10, 10, 11)),  # X = Z tie steps Z
        ((10.5, 11.5, 11.5), (10, 10, 11)),  # Y = Z tie steps Z
        ((11.5, 11.5, 11.5), (10, 10, 11)),  # three-way tie steps Z
    ],
)
def test_voxel_walk_tie_rules(end, expected):
    occ = np.zeros((20, 20, 20), bool)
    for v in [(11, 10, 10), (10, 11, 10), (10, 10, 11)]:
        occ[v] = True
    o_vox = np.array([[10.5, 10.5, 10.5]], np.float32)
    e_vox = np.array([[end]], np.float32)
    depth, vox = _walk_both(occ, o_vox, e_vox)
    assert tuple(vox[0]) == expected
    occ_zyx = np.ascontiguousarray(occ.transpose(2, 1, 0)).astype(np.float32)
    d_ref, v_ref = walk_one_ray(occ_zyx, o_vox[0], e_vox[0, 0])
    assert v_ref == expected and depth[0] == d_ref


def test_start_voxel_truncates_and_far_face_depth():
    occ = np.zeros((20, 20, 20), bool)
    occ[0, 5, 0] = True
    # Origin at voxel coordinate z = -0.5: truncation gives 0 (floor would give -1), so the first
    # voxel tested is (0, 5, 0) itself and the ray stops there, at its far x face.
    o_vox = np.array([[0.25, 5.5, -0.5]], np.float32)
    e_vox = np.array([[[1.25, 5.5, -0.5]]], np.float32)
    depth, vox = _walk_both(occ, o_vox, e_vox)
    assert tuple(vox[0]) == (0, 5, 0) and depth[0] == np.float32(0.75)


def test_ray_that_never_enters_keeps_minus_one():
    sem = _free()
    sem[0, 0, 0] = Occ3D.CAR
    hits = cast(sem != FREE, np.array([[0.0, 0.0, 7.0]]), ray_directions(), backend="numba")
    up = ray_directions()[:, 2] > 0.05
    assert np.all(hits.depth.numpy()[up] == np.float32(-1.0) * np.float32(0.4))
    assert np.all(hits.voxel.numpy()[up] == 0)  # the label is then grid[0, 0, 0] of that grid
    down = ray_directions()[:, 2] < -0.5
    assert np.all(hits.depth.numpy()[down] > 0)  # rays from above enter through the top


def _wall(x0: int, label: int, sem=None, width=5):
    sem = _free() if sem is None else sem
    sem[x0, 100 - width:100 + width, :] = label
    return sem


def test_one_voxel_shift_passes_depth_but_fails_class():
    gt = _wall(150, Occ3D.CAR)
    m = RayIoU()
    m.update(_wall(151, Occ3D.TRUCK), gt, LIDAR)
    r = m.compute()
    assert r["per_class"]["car"] == {"@1": 0.0, "@2": 0.0, "@4": 0.0}
    assert r["RayIoU"] == 0.0  # car and truck are 0, every other class NaN
    m.reset()
    m.update(_wall(151, Occ3D.CAR), gt, LIDAR)  # same class, 0.4 m further: within 1 m
    one = m.compute()["per_class"]["car"]
    # Rays grazing the wall's edges hit one wall but not the other, so IoU < 1; every ray that
    # hits both is within 1 m, so all thresholds agree.
    assert one["@1"] == one["@2"] == one["@4"] > 0.8
    m.reset()
    m.update(_wall(153, Occ3D.CAR), gt, LIDAR)  # 1.2 m further: (almost) all fail 1 m only
    three = m.compute()["per_class"]["car"]
    assert three["@1"] < 0.1 and three["@2"] == three["@4"] > 0.7


def test_labels_above_free_count_as_occupied():
    gt = _wall(120, 255, _wall(150, Occ3D.CAR), width=20)  # an "ignore" wall in front of the cars
    m = RayIoU()
    m.update(_wall(150, Occ3D.CAR), gt, LIDAR)
    r = m.compute()
    assert r["gt_rays"]["car"] == 0  # GT rays stop on the 255 voxels, which belong to no class
    assert r["per_class"]["car"]["@4"] == 0.0


def test_strict_depth_threshold_and_pooling():
    m = RayIoU()
    car = int(Occ3D.CAR)
    gl = torch.tensor([car, car, FREE])
    gd = torch.tensor([10.0, 10.0, 5.0])
    m.score(torch.tensor([car, car, car]), torch.tensor([11.0, 10.5, 5.0]), gl, gd)
    r = m.compute()
    assert r["per_class"]["car"]["@1"] == pytest.approx(1 / 3)  # error exactly 1.0 is not < 1
    assert r["per_class"]["car"]["@2"] == 1.0  # the GT-free ray is excluded, never penalised
    m.score(torch.tensor([FREE]), torch.tensor([3.0]), torch.tensor([car]), torch.tensor([3.0]))
    assert m.compute()["per_class"]["car"]["@2"] == pytest.approx(2 / 3)  # pooled counts, not a mean


def test_gt_against_itself_is_one(occ3d_frame_path, mini_infos_path):
    sem = load_labels(occ3d_frame_path).semantics
    scene = next(iter(_mini_scenes(mini_infos_path).values()))
    origins = ray_origins(5, *_poses(scene))
    m = RayIoU()
    m.update(sem, sem, origins)
    r = m.compute()
    assert r["RayIoU"] == r["RayIoU@1"] == r["RayIoU@2"] == r["RayIoU@4"] == 1.0
    for name, per in r["per_class"].items():
        if r["gt_rays"][name]:
            assert set(per.values()) == {1.0}


def test_scoring_matches_calc_rayiou_on_real_frames(occ3d_frame_paths, rng):
    rays = ray_directions()
    origins = np.array([LIDAR[0], [4.0, -3.0, 1.8]])
    m = RayIoU(backend="numba")
    pcd_pred, pcd_gt = [], []
    for p in occ3d_frame_paths:
        gt = load_labels(p).semantics
        pred = np.roll(gt, 1, axis=int(rng.integers(0, 3)))
        pred[rng.random(gt.shape) < 0.02] = Occ3D.CAR
        m.update(pred, gt, origins)
        rows = []
        for sem in (pred, gt):
            h = cast(sem != FREE, origins, rays, backend="numba")
            v = h.voxel.numpy()
            rows.append(np.stack([sem[v[:, 0], v[:, 1], v[:, 2]].astype(np.float32), h.depth.numpy()], 1))
        valid = rows[1][:, 0].astype(np.int32) != FREE
        pcd_pred.append(rows[0][valid])
        pcd_gt.append(rows[1][valid])
    ref = calc_rayiou(pcd_pred, pcd_gt)
    r = m.compute()
    np.testing.assert_array_equal(np.array(r["iou_matrix"]), ref)
    assert r["RayIoU"] == float(np.nanmean(ref))
    assert r["RayIoU@2"] == float(np.nanmean(ref[1]))


def test_torch_path_equals_numba_on_real_frames(occ3d_frame_paths, one_thread):
    origins = np.array([LIDAR[0], [-20.0, 10.0, 2.2]])
    for p in occ3d_frame_paths:
        sem = load_labels(p).semantics
        a = cast(sem != FREE, origins, ray_directions(), backend="numba")
        b = cast(torch.from_numpy(sem != FREE), origins, ray_directions(), backend="torch")
        assert torch.equal(a.depth, b.depth) and torch.equal(a.voxel, b.voxel)


def test_bad_inputs():
    m = RayIoU()
    with pytest.raises(DataError, match="origins"):
        m.update(_free(), _free(), np.zeros((0, 3)), source="tok")
    with pytest.raises(DataError, match="tok.*outside"):
        bad = _free()
        bad[1, 2, 3] = 40
        m.update(bad, _free(), LIDAR, source="tok")
    with pytest.raises(ValueError, match="isotropic"):
        from occ4d.core import GridSpec

        voxel_space(LIDAR, ray_directions(), GridSpec("g", (4, 4, 4), (0.1, 0.1, 0.2), (0, 0, 0)))


@pytest.mark.gpu
def test_cuda_path_equals_cpu(occ3d_frame_path, mini_infos_path):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    sem = load_labels(occ3d_frame_path).semantics
    scene = next(iter(_mini_scenes(mini_infos_path).values()))
    origins = ray_origins(3, *_poses(scene))
    pred = np.roll(sem, 2, axis=1)
    a, b = RayIoU(backend="numba"), RayIoU(backend="torch")
    a.update(pred, sem, origins)
    b.update(torch.from_numpy(pred).cuda(), torch.from_numpy(sem).cuda(), origins)
    assert_same(a.compute(), b.compute())
