"""Clip videos: GIF and MP4 written atomically, read back with the right frames, path and time drawn."""

from __future__ import annotations

import numpy as np
import pytest

from occ4d.io.occ3d import load_labels
from occ4d.vis.layout import FUTURE_COLOUR
from occ4d.vis.video import clip_frames, frame_paths, read_video, time_label, write_video


@pytest.fixture
def clip(occ3d_frame_path):
    sem = load_labels(occ3d_frame_path).semantics
    # The world slides backwards as the ego drives 1.6 m (4 voxels) forward per frame.
    semantics = np.stack([np.roll(sem, -4 * t, axis=0) for t in range(5)])
    traj = np.array([[1.6 * (t - 1), 0.0, 0.0] for t in range(5)])
    return semantics, traj


def test_frame_paths_are_in_each_frames_own_ego_frame():
    traj = np.array([[0.0, 0.0, 0.0], [2.0, 0.0, np.pi / 2], [2.0, 2.0, np.pi / 2]])
    paths = frame_paths(traj, 3)
    assert np.allclose(paths[0], traj[:, :2])
    # Seen from frame 1 (at (2, 0) facing +y), frame 2 is 2 m straight ahead, frame 0 2 m to the right.
    assert np.allclose(paths[1], [[0.0, 2.0], [0.0, 0.0], [2.0, 0.0]], atol=1e-9)
    assert frame_paths(None, 3) == [None, None, None]
    with pytest.raises(ValueError, match="rows"):
        frame_paths(traj, 4)


def test_time_label():
    assert time_label(0, 5, 1, 2.0) == "t = -0.5 s   frame 1/5   (history)"
    assert time_label(3, 5, 1, 2.0).startswith("t = +1.0 s")


@pytest.mark.parametrize("suffix", [".gif", ".mp4"])
def test_topdown_video_round_trip(clip, tmp_path, suffix):
    semantics, traj = clip
    out = tmp_path / f"clip{suffix}"
    n = write_video(out, clip_frames(semantics, trajectory=traj, current=1, scale=2), fps=2)
    assert n == 5 and out.is_file()
    assert not list(tmp_path.glob(".*.tmp"))  # the atomic writer left nothing behind
    frames = read_video(out)
    assert frames.shape[0] == 5 and frames.shape[1] % 16 == 0 and frames.shape[2] % 16 == 0
    assert frames.shape[2] >= 400
    # Consecutive frames differ (the scene moves and the time text changes).
    assert all(np.abs(a.astype(int) - b).mean() > 1 for a, b in zip(frames[:-1], frames[1:], strict=True))
    if suffix == ".gif":  # lossless palette: the future path is drawn in exactly its colour
        red = np.all(frames == FUTURE_COLOUR, axis=-1).sum(axis=(1, 2))
        assert red[0] > 0 and red[-1] < red[0]  # the last frame has no future left, only its own dot


def test_comparison_video_frames_draw_the_path(clip):
    semantics, traj = clip
    pred = semantics.copy()
    pred[:, 150:160, 20:30, 2:5] = 4
    frames = list(clip_frames(pred, trajectory=traj, current=1, scale=1, gt=semantics))
    assert len(frames) == 5
    w = 200  # each panel is one pixel per voxel column, panels 4 pixels apart

    def future_rows(pic: np.ndarray, panel: int) -> np.ndarray:
        return np.nonzero(np.all(pic[:, panel * (w + 4):panel * (w + 4) + w] == FUTURE_COLOUR, axis=-1))[0]

    nose_only = future_rows(frames[-1], 0)  # the last frame has no future pose: the ego's nose alone
    assert len(nose_only) > 0
    for t, pic in enumerate(frames):
        assert len(future_rows(pic, 1)) > 0 and len(future_rows(pic, 2)) == 0  # error panel: outcomes only
        assert np.array_equal(future_rows(pic, 0), future_rows(pic, 1))  # the same path on both panels
        if t <= 1:  # the last pose is >= 4.8 m ahead, the nose 2.5 m: the path reaches above the nose
            assert future_rows(pic, 0).min() <= nose_only.min() - 3


def test_3d_video_and_errors(clip, tmp_path):
    semantics, traj = clip
    out = tmp_path / "clip3d.mp4"
    n = write_video(out, clip_frames(semantics[:3], trajectory=traj[:3], mode="3d", view="chase",
                                     size=(320, 240)), fps=4)
    t, h, w = read_video(out).shape[:3]
    assert (n, t, w) == (3, 3, 320) and 240 < h <= 240 + 32 and h % 16 == 0  # render + caption bar
    with pytest.raises(ValueError, match="must end in"):
        write_video(tmp_path / "clip.avi", iter([np.zeros((16, 16, 3), np.uint8)]))
    with pytest.raises(ValueError, match="a clip must be"):
        next(clip_frames(semantics[0]))
