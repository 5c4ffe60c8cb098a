"""Error panels and captions: all correct when prediction equals GT, exactly the changed voxels otherwise."""

from __future__ import annotations

import numpy as np
import pytest

from occ4d.core.vocab import OCC3D_VOCAB, Occ3D
from occ4d.io.occ3d import load_labels
from occ4d.vis.compare import (
    CORRECT,
    ERROR_COLOURS,
    NONE,
    WRONG,
    caption,
    compare_image,
    error_3d_inputs,
    error_grid,
    error_topdown,
    frame_miou,
    time_strip,
)
from occ4d.vis.topdown import image_to_grid_index

FREE = OCC3D_VOCAB.free


def red_pixels(rgb: np.ndarray) -> np.ndarray:
    return np.all(rgb == ERROR_COLOURS[WRONG], axis=-1)


def test_error_grid_cases():
    gt = np.full((3, 3, 2), FREE, np.uint8)
    pred = gt.copy()
    gt[0, 0, 0] = pred[0, 0, 0] = Occ3D.CAR  # correct
    gt[1, 1, 0], pred[1, 1, 0] = Occ3D.CAR, Occ3D.BUS  # wrong class
    gt[2, 2, 1] = Occ3D.PEDESTRIAN  # missed
    pred[0, 2, 1] = Occ3D.MANMADE  # false alarm
    err = error_grid(gt, pred)
    assert err[0, 0, 0] == CORRECT
    assert err[1, 1, 0] == err[2, 2, 1] == err[0, 2, 1] == WRONG
    assert (err == NONE).sum() == err.size - 4
    mask = np.ones(gt.shape, np.uint8)
    mask[1, 1, 0] = 0
    assert error_grid(gt, pred, mask=mask)[1, 1, 0] == NONE
    with pytest.raises(ValueError, match="equal"):
        error_grid(gt, pred[:2])


@pytest.fixture
def frame(occ3d_frame_path):
    return load_labels(occ3d_frame_path)


def test_identical_prediction_is_all_correct(frame):
    gt = frame.semantics
    rgb = error_topdown(gt, gt.copy())
    assert not red_pixels(rgb).any()
    assert np.all(rgb == ERROR_COLOURS[CORRECT], axis=-1).sum() == int((gt != FREE).any(axis=2).sum())
    assert frame_miou(gt, gt, mask=frame.mask_camera) == pytest.approx(100.0)
    assert "mIoU 100.00 %" in caption(gt, gt, mask=frame.mask_camera)
    codes, palette = error_3d_inputs(gt, gt)
    assert not (codes == 1).any() and (codes == 0).sum() == int((gt != FREE).sum())


def test_error_panel_shows_exactly_the_changed_voxels(frame, rng):
    gt = frame.semantics
    pred = gt.copy()
    flat = rng.choice(gt.size, size=300, replace=False)
    idx = np.unravel_index(flat, gt.shape)
    pred[idx] = (gt[idx] + 1 + rng.integers(0, 16, size=300)) % OCC3D_VOCAB.num_classes
    changed = pred != gt
    rgb = error_topdown(gt, pred)
    rows, cols = np.nonzero(red_pixels(rgb))
    xs, ys = image_to_grid_index(rows, cols, gt.shape[:2])
    shown = {(int(a), int(b)) for a, b in zip(xs, ys, strict=True)}
    expected = {(int(a), int(b)) for a, b in zip(*np.nonzero(changed.any(axis=2)), strict=True)}
    assert shown == expected
    assert np.array_equal(error_grid(gt, pred) == WRONG, changed)
    codes, _ = error_3d_inputs(gt, pred)  # what the 3D error panel draws: wrong exactly where changed
    assert np.array_equal(codes == 1, changed)
    assert np.array_equal(codes == 0, (gt == pred) & (gt != FREE))
    # Inside the camera mask only the changes there count.
    inside = changed & frame.mask_camera
    assert np.array_equal(error_grid(gt, pred, mask=frame.mask_camera) == WRONG, inside)
    text = caption(gt, pred, mask=frame.mask_camera)
    assert f"wrong {int(inside.sum()):,} of" in text
    assert frame_miou(gt, pred, mask=frame.mask_camera) < 100.0


def test_side_by_side_and_time_strip(frame):
    gt = frame.semantics
    pred = gt.copy()
    pred[90:110, 90:110, 0:3] = Occ3D.CAR
    img = compare_image(gt, pred, scale=1)
    assert img.shape[1] == 3 * 200 + 2 * 4 and img.shape[0] > 200
    assert red_pixels(img[:, 2 * 204:]).sum() > 0 and red_pixels(img[:, :200]).sum() == 0
    clip = np.stack([gt, pred, gt])
    strip = time_strip(clip, hz=2.0, current=1)
    assert strip.shape[1] == 3 * 200 + 2 * 4
    rows3 = time_strip(clip, gt=np.stack([gt, gt, gt]), current=1)
    assert rows3.shape[0] > 3 * 200
    errors_row = rows3[-200:]
    assert red_pixels(errors_row[:, 204:404]).any() and not red_pixels(errors_row[:, :200]).any()


def test_3d_error_panel(frame):
    from occ4d.vis.voxels import VoxelRenderer

    gt = frame.semantics
    pred = gt.copy()
    pred[100:110, 100:110, 5:8] = Occ3D.TRUCK
    with VoxelRenderer(240, 200) as r:
        img = compare_image(gt, pred, mode="3d", view="bev", renderer=r)
        same = compare_image(gt, gt.copy(), mode="3d", view="bev", renderer=r)
    w = (img.shape[1] - 8) // 3
    error_panel = img[:, 2 * (w + 4):]
    assert red_pixels(error_panel).sum() > 20
    assert red_pixels(img[:, :w]).sum() == 0
    # Seen from above, the changed block is the only red: it lies around the picture's centre.
    rows, cols = np.nonzero(red_pixels(error_panel))
    assert abs(cols.mean() - w / 2) < 0.1 * w and abs(rows.mean() - (error_panel.shape[0] / 2)) < 0.2 * w
    # A prediction equal to the ground truth: no red at all, and the panel is not empty.
    assert red_pixels(same).sum() == 0
    assert np.all(same[:, 2 * (w + 4):] == ERROR_COLOURS[CORRECT], axis=-1).sum() > 0.05 * w * w
