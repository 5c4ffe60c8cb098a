"""Format readers and writers: round trips, each format's conventions, bad files, the real OpenOcc frame."""

from __future__ import annotations

import numpy as np
import pytest

from occ4d.core import (
    IGNORE,
    OCC3D,
    OCC3D_VOCAB,
    OPENOCC_VOCAB,
    SURROUNDOCC_VOCAB,
    WAYMO_VOCAB,
    DataError,
    Frame,
    Occ3D,
    OpenOcc,
    SurroundOcc,
    Waymo,
)
from occ4d.core.grid import OPENOCC_V1, OPENOCCUPANCY, SURROUNDOCC, WAYMO_04
from occ4d.core.vocab import OPENOCCUPANCY_VOCAB
from occ4d.io.atomic import save_npz
from occ4d.io.formats import FORMATS, detect_format, read_frame, write_frame
from occ4d.io.openocc import save_npy


def random_frame(rng, fmt, ignore=False, flow=False, masks=False):
    s = FORMATS[fmt]
    v, g = s.vocab, s.grid
    sem = rng.integers(0, v.num_classes, g.shape, dtype=np.uint8)
    sem[rng.random(g.shape) < (0.99 if g.num_voxels > 10**6 else 0.8)] = v.free  # keep big grids quick
    if ignore:
        sem[rng.random(g.shape) < 0.01] = IGNORE
    f = Frame(sem, vocab=v, grid=g)
    if flow:
        f.flow = rng.normal(size=(*g.shape, 2)).astype(np.float32)
    if masks:
        f.mask_camera = rng.random(g.shape) < 0.3
        f.mask_lidar = rng.random(g.shape) < 0.5
    return f


@pytest.mark.parametrize(
    ("fmt", "kw"),
    [
        ("occ3d", {"masks": True}),
        ("openocc", {"flow": True}),
        ("openocc", {}),
        ("openocc_v1", {}),
        ("surroundocc", {"ignore": True}),
        ("openoccupancy", {"ignore": True}),
        ("waymo", {"masks": True}),
    ],
)
def test_every_writer_round_trips(tmp_path, rng, fmt, kw):
    frame = random_frame(rng, fmt, **kw)
    path = tmp_path / f"f{FORMATS[fmt].suffix}"
    write_frame(path, frame, fmt)
    assert detect_format(path) == fmt
    back = read_frame(path, fmt)
    assert back.vocab == frame.vocab and back.grid == frame.grid
    np.testing.assert_array_equal(back.semantics, frame.semantics)
    for name in ("mask_camera", "mask_lidar", "flow"):
        if getattr(frame, name) is not None:
            np.testing.assert_array_equal(getattr(back, name), getattr(frame, name))
    if fmt == "openocc" and not kw:
        assert back.flow is None


def test_writers_refuse_frames_of_another_format(tmp_path, rng):
    occ = random_frame(rng, "occ3d")
    for fmt in ("openocc", "openocc_v1", "surroundocc", "openoccupancy", "waymo"):
        with pytest.raises(DataError, match="convert it first"):
            write_frame(tmp_path / f"x{FORMATS[fmt].suffix}", occ, fmt)
    assert list(tmp_path.iterdir()) == []


def test_real_openocc_frame_int32(openocc_frame_path):
    with np.load(openocc_frame_path) as z:
        raw = z["semantics"]
    assert raw.dtype == np.int32
    f = read_frame(openocc_frame_path, "openocc")
    assert f.vocab == OPENOCC_VOCAB and f.semantics.dtype == np.uint8
    assert f.flow.shape == (200, 200, 16, 2) and f.flow.dtype == np.float32
    np.testing.assert_array_equal(f.semantics, raw)
    assert detect_format(openocc_frame_path) == "openocc"
    assert 0.5 < float((f.semantics == OpenOcc.FREE).mean()) < 1.0


def test_openocc_v1_flat_index_convention(tmp_path):
    x, y, z = 3, 150, 7
    save_npy(tmp_path / "v1.npy", np.array([[z * 40000 + y * 200 + x, OpenOcc.BUS], [0, OpenOcc.CAR]]))
    f = read_frame(tmp_path / "v1.npy", "openocc_v1")
    assert f.grid == OPENOCC_V1 and f.grid.frame == "lidar"
    assert f.semantics[x, y, z] == OpenOcc.BUS and f.semantics[0, 0, 0] == OpenOcc.CAR
    assert (f.semantics != OpenOcc.FREE).sum() == 2
    save_npy(tmp_path / "bad.npy", np.array([[OPENOCC_V1.num_voxels, 1]]))
    with pytest.raises(DataError, match="flat index outside"):
        read_frame(tmp_path / "bad.npy", "openocc_v1")


def test_surroundocc_noise_and_empty(tmp_path):
    table = np.array([[10, 20, 3, SurroundOcc.CAR], [11, 20, 3, 0], [199, 199, 15, SurroundOcc.VEGETATION]])
    save_npy(tmp_path / "s.npy", table.astype(np.float32))  # float tables with integral values are fine
    f = read_frame(tmp_path / "s.npy", "surroundocc")
    assert f.grid == SURROUNDOCC and f.vocab == SURROUNDOCC_VOCAB
    assert f.semantics[10, 20, 3] == SurroundOcc.CAR and f.semantics[11, 20, 3] == IGNORE
    assert f.semantics[199, 199, 15] == SurroundOcc.VEGETATION
    assert (f.semantics == SurroundOcc.EMPTY).sum() == SURROUNDOCC.num_voxels - 3
    for bad, msg in [(np.array([[200, 0, 0, 1]]), "outside the surroundocc grid"),
                     (np.array([[0, 0, 0, 17]]), "class id 17"),
                     (np.array([[0.5, 0, 0, 1]]), "non-integer"),
                     (np.zeros((3, 5)), "must be an \\(N, 4\\)")]:
        save_npy(tmp_path / "b.npy", bad)
        with pytest.raises(DataError, match=msg):
            read_frame(tmp_path / "b.npy", "surroundocc")


