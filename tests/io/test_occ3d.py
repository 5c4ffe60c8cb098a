"""Occ3D labels.npz: round trip, the real layout, and every kind of bad file."""

from __future__ import annotations

import numpy as np
import pytest

from occ4d.core import OCC3D, DataError, Frame
from occ4d.data.index import FrameRecord, load_frame
from occ4d.io.atomic import save_npz
from occ4d.io.occ3d import load_labels, save_labels

GOOD = {
    "semantics": np.full(OCC3D.shape, 17, np.uint8),
    "mask_lidar": np.ones(OCC3D.shape, np.uint8),
    "mask_camera": np.zeros(OCC3D.shape, np.uint8),
}


def test_round_trip_and_reproducible_bytes(tmp_path, rng):
    sem = rng.integers(0, 18, OCC3D.shape, dtype=np.uint8)
    f = Frame(sem, mask_camera=rng.random(OCC3D.shape) < 0.5, mask_lidar=None)
    save_labels(tmp_path / "a" / "labels.npz", f)
    back = load_labels(tmp_path / "a" / "labels.npz")
    np.testing.assert_array_equal(back.semantics, sem)
    np.testing.assert_array_equal(back.mask_camera, f.mask_camera)
    assert back.mask_lidar.all() and back.token == "a"  # absent masks are written as all-observed
    with np.load(tmp_path / "a" / "labels.npz") as z:  # the real layout: three uint8 arrays
        assert sorted(z.files) == ["mask_camera", "mask_lidar", "semantics"]
        assert all(z[k].dtype == np.uint8 and z[k].shape == OCC3D.shape for k in z.files)
    first = (tmp_path / "a" / "labels.npz").read_bytes()
    save_labels(tmp_path / "a" / "labels.npz", f)
    assert (tmp_path / "a" / "labels.npz").read_bytes() == first


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"semantics": np.full((200, 200, 15), 17, np.uint8)}, "semantics must have shape"),
        ({"semantics": np.full(OCC3D.shape, 17.0, np.float32)}, "integer array"),
        ({"semantics": np.full(OCC3D.shape, 18, np.uint8)}, "class id 18 outside 0..17"),
        ({"semantics": np.full(OCC3D.shape, -1, np.int16)}, "class id -1"),
        ({"mask_camera": np.full(OCC3D.shape, 2, np.uint8)}, "mask_camera must hold only 0 and 1"),
        ({"mask_lidar": np.ones((200, 200), np.uint8)}, "mask_lidar must have shape"),
    ],
)
def test_bad_arrays(tmp_path, change, message):
    save_npz(tmp_path / "labels.npz", True, **{**GOOD, **change})
    with pytest.raises(DataError, match=message) as err:
        load_labels(tmp_path / "labels.npz")
    assert str(tmp_path / "labels.npz") in str(err.value)


def test_missing_truncated_and_not_npz(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        load_labels(tmp_path / "none.npz")
    save_npz(tmp_path / "m.npz", True, mask_camera=GOOD["mask_camera"])
    with pytest.raises(DataError, match=r"missing key\(s\) \['semantics'\]"):
        load_labels(tmp_path / "m.npz")
    save_npz(tmp_path / "g.npz", True, **GOOD)
    data = (tmp_path / "g.npz").read_bytes()
    for cut in (len(data) // 2, len(data) - 30, 10):
        (tmp_path / "t.npz").write_bytes(data[:cut])
        with pytest.raises(DataError, match="truncated"):
            load_labels(tmp_path / "t.npz")
    (tmp_path / "x.npz").write_text("not a zip")
    with pytest.raises(DataError, match="truncated"):
        load_labels(tmp_path / "x.npz")


@pytest.mark.parametrize(
    ("pose", "message"),
    [
        (np.full((4, 4), np.nan), "NaN"),
        (np.diag([1.0, 1.0, 2.0, 1.0]), "not rigid"),
        (np.diag([1.0, 1.0, -1.0, 1.0]), "not rigid"),  # a reflection
        (np.eye(3), "shape \\(4, 4\\)"),
    ],
)
def test_bad_pose_in_record(tmp_path, pose, message):
    save_npz(tmp_path / "labels.npz", True, **GOOD)
    rec = FrameRecord("t", "s", 0, tmp_path / "labels.npz", pose, np.eye(4))
    with pytest.raises(DataError, match=message) as err:
        load_frame(rec)
    assert "labels.npz" in str(err.value)
