import math

import numpy as np
import pytest
from metrics_reference import calc_rayiou, mave_reference

from occ4d.core import DataError, OpenOcc
from occ4d.io.openocc import load_openocc
from occ4d.metrics import RayFlowMetric, occ_score, ray_directions
from occ4d.metrics.raycast import cast

FREE = int(OpenOcc.FREE)
ORIGINS = np.array([[0.985793, 0.0, 1.84019], [-6.0, 2.5, 1.9]])


def _perturbed(frame, rng):
    sem = frame.semantics.copy()
    flip = rng.random(sem.shape) < 0.02
    sem[flip] = rng.integers(0, FREE, int(flip.sum()))
    flow = frame.flow + rng.normal(0, 0.5, frame.flow.shape).astype(np.float32)
    return sem, flow


def _pcd(sem, flow):
    h = cast(sem != FREE, ORIGINS, ray_directions(), backend="numba")
    v = h.voxel.numpy()
    f = flow[v[:, 0], v[:, 1], v[:, 2]]
    return np.concatenate([sem[v[:, 0], v[:, 1], v[:, 2]].astype(np.float32)[:, None],
                           h.depth.numpy()[:, None], f], axis=1)


@pytest.mark.parametrize("variant", ["tp@2m", "all-valid-rays"])
def test_mave_variants_match_official_code(openocc_frame_path, rng, variant):
    gt = load_openocc(openocc_frame_path)
    samples = [_perturbed(gt, rng) for _ in range(2)]
    m = RayFlowMetric(mave=variant)
    preds, gts = [], []
    for sem, flow in samples:
        m.update(sem, gt.semantics, ORIGINS, flow, gt.flow, source=gt.source)
        p, g = _pcd(sem, flow), _pcd(gt.semantics, gt.flow)
        valid = g[:, 0].astype(np.int32) != FREE
        preds.append(p[valid])
        gts.append(g[valid])
    r = m.compute()
    ave = mave_reference(preds, gts, variant)
    got = np.array([r["per_class_AVE"].get(n, math.nan) for n in m.vocab.names[:FREE]])
    np.testing.assert_allclose(got, ave, rtol=1e-6, equal_nan=True)
    assert r["mAVE"] == pytest.approx(float(np.nanmean(ave)), rel=1e-6)
    iou = calc_rayiou([p[:, :2] for p in preds], [g[:, :2] for g in gts], n_classes=FREE + 1)
    np.testing.assert_array_equal(np.array(r["iou_matrix"]), iou)
    assert r["OccScore"] == pytest.approx(0.9 * np.nanmean(iou) + 0.1 * max(1 - np.nanmean(ave), 0))
    assert r["mAVE_variant"] == variant and variant in r["protocol"]


def test_fp16_quantises_depths_and_flows_as_submissions(openocc_frame_path, rng):
    gt = load_openocc(openocc_frame_path)
    sem, flow = _perturbed(gt, rng)
    p, g = _pcd(sem, flow), _pcd(gt.semantics, gt.flow)
    valid = g[:, 0].astype(np.int32) != FREE

    def half(a):  # the submission file's float16 depth and flow columns
        out = a.copy()
        out[:, 1:] = out[:, 1:].astype(np.float16).astype(np.float32)
        return out

    full, quant = RayFlowMetric(mave="all-valid-rays"), RayFlowMetric(mave="all-valid-rays", fp16=True)
    for m in (full, quant):
        m.update(sem, gt.semantics, ORIGINS, flow, gt.flow)
    r, r32 = quant.compute(), full.compute()
    ave = mave_reference([half(p[valid])], [half(g[valid])], "all-valid-rays")
    assert r["mAVE"] == pytest.approx(float(np.nanmean(ave)), rel=1e-6)
    assert r["mAVE"] != r32["mAVE"]  # the quantisation is applied, not only named
    iou = calc_rayiou([half(p[valid])[:, :2]], [half(g[valid])[:, :2]], n_classes=FREE + 1)
    np.testing.assert_array_equal(np.array(r["iou_matrix"]), iou)


def test_perfect_flow_has_zero_mave_and_fp16_is_named(openocc_frame_path):
    gt = load_openocc(openocc_frame_path)
    m = RayFlowMetric(fp16=True)
    m.update(gt.semantics, gt.semantics, ORIGINS, gt.flow, gt.flow)
    r = m.compute()
    assert r["RayIoU"] == 1.0 and r["mAVE"] == 0.0 and r["OccScore"] == 1.0
    assert "fp16" in r["protocol"]


def test_occ_score_formula():
    # ALOcc-Flow-2D: 0.9 * 40.3 + 0.1 * (1 - 0.431) * 100 = 41.96 (PROTOCOLS §3.8)
    assert occ_score(0.403, 0.431) * 100 == pytest.approx(41.96)
    assert occ_score(0.5, 3.0) == pytest.approx(0.45)  # max(1 - mAVE, 0) clips
    assert math.isnan(occ_score(0.5, math.nan))


def test_flow_inputs_are_checked(openocc_frame_path):
    gt = load_openocc(openocc_frame_path)
    m = RayFlowMetric()
    with pytest.raises(DataError, match="needs both"):
        m.update(gt.semantics, gt.semantics, ORIGINS, None, gt.flow, source="t")
    with pytest.raises(DataError, match="shape"):
        m.update(gt.semantics, gt.semantics, ORIGINS, gt.flow[..., :1], gt.flow, source="t")
    bad = gt.flow.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(DataError, match="NaN"):
        m.update(gt.semantics, gt.semantics, ORIGINS, bad, gt.flow, source="t")


@pytest.mark.gpu
@pytest.mark.parametrize("variant", ["tp@2m", "all-valid-rays"])
def test_cuda_equals_cpu(openocc_frame_path, rng, variant):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    gt = load_openocc(openocc_frame_path)
    sem, flow = _perturbed(gt, rng)
    a, b = RayFlowMetric(mave=variant), RayFlowMetric(mave=variant, backend="torch")
    a.update(sem, gt.semantics, ORIGINS, flow, gt.flow)
    b.update(torch.from_numpy(sem).cuda(), torch.from_numpy(gt.semantics).cuda(), ORIGINS,
             torch.from_numpy(flow).cuda(), torch.from_numpy(gt.flow).cuda())
    ra, rb = a.compute(), b.compute()
    np.testing.assert_array_equal(np.array(ra["iou_matrix"]), np.array(rb["iou_matrix"]))  # NaN == NaN
    # Per-ray errors are float32 either way; only the float64 sums' order may differ.
    assert ra["mAVE"] == pytest.approx(rb["mAVE"], rel=1e-9)
    assert ra["OccScore"] == pytest.approx(rb["OccScore"], rel=1e-9)