def test_openoccupancy_zyx_order_and_majority_vote(tmp_path):
    rows = [
        # [z, y, x, cls]: voxel (x=5, y=6, z=7) gets 5, 5, 3, 3, 9 -> tie 3/5 -> lowest id 3
        [7, 6, 5, 5], [7, 6, 5, 5], [7, 6, 5, 3], [7, 6, 5, 3], [7, 6, 5, 9],
        [1, 2, 3, 7], [1, 2, 3, 7], [1, 2, 3, 0],  # 7 beats noise
        [0, 0, 511, 0], [0, 0, 511, 0], [0, 0, 511, 4],  # noise (255) wins 2:1
    ]
    save_npy(tmp_path / "o.npy", np.array(rows, np.int64))
    f = read_frame(tmp_path / "o.npy", "openoccupancy")
    assert f.grid == OPENOCCUPANCY and f.semantics.shape == (512, 512, 40)
    assert f.semantics[5, 6, 7] == 3 and f.semantics[3, 2, 1] == 7 and f.semantics[511, 0, 0] == IGNORE
    assert (f.semantics != SurroundOcc.EMPTY).sum() == 3
    seven = np.concatenate([np.array(rows)[:, :3], np.zeros((len(rows), 3)), np.array(rows)[:, 3:]], axis=1)
    save_npy(tmp_path / "o7.npy", seven)
    assert detect_format(tmp_path / "o7.npy") == "openoccupancy"
    np.testing.assert_array_equal(read_frame(tmp_path / "o7.npy", "openoccupancy").semantics, f.semantics)
    save_npy(tmp_path / "b.npy", np.array([[40, 0, 0, 1]]))
    with pytest.raises(DataError, match="rows are \\[z, y, x"):
        read_frame(tmp_path / "b.npy", "openoccupancy")


def test_waymo_free_and_masks(tmp_path):
    shape = WAYMO_04.shape
    labels = np.full(shape, 23, np.uint8)
    labels[1, 2, 3] = Waymo.VEHICLE
    infov = np.ones(shape, np.uint8)
    infov[:, :100] = 0
    final = np.zeros(shape, np.uint8)
    final[:, :, :8] = 1
    save_npz(tmp_path / "w.npz", True, voxel_label=labels, origin_voxel_state=np.ones(shape, np.uint8),
             final_voxel_state=final, infov=infov)
    f = read_frame(tmp_path / "w.npz", "waymo")
    assert f.vocab == WAYMO_VOCAB and f.grid == WAYMO_04
    assert f.semantics[1, 2, 3] == Waymo.VEHICLE and (f.semantics == Waymo.FREE).sum() == labels.size - 1
    np.testing.assert_array_equal(f.mask_camera, (final & infov).astype(bool))
    assert f.mask_lidar.all()
    labels[0, 0, 0] = 20  # neither a class nor the file's free value
    save_npz(tmp_path / "b.npz", True, voxel_label=labels, origin_voxel_state=final, final_voxel_state=final,
             infov=final)
    with pytest.raises(DataError, match="class id 20"):
        read_frame(tmp_path / "b.npz", "waymo")
    save_npz(tmp_path / "m.npz", True, voxel_label=labels)
    with pytest.raises(DataError, match="missing key"):
        read_frame(tmp_path / "m.npz", "waymo")


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"semantics": np.zeros((200, 200, 15), np.uint8)}, "shape"),
        ({"semantics": np.zeros((200, 200, 16), np.float32)}, "integer array"),
        ({"semantics": np.full((200, 200, 16), 17, np.int64)}, "class id 17"),
        ({"semantics": np.zeros((200, 200, 16), np.uint8), "flow": np.zeros((200, 200, 16, 3), np.float32)},
         "flow must have shape"),
        ({"semantics": np.zeros((200, 200, 16), np.uint8),
          "flow": np.full((200, 200, 16, 2), np.nan, np.float32)}, "NaN"),
        ({"flow": np.zeros((200, 200, 16, 2), np.float32)}, "missing key"),
    ],
)
def test_bad_openocc_files(tmp_path, arrays, message):
    save_npz(tmp_path / "bad.npz", True, **arrays)
    with pytest.raises(DataError, match=message) as err:
        read_frame(tmp_path / "bad.npz", "openocc")
    assert "bad.npz" in str(err.value)


def test_truncated_files_and_detection_errors(tmp_path, rng):
    write_frame(tmp_path / "s.npy", random_frame(rng, "surroundocc"), "surroundocc")
    data = (tmp_path / "s.npy").read_bytes()
    (tmp_path / "t.npy").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="truncated"):
        read_frame(tmp_path / "t.npy", "surroundocc")
    save_npy(tmp_path / "ambiguous.npy", np.array([[1, 2, 3, 4]]))
    with pytest.raises(DataError, match="pass --from"):
        detect_format(tmp_path / "ambiguous.npy")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(DataError, match="unknown file type"):
        detect_format(tmp_path / "x.txt")
    with pytest.raises(DataError, match="unknown occupancy format"):
        read_frame(tmp_path / "s.npy", "kitti")
    write_frame(tmp_path / "o.npz", random_frame(rng, "occ3d", masks=True), "occ3d")
    assert detect_format(tmp_path / "o.npz") == "occ3d"
    assert OCC3D_VOCAB.free == Occ3D.FREE and OPENOCCUPANCY_VOCAB.free == SurroundOcc.EMPTY and OCC3D.shape
