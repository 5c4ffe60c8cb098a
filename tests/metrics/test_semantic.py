import math

import numpy as np
import pytest
import torch
from metrics_reference import (
    assert_same,
    devkit_miou,
    occupied_iou,
    openoccupancy_eval,
    surroundocc_eval,
)

from occ4d.core import OCC3D, DataError, GridSpec, Occ3D
from occ4d.io.occ3d import load_labels
from occ4d.metrics import Occ3DMIoU, OpenOccupancyMetric, SurroundOccMetric
from occ4d.metrics.common import devkit_round

FREE = int(Occ3D.FREE)
SHAPE = OCC3D.shape


def _grid(fill=FREE):
    return np.full(SHAPE, fill, dtype=np.uint8)


def _noisy(sem, rng, frac=0.2):
    out = sem.copy()
    flip = rng.random(sem.shape) < frac
    out[flip] = rng.integers(0, FREE + 1, int(flip.sum()))
    return out


def test_perfect_prediction_scores_100_on_present_classes():
    gt = _grid()
    gt[:10] = Occ3D.CAR
    gt[10:20] = Occ3D.VEGETATION
    m = Occ3DMIoU(mask="none")
    m.update(gt, gt)
    r = m.compute()
    assert r["mIoU"] == 100.0
    assert r["per_class"]["car"] == 100.0 and r["per_class"]["vegetation"] == 100.0
    assert math.isnan(r["per_class"]["bus"])  # in neither: NaN, not counted
    assert r["IoU_geometry"] == 100.0


def test_no_positives_prediction_only_and_absent_classes():
    gt = _grid()
    gt[:10] = Occ3D.CAR  # car never predicted: IoU 0
    pred = _grid()
    pred[100:110] = Occ3D.BUS  # bus only predicted: IoU 0
    gt[50:60] = Occ3D.TRUCK
    pred[50:60] = Occ3D.TRUCK  # truck perfect: IoU 1
    m = Occ3DMIoU(mask="none")
    m.update(pred, gt)
    r = m.compute()
    assert r["per_class_fraction"]["car"] == 0.0
    assert r["per_class_fraction"]["bus"] == 0.0
    assert r["per_class_fraction"]["truck"] == 1.0
    assert math.isnan(r["per_class_fraction"]["pedestrian"])
    assert r["mIoU"] == devkit_round(100 / 3)  # NaN-mean over car, bus, truck
    # The SparseOcc variant drops classes without ground truth (bus) from the mean.
    v = Occ3DMIoU(mask="none", absent_gt_nan=True)
    v.update(pred, gt)
    assert v.compute()["mIoU"] == 50.0


def test_rounding_is_numpy_half_even():
    assert devkit_round(39.915) == 39.92
    assert round(39.915, 2) == 39.91  # Python's float rounding differs (PROTOCOLS §3.1)
    assert devkit_round(0.125, 2) == 0.12 and devkit_round(0.375, 2) == 0.38


def test_masks_are_cast_to_bool_and_required(rng):
    gt = rng.integers(0, FREE + 1, SHAPE).astype(np.uint8)
    pred = _noisy(gt, rng)
    mask_u8 = (rng.random(SHAPE) < 0.1).astype(np.uint8)
    a, b = Occ3DMIoU("camera"), Occ3DMIoU("camera")
    a.update(pred, gt, mask_camera=mask_u8)
    b.update(pred, gt, mask_camera=mask_u8.astype(bool))
    assert_same(a.compute(), b.compute())  # uint8 masks select voxels, never fancy-index rows
    ious, miou = devkit_miou([(pred, gt, mask_u8, mask_u8)], "camera")
    r = a.compute()
    assert r["mIoU"] == miou
    assert r["samples"] == 1
    with pytest.raises(DataError, match="mask_camera"):
        Occ3DMIoU("camera").update(pred, gt, source="tok1")
    with pytest.raises(DataError, match="0 and 1"):
        Occ3DMIoU("camera").update(pred, gt, mask_camera=mask_u8 * 2)


def test_bad_predictions_are_refused_with_the_source():
    gt = _grid()
    m = Occ3DMIoU("none")
    bad = _grid()
    bad[0, 0, 0] = 18
    with pytest.raises(DataError, match=r"tokA.*class id 18 outside 0\.\.17"):
        m.update(bad, gt, source="tokA")
    with pytest.raises(DataError, match="shape"):
        m.update(np.zeros((200, 200, 15), np.uint8), gt, source="tokB")
    with pytest.raises(DataError, match="integer"):
        m.update(gt.astype(np.float32), gt, source="tokC")
    gt255 = gt.copy()
    gt255[0] = 255  # GT may carry the ignore value; it is discarded as the devkit does
    m.update(gt, gt255)
    assert m.compute()["gt_voxels"]["free"] == gt.size - 200 * 16


