import math

import numpy as np
import pytest
import torch
from metrics_reference import occworld_miou

from occ4d.core import OCC3D, DataError, Occ3D
from occ4d.io.occ3d import load_labels
from occ4d.metrics import ForecastMetric

FREE = int(Occ3D.FREE)


def _window(rng, steps=6, classes=(Occ3D.CAR, Occ3D.DRIVEABLE_SURFACE, Occ3D.VEGETATION)):
    g = np.full((steps, *OCC3D.shape), FREE, np.uint8)
    for c in classes:
        g[rng.random(g.shape) < 0.05] = c
    return g


def test_occworld_protocol_matches_transcription(rng):
    gts = np.stack([_window(rng) for _ in range(2)])
    preds = gts.copy()
    noise = rng.random(preds.shape) < 0.1
    preds[noise] = rng.integers(0, FREE + 1, int(noise.sum()))
    m = ForecastMetric("occworld")
    for p, g in zip(preds, gts, strict=True):
        m.update(p, g)
    r = m.compute()
    ref_miou, ref_iou = occworld_miou(preds, gts, range(FREE))
    np.testing.assert_allclose(r["mIoU_per_step"], ref_miou, rtol=1e-12)
    np.testing.assert_allclose(r["IoU_per_step"], ref_iou, rtol=1e-12)
    assert r["mIoU@1s"] == r["mIoU_per_step"][1] and r["mIoU@3s"] == r["mIoU_per_step"][5]
    assert r["mIoU_avg"] == pytest.approx(np.mean(ref_miou[[1, 3, 5]]))
    assert r["IoU_avg"] == pytest.approx(np.mean(ref_iou[[1, 3, 5]]))
    assert r["windows"] == 2 and r["protocol"] == "forecast/occworld"


def test_real_frames_match_transcription(occ3d_frame_paths, rng):
    """Six future steps from the real Occ3D frames (a drifting, noisy copy as the forecast)."""
    frames = [load_labels(p).semantics for p in occ3d_frame_paths]
    gt = np.stack([np.roll(frames[t % 2], t, axis=0) for t in range(6)])[None]
    pred = np.roll(gt, 1, axis=2)
    noise = rng.random(pred.shape) < 0.05
    pred[noise] = rng.integers(0, FREE + 1, int(noise.sum()))
    for protocol in ("occworld", "strict"):
        m = ForecastMetric(protocol)
        m.update(torch.from_numpy(pred), torch.from_numpy(gt))
        r = m.compute()
        ref_miou, ref_iou = occworld_miou(pred, gt, range(FREE), strict=protocol == "strict")
        np.testing.assert_allclose(r["mIoU_per_step"], ref_miou, rtol=1e-12)
        np.testing.assert_allclose(r["IoU_per_step"], ref_iou, rtol=1e-12)
        assert r["mIoU_avg"] == pytest.approx(np.mean(ref_miou[[1, 3, 5]]), rel=1e-12)


def test_absent_classes_occworld_one_strict_nan(rng):
    gt = _window(rng, classes=(Occ3D.CAR,))
    pred = gt.copy()
    pred[:, :5] = Occ3D.BUS  # bus predicted, never in GT
    ow, strict = ForecastMetric("occworld"), ForecastMetric("strict")
    ow.update(pred, gt)
    strict.update(pred, gt)
    a, b = ow.compute(), strict.compute()
    assert a["per_class"]["1s"]["bus"] == 100.0  # OccWorld: no GT -> IoU 1, whatever was predicted
    assert a["per_class"]["1s"]["pedestrian"] == 100.0
    assert b["per_class"]["1s"]["bus"] == 0.0
    assert math.isnan(b["per_class"]["1s"]["pedestrian"])
    assert a["mIoU@1s"] > b["mIoU@1s"]


def test_forecast_shape_errors():
    m = ForecastMetric(steps=6)
    g = np.full((5, *OCC3D.shape), FREE, np.uint8)
    with pytest.raises(DataError, match="clipA.*6"):
        m.update(g, g, source="clipA")
    with pytest.raises(ValueError, match="horizon"):
        ForecastMetric(steps=2, report_seconds=(3.0,))


@pytest.mark.gpu
def test_cuda_accumulation_equals_cpu(rng):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    gt = _window(rng)
    pred = gt.copy()
    pred[rng.random(pred.shape) < 0.1] = Occ3D.CAR
    a, b = ForecastMetric(), ForecastMetric()
    a.update(pred, gt)
    b.update(torch.from_numpy(pred).cuda(), torch.from_numpy(gt).cuda())
    ra, rb = a.compute(), b.compute()
    assert ra["mIoU_per_step"] == rb["mIoU_per_step"] and ra["IoU_per_step"] == rb["IoU_per_step"]


def test_region_counts_only_its_columns():
    gt = np.full((6, *OCC3D.shape), FREE, np.uint8)
    gt[:, 40:60, 90:110, 2:4] = Occ3D.CAR  # a car ahead
    pred = gt.copy()
    pred[:, 140:160, 90:110, 2:4] = Occ3D.CAR  # ... and a false one behind
    ahead = np.zeros((6, *OCC3D.shape[:2]), bool)
    ahead[:, :100] = True
    full, near, far = ForecastMetric(), ForecastMetric(), ForecastMetric("strict")
    full.update(pred, gt)
    near.update(pred, gt, region=torch.from_numpy(ahead))
    far.update(pred, gt, region=~torch.from_numpy(ahead)[None])  # batched columns
    a, b, c = full.compute(), near.compute(), far.compute()
    assert a["per_class"]["1s"]["car"] == pytest.approx(50.0) and a["IoU@1s"] == pytest.approx(50.0)
    assert b["per_class"]["1s"]["car"] == 100.0 and b["IoU@1s"] == 100.0 and b["mIoU@3s"] == 100.0
    assert c["per_class"]["1s"]["car"] == 0.0 and c["IoU@1s"] == 0.0  # predicted only: strict 0
    # every column selected is the plain metric; a voxel mask works too
    whole = ForecastMetric()
    whole.update(pred, gt, region=np.ones(gt.shape, bool))
    assert whole.compute()["mIoU_per_step"] == a["mIoU_per_step"]
    with pytest.raises(DataError, match="clipA.*bool"):
        ForecastMetric().update(pred, gt, source="clipA", region=ahead.astype(np.uint8))
    with pytest.raises(DataError, match="clipA.*columns"):
        ForecastMetric().update(pred, gt, source="clipA", region=ahead[:5])
