import numpy as np
import pytest

from occ4d.core import (
    OCC3D,
    OCC3D_VOCAB,
    OPENOCC_VOCAB,
    SURROUNDOCC_VOCAB,
    WAYMO_VOCAB,
    Camera,
    CameraRig,
    Clip,
    DataError,
    Frame,
    Occ3D,
    OpenOcc,
    Trajectory,
    check_pose,
    convert_labels,
    make_pose,
    matrix_to_quat,
    quat_to_matrix,
    yaw_pose,
)


def test_grid_centres_match_protocol():
    xs = OCC3D.axis_centres(0)
    zs = OCC3D.axis_centres(2)
    assert xs[0] == pytest.approx(-39.8) and xs[-1] == pytest.approx(39.8)
    assert zs[0] == pytest.approx(-0.8) and zs[-1] == pytest.approx(5.2)
    assert OCC3D.range_max == pytest.approx((40.0, 40.0, 5.4))
    idx, inside = OCC3D.point_to_index(np.array([[0.0, 0.0, 0.0], [-40.0, -40.0, -1.0], [40.0, 0, 0], [-40.01, 0, 0]]))
    assert idx[0].tolist() == [100, 100, 2]
    assert idx[1].tolist() == [0, 0, 0]
    assert inside.tolist() == [True, True, False, False]


def test_vocab_mapping_matches_protocol_table():
    ids = np.arange(17, dtype=np.uint8)
    occ = convert_labels(ids, OPENOCC_VOCAB, OCC3D_VOCAB)
    assert occ[OpenOcc.CAR] == Occ3D.CAR and occ[OpenOcc.BARRIER] == Occ3D.BARRIER
    assert occ[OpenOcc.FREE] == Occ3D.FREE and occ[OpenOcc.TRUCK] == Occ3D.TRUCK
    np.testing.assert_array_equal(convert_labels(occ, OCC3D_VOCAB, OPENOCC_VOCAB), ids)
    # Occ3D "others" has no OpenOcc counterpart.
    assert convert_labels(np.array([0], np.uint8), OCC3D_VOCAB, OPENOCC_VOCAB)[0] == 255
    # SurroundOcc ids 1..16 equal Occ3D's, and its empty (0) is Occ3D free.
    s = convert_labels(np.arange(17, dtype=np.uint8), SURROUNDOCC_VOCAB, OCC3D_VOCAB)
    assert s[0] == Occ3D.FREE and s[1:].tolist() == list(range(1, 17))
    assert OCC3D_VOCAB.free == 17 and OPENOCC_VOCAB.free == 16 and WAYMO_VOCAB.free == 15
    assert len(OCC3D_VOCAB.semantic_ids) == 17


def test_quaternion_roundtrip_and_lidar_pose():
    q = np.array([0.70675, -0.01530, 0.01740, -0.70708])
    r = quat_to_matrix(q)
    assert np.allclose(r @ r.T, np.eye(3))
    np.testing.assert_allclose(matrix_to_quat(r), q / np.linalg.norm(q), atol=1e-9)
    # LiDAR +x is ego -y and LiDAR +y is ego +x (PROTOCOLS §1.1).
    assert np.allclose(r @ [1, 0, 0], [0, -1, 0], atol=0.05)
    assert np.allclose(r @ [0, 1, 0], [1, 0, 0], atol=0.05)


def test_check_pose_rejects_nan_and_non_rigid():
    with pytest.raises(DataError, match="NaN"):
        check_pose(np.full((4, 4), np.nan), "x.pkl")
    bad = np.eye(4)
    bad[0, 0] = 2
    with pytest.raises(DataError, match="x.pkl: .*not rigid"):
        check_pose(bad, "x.pkl")


def test_trajectory_from_poses_and_back():
    poses = np.stack([yaw_pose(10 + t, 5 + 0.5 * t * t, 0.1 * t) for t in range(6)])
    tr = Trajectory.from_poses(poses, ref=2)
    assert np.allclose(tr.xyyaw[2], 0)
    back = tr.to_poses(poses[2])
    np.testing.assert_allclose(back, poses, atol=1e-9)
    # A straight drive at 5 m/s in the ego's own heading.
    straight = Trajectory(np.stack([np.arange(4) * 2.5, np.zeros(4), np.zeros(4)], 1))
    np.testing.assert_allclose(straight.speed, 5.0)
    np.testing.assert_allclose(straight.displacements(), [[2.5, 0]] * 3)
    with pytest.raises(DataError, match="NaN"):
        Trajectory(np.array([[0.0, np.nan, 0.0]]))


def test_frame_validation_messages():
    sem = np.full(OCC3D.shape, 17, np.uint8)
    f = Frame(sem, mask_camera=np.ones(OCC3D.shape, np.uint8), source="a/labels.npz").validate()
    assert f.mask_camera.dtype == bool
    with pytest.raises(DataError, match="a/labels.npz: semantics must have shape"):
        Frame(sem[:10], source="a/labels.npz").validate()
    bad = sem.copy()
    bad[0, 0, 0] = 18
    with pytest.raises(DataError, match="class id 18 outside 0..17"):
        Frame(bad, source="a/labels.npz").validate()
    with pytest.raises(DataError, match="integer"):
        Frame(sem.astype(np.float32), source="a").validate()
    with pytest.raises(DataError, match="mask_camera must hold only 0 and 1"):
        Frame(sem, mask_camera=np.full(OCC3D.shape, 2, np.uint8), source="a").validate()
    # int32 semantics (OpenOcc v2 fixture dtype) are accepted and stored as uint8.
    g = Frame(sem.astype(np.int32) - 1, vocab=OPENOCC_VOCAB).validate()
    assert g.semantics.dtype == np.uint8


def test_clip_trajectory_and_checks():
    frames = [Frame(np.full(OCC3D.shape, 17, np.uint8), ego2global=yaw_pose(2.0 * t, 0, 0), timestamp=t * 500_000,
                    scene="s") for t in range(4)]
    clip = Clip(frames, current=1).validate()
    np.testing.assert_allclose(clip.trajectory.xyyaw[:, 0], [-2, 0, 2, 4])
    assert clip.semantics.shape == (4, 200, 200, 16)
    frames[2].scene = "other"
    with pytest.raises(DataError, match="crosses scenes"):
        Clip(frames).validate()


def test_camera_projection_front_camera():
    # A forward-looking camera 1.5 m up: camera z = ego x, camera x = -ego y, camera y = -ego z.
    rot = np.array([[0, 0, 1], [-1, 0, 0], [0, -1, 0]], dtype=float)
    cam = Camera("CAM_FRONT", np.array([[500, 0, 400], [0, 500, 225], [0, 0, 1.0]]), make_pose([1.5, 0, 1.5], rot), 800, 450)
    rig = CameraRig((cam,)).validate()
    uv, depth, inside = rig["CAM_FRONT"].project(np.array([[11.5, 0, 1.5], [-5, 0, 1.5]]))
    assert np.allclose(uv[0], [400, 225]) and depth[0] == pytest.approx(10)
    assert inside.tolist() == [True, False]
    small = cam.scaled(0.5, 0.5)
    uv2, _, _ = small.project(np.array([[11.5, 0, 1.5]]))
    assert np.allclose(uv2[0], [200, 112.5])


def test_trajectory_reference_row_is_exactly_zero():
    poses = np.stack([yaw_pose(3.1 * t, -1.7 * t, 0.37 * t + 0.2) for t in range(5)])
    tr = Trajectory.from_poses(poses, ref=3)
    assert tr.xyyaw[3].tolist() == [0.0, 0.0, 0.0]