def test_real_frames_match_devkit_transcription(occ3d_frame_paths, rng):
    frames = [load_labels(p) for p in occ3d_frame_paths]
    preds = [_noisy(f.semantics, rng, 0.3) for f in frames]
    samples = [(p, f.semantics, f.mask_camera.astype(np.uint8), f.mask_lidar.astype(np.uint8))
               for p, f in zip(preds, frames, strict=True)]
    for mask in ("camera", "lidar", "none", "camera_lidar"):
        m = Occ3DMIoU(mask)
        for p, f in zip(preds, frames, strict=True):
            m.update(torch.from_numpy(p), f.semantics, f.mask_camera, f.mask_lidar)
        r = m.compute()
        ious, miou = devkit_miou(samples, mask)
        assert r["mIoU"] == miou
        if mask != "camera_lidar":
            assert r["IoU_geometry"] == occupied_iou(samples, mask)
        got = np.array(list(r["per_class_fraction"].values()))
        np.testing.assert_array_equal(got, ious[:FREE])  # bit-identical float64
        dyn = [2, 3, 4, 5, 6, 7, 9, 10]
        assert r["mIoU_D"] == round(np.nanmean(ious[dyn]) * 100, 2)


def test_batched_equals_sequential(occ3d_frame_paths, rng):
    frames = [load_labels(p) for p in occ3d_frame_paths]
    preds = np.stack([_noisy(f.semantics, rng) for f in frames])
    gts = np.stack([f.semantics for f in frames])
    masks = np.stack([f.mask_camera for f in frames])
    a, b = Occ3DMIoU(), Occ3DMIoU()
    a.update(preds, gts, masks)
    for i in range(len(frames)):
        b.update(preds[i], gts[i], masks[i])
    ra, rb = a.compute(), b.compute()
    assert ra["samples"] == rb["samples"] == 2
    assert ra["per_class_fraction"] == pytest.approx(rb["per_class_fraction"], nan_ok=True, abs=0)


def test_surroundocc_matches_transcription(rng):
    gts = [rng.integers(0, 17, SHAPE).astype(np.uint8) for _ in range(3)]
    for g in gts:
        g[rng.random(SHAPE) < 0.05] = 255
    preds = [np.where(rng.random(SHAPE) < 0.3, rng.integers(0, 17, SHAPE), np.where(g == 255, 0, g))
             .astype(np.uint8) for g in gts]
    m = SurroundOccMetric()
    for p, g in zip(preds, gts, strict=True):
        m.update(p, g)
    r = m.compute()
    iou, miou = surroundocc_eval(preds, gts)
    assert r["IoU"] == iou and r["mIoU"] == miou


def test_openoccupancy_matches_transcription(rng):
    grid = GridSpec("small", (40, 40, 8), (0.2, 0.2, 0.2), (-4.0, -4.0, -1.0), "lidar")
    gts = [rng.integers(0, 17, grid.shape).astype(np.uint8) for _ in range(2)]
    for g in gts:
        g[rng.random(grid.shape) < 0.05] = 255
    preds = [rng.integers(0, 17, grid.shape).astype(np.uint8) for _ in gts]
    m = OpenOccupancyMetric(grid=grid)
    for p, g in zip(preds, gts, strict=True):
        m.update(p, g)
    r = m.compute()
    sc, ssc = openoccupancy_eval(preds, gts)
    assert r["SC_IoU_unrounded"] == sc and r["SSC_mIoU_unrounded"] == ssc
    assert r["SC_IoU"] == round(float(sc), 3)


@pytest.mark.gpu
def test_cuda_accumulation_equals_cpu(occ3d_frame_path, rng):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    f = load_labels(occ3d_frame_path)
    pred = _noisy(f.semantics, rng)
    a, b = Occ3DMIoU(), Occ3DMIoU()
    a.update(pred, f.semantics, f.mask_camera)
    b.update(torch.from_numpy(pred).cuda(), torch.from_numpy(f.semantics).cuda(),
             torch.from_numpy(f.mask_camera).cuda())
    assert_same(a.compute(), b.compute())
