"""Single-file clips: round trip, conversion to a core Clip, and every kind of bad file."""

from __future__ import annotations

import json

import numpy as np
import pytest

from occ4d.core import OCC3D, OCC3D_VOCAB, DataError, Trajectory, yaw_pose
from occ4d.io.atomic import save_npz
from occ4d.io.clipfile import load_clip, save_clip


def make(rng, t=3):
    sem = np.full((t, *OCC3D.shape), OCC3D_VOCAB.free, np.uint8)
    sem[:, 50:150, 20:180, :4] = rng.integers(0, OCC3D_VOCAB.num_classes, (t, 100, 160, 4), dtype=np.uint8)
    poses = np.stack([yaw_pose(3.0 * i, 0.2 * i * i, 0.1 * i) for i in range(t)])
    traj = Trajectory.from_poses(poses, 1).xyyaw
    return sem, traj, rng.random((t, *OCC3D.shape)) < 0.5


def test_round_trip_and_to_clip(tmp_path, rng):
    sem, traj, mask = make(rng)
    save_clip(tmp_path / "c.npz", sem, traj, current=1, mask_camera=mask, meta={"seed": 3, "model": "x"})
    c = load_clip(tmp_path / "c.npz")
    np.testing.assert_array_equal(c.semantics, sem)
    np.testing.assert_array_equal(c.mask_camera, mask)
    np.testing.assert_allclose(c.trajectory.xyyaw, traj)
    assert c.meta == {"seed": 3, "model": "x"} and c.current == 1 and c.hz == 2.0
    assert c.vocab is OCC3D_VOCAB and c.grid == OCC3D and c.mask_camera.dtype == bool
    clip = c.to_clip(scene="gen", ref_pose=yaw_pose(10, 20, 0.5))
    assert len(clip) == 3 and clip.current == 1
    assert [f.timestamp for f in clip.frames] == [0, 500_000, 1_000_000]
    np.testing.assert_allclose(clip.trajectory.xyyaw, traj, atol=1e-9)
    np.testing.assert_allclose(clip.poses[1], yaw_pose(10, 20, 0.5), atol=1e-12)
    # the same clip gives the same bytes; no mask means no mask entry
    first = (tmp_path / "c.npz").read_bytes()
    save_clip(tmp_path / "c.npz", sem, traj, current=1, mask_camera=mask, meta={"seed": 3, "model": "x"})
    assert (tmp_path / "c.npz").read_bytes() == first
    save_clip(tmp_path / "d.npz", sem, Trajectory(traj), current=1)
    assert load_clip(tmp_path / "d.npz").mask_camera is None


def write_raw(path, sem, traj, header=None, **extra):
    head = {"format": "occ4d-clip", "version": 1, "vocab": "occ3d", "grid": "occ3d", "hz": 2.0, "current": 0}
    head.update(header or {})
    save_npz(path, True, semantics=sem, trajectory=traj, header=np.array(json.dumps(head)), **extra)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s, t: (s[:, :100], t, {}, {}), "shape"),
        (lambda s, t: (s.astype(np.int32), t, {}, {}), "must be uint8"),
        (lambda s, t: (np.where(s == 5, 18, s).astype(np.uint8), t, {}, {}), "class id 18"),
        (lambda s, t: (s, t[:2], {}, {}), "trajectory must have shape"),
        (lambda s, t: (s, np.where(np.arange(3)[:, None] == 2, np.nan, t), {}, {}), "NaN"),
        (lambda s, t: (s, t + 1.0, {}, {}), "must be \\(0, 0, 0\\)"),
        (lambda s, t: (s, t, {"format": "other"}, {}), "not an occ4d-clip"),
        (lambda s, t: (s, t, {"vocab": "nope"}, {}), "unknown vocabulary"),
        (lambda s, t: (s, t, {"current": 7}, {}), "current must be"),
        (lambda s, t: (s, t, {"hz": -1}, {}), "hz must be"),
        (lambda s, t: (s, t, {}, {"mask_camera": np.full(s.shape, 2, np.uint8)}), "only 0 and 1"),
        (lambda s, t: (s, t, {}, {"meta": np.array("{not json")}), "meta is not valid JSON"),
    ],
)
def test_bad_clip_files(tmp_path, rng, edit, message):
    sem, traj, _ = make(rng)
    traj = Trajectory.from_poses(Trajectory(traj).to_poses(), 0).xyyaw
    s, t, head, extra = edit(sem, traj)
    write_raw(tmp_path / "bad.npz", s, t, head, **extra)
    with pytest.raises(DataError, match=message) as err:
        load_clip(tmp_path / "bad.npz")
    assert "bad.npz" in str(err.value)


def test_truncated_missing_and_unwritable(tmp_path, rng):
    sem, traj, _ = make(rng)
    save_clip(tmp_path / "c.npz", sem, traj, current=1)
    data = (tmp_path / "c.npz").read_bytes()
    (tmp_path / "t.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="truncated"):
        load_clip(tmp_path / "t.npz")
    save_npz(tmp_path / "m.npz", True, semantics=sem)
    with pytest.raises(DataError, match="missing key"):
        load_clip(tmp_path / "m.npz")
    with pytest.raises(DataError, match="file not found"):
        load_clip(tmp_path / "none.npz")
    with pytest.raises(DataError, match="JSON-serialisable"):
        save_clip(tmp_path / "x.npz", sem, traj, current=1, meta={"a": object()})
    with pytest.raises(DataError, match="NaN"):
        save_clip(tmp_path / "x.npz", sem, np.full((3, 3), np.nan), current=1)
    assert not (tmp_path / "x.npz").exists()
