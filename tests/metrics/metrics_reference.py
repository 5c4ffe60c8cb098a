"""Straightforward NumPy / plain-Python transcriptions of the official evaluations, for testing.

These follow the published algorithms line by line (PROTOCOLS §3) with no attempt at speed and
share no code with ``occ4d.metrics``: the Occ3D devkit's ``Metric_mIoU``, SparseOcc's origins,
ray directions, voxel walk and ``calc_rayiou``, the OpenOcc mAVE variants, OccWorld's
``multi_step_MeanIou``, SurroundOcc's and OpenOccupancy's histograms.
"""

from __future__ import annotations

import math

import numpy as np

# ---------------------------------------------------------------- Occ3D devkit (Metric_mIoU)


def devkit_hist(pred: np.ndarray, gt: np.ndarray, n: int = 18) -> np.ndarray:
    pred, gt = pred.flatten(), gt.flatten()
    k = (gt >= 0) & (gt < n)
    return np.bincount(n * gt[k].astype(int) + pred[k].astype(int), minlength=n**2).reshape(n, n)


def devkit_miou(samples, mask: str = "camera", n: int = 18):
    """samples: iterable of (pred, gt, mask_camera uint8, mask_lidar uint8). Returns (ious, mIoU)."""
    hist = np.zeros((n, n))
    for pred, gt, mc, ml in samples:
        if mask == "camera":
            m = mc.astype(bool)
            pred, gt = pred[m], gt[m]
        elif mask == "lidar":
            m = ml.astype(bool)
            pred, gt = pred[m], gt[m]
        elif mask == "camera_lidar":  # the paper variant (GaussTR#15), not the devkit's
            m = mc.astype(bool) & ml.astype(bool)
            pred, gt = pred[m], gt[m]
        hist += devkit_hist(pred, gt, n)
    with np.errstate(divide="ignore", invalid="ignore"):
        ious = np.diag(hist) / (hist.sum(1) + hist.sum(0) - np.diag(hist))
        miou = round(np.nanmean(ious[: n - 1]) * 100, 2)
    return ious, miou


def occupied_iou(samples, mask: str = "camera", free: int = 17) -> float:
    """OccStudio/ALOcc geometry IoU: binarize x != free, 2x2 confusion matrix, IoU of "occupied",
    percent rounded to 2 decimals (PROTOCOLS §3.3). Same sample tuples as ``devkit_miou``."""
    hist = np.zeros((2, 2))
    for pred, gt, mc, ml in samples:
        m = {"camera": mc, "lidar": ml, "none": np.ones_like(mc)}[mask].astype(bool)
        g, p = (gt[m] != free).astype(int), (pred[m] != free).astype(int)
        hist += np.bincount(2 * g + p, minlength=4).reshape(2, 2)
    return round(hist[1, 1] / (hist[1].sum() + hist[:, 1].sum() - hist[1, 1]) * 100, 2)


# ---------------------------------------------------------------- SparseOcc RayIoU


def quat_matrix(q) -> np.ndarray:
    """Rotation from (w, x, y, z) as pyquaternion computes it: Q(q) . Qbar(q)^T, lower 3x3."""
    q = np.asarray(q, dtype=np.float64)
    if abs(1.0 - np.dot(q, q)) >= 1e-14:
        q = q / np.sqrt(np.dot(q, q))
    w, x, y, z = q
    qm = np.array([[w, -x, -y, -z], [x, w, -z, y], [y, z, w, -x], [z, -y, x, w]])
    qb = np.array([[w, -x, -y, -z], [x, w, z, -y], [y, -z, w, x], [z, y, -x, w]])
    return qm.dot(qb.conj().transpose())[1:][:, 1:]


def trans_matrix(t, q) -> np.ndarray:
    tm = np.eye(4)
    tm[:3, :3] = quat_matrix(q)
    tm[:3, 3] = t
    return tm


def sparseocc_origins(infos: list[dict], ref_index: int) -> np.ndarray:
    """EgoPoseDataset.__getitem__ for the scene's info list (time order)."""
    def global_pose(info, inverse=False):
        pose = trans_matrix(info["ego2global_translation"], info["ego2global_rotation"]).dot(
            trans_matrix(info["lidar2ego_translation"], info["lidar2ego_rotation"]))
        return np.linalg.inv(pose) if inverse else pose

    info = infos[ref_index]
    ref_lidar_from_global = global_pose(info, inverse=True)
    ref_ego_from_lidar = trans_matrix(info["lidar2ego_translation"], info["lidar2ego_rotation"])
    out = []
    for i in range(len(infos)):
        if i == ref_index:
            o = np.array([0.0, 0.0, 0.0], dtype=np.float32)
        else:
            o = np.array(ref_lidar_from_global.dot(global_pose(infos[i]))[:3, 3], dtype=np.float32)
        pad = np.ones([4])
        pad[:3] = o
        o = np.dot(ref_ego_from_lidar[:3], pad.T).T
        if np.abs(o[0]) < 39 and np.abs(o[1]) < 39:
            out.append(o)
    if len(out) > 8:
        idx = np.round(np.linspace(0, len(out) - 1, 8)).astype(np.int64)
        out = [out[i] for i in idx]
    return np.stack(out)


def sparseocc_rays() -> np.ndarray:
    pitch = []
    for k in range(10):
        pitch.append(-(math.pi / 2 - math.atan(k + 1)))
    while pitch[-1] < 0.21:
        pitch.append(pitch[-1] + (pitch[-1] - pitch[-2]))
    rays = []
    for p in pitch:
        for a in np.arange(0, 360, 1):
            a = np.deg2rad(a)
            rays.append((np.cos(p) * np.cos(a), np.cos(p) * np.sin(a), np.sin(p)))
    return np.array(rays, dtype=np.float32)


def walk_one_ray(occ_zyx: np.ndarray, origin_vox, end_vox):
    """render_forward_cuda_kernel for one ray, in Python floats (double). occ is (Z, Y, X) float.

    Returns (distance in voxel units as float32, (x, y, z)).
    """
    vzsize, vysize, vxsize = occ_zyx.shape
    xo, yo, zo = (float(v) for v in origin_vox)
    xe, ye, ze = (float(v) for v in end_vox)
    vx, vy, vz = int(xo), int(yo), int(zo)
    rx, ry, rz = xe - xo, ye - yo, ze - zo
    gt_d = math.sqrt(rx * rx + ry * ry + rz * rz)
    dx, dy, dz = rx / gt_d, ry / gt_d, rz / gt_d
    step_x = 1 if dx >= 0 else -1
    step_y = 1 if dy >= 0 else -1
    step_z = 1 if dz >= 0 else -1
    big = np.finfo(np.float64).max
    t_max_x = (float(vx + (0 if step_x < 0 else 1)) - xo) / dx if dx != 0 else big
    t_max_y = (float(vy + (0 if step_y < 0 else 1)) - yo) / dy if dy != 0 else big
    t_max_z = (float(vz + (0 if step_z < 0 else 1)) - zo) / dz if dz != 0 else big
    t_dx = step_x / dx if dx != 0 else big
    t_dy = step_y / dy if dy != 0 else big
    t_dz = step_z / dz if dz != 0 else big
    path, dist = [], []
    step, was_inside = 0, False
    while True:
        inside = 0 <= vx < vxsize and 0 <= vy < vysize and 0 <= vz < vzsize
        if inside:
            was_inside = True
            path.append((vx, vy, vz))
        elif was_inside:
            break
        if t_max_x < t_max_y:
            if t_max_x < t_max_z:
                d = t_max_x
                vx += step_x
                t_max_x += t_dx
            else:
                d = t_max_z
                vz += step_z
                t_max_z += t_dz
        else:
            if t_max_y < t_max_z:
                d = t_max_y
                vy += step_y
                t_max_y += t_dy
            else:
                d = t_max_z
                vz += step_z
                t_max_z += t_dz
        if inside:
            dist.append(d)
        step += 1
        if step > 1000:
            break
    if not path:
        return np.float32(-1.0), (0, 0, 0)
    hit_d, hit = dist[-1], path[-1]
    for (x, y, z), d in zip(path, dist, strict=True):
        if occ_zyx[z, y, x] > 0.5:
            hit_d, hit = d, (x, y, z)
            break
    return np.float32(hit_d), hit


def voxel_inputs(origin_m: np.ndarray, rays: np.ndarray):
    """process_one_sample's float casts: (origin (3,) float32, endpoints (R, 3) float32)."""
    offset = np.array([-40, -40, -1.0], dtype=np.float32).astype(np.float64)
    scaler = np.float64(np.float32(0.4))
    ends = rays.astype(np.float64) + origin_m[None]
    return ((origin_m - offset) / scaler).astype(np.float32), ((ends - offset) / scaler).astype(np.float32)


def occupancy_zyx(sem: np.ndarray, free_id: int) -> np.ndarray:
    occ = sem.astype(np.float32).copy()
    occ[sem < free_id] = 1
    occ[sem == free_id] = 0
    return np.ascontiguousarray(occ.transpose(2, 1, 0))


def calc_rayiou(pcd_pred_list, pcd_gt_list, n_classes: int = 18):
    """SparseOcc calc_rayiou on per-sample [label, depth] float32 arrays (already GT-valid)."""
    thresholds = [1, 2, 4]
    gt_cnt = np.zeros([n_classes])
    pred_cnt = np.zeros([n_classes])
    tp_cnt = np.zeros([len(thresholds), n_classes])
    for pcd_pred, pcd_gt in zip(pcd_pred_list, pcd_gt_list, strict=True):
        for j, threshold in enumerate(thresholds):
            l1 = np.abs(pcd_pred[:, 1] - pcd_gt[:, 1])
            tp_dist = l1 < threshold
            for i in range(n_classes):
                mp = pcd_pred[:, 0] == i
                mg = pcd_gt[:, 0] == i
                if j == 0:
                    gt_cnt[i] += mg.sum()
                    pred_cnt[i] += mp.sum()
                tp_cnt[j][i] += np.logical_and(mg & mp, tp_dist).sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.array([(tp_cnt[j] / (gt_cnt + pred_cnt - tp_cnt[j]))[:-1] for j in range(3)])


def mave_reference(pcd_pred_list, pcd_gt_list, variant: str, n_classes: int = 17, flow_ids=range(8)):
    """OccNet's calc_metrics (in-repo TP variant) or tools/ray_iou/metric.py (all valid rays).

    Arrays are [label, depth, fx, fy] per ray, already restricted to GT-valid rays.
    """
    thresholds = [1, 2, 4]
    ave = np.zeros([3, n_classes])
    for i in range(n_classes):
        if i not in flow_ids:
            ave[:, i] = np.nan
    cnt = np.zeros([3, n_classes])
    for pred, gt in zip(pcd_pred_list, pcd_gt_list, strict=True):
        for j, thr in enumerate(thresholds):
            tp_dist = np.abs(pred[:, 1] - gt[:, 1]) < thr
            for i in range(n_classes):
                tp = (pred[:, 0] == i) & (gt[:, 0] == i) & tp_dist
                if i in flow_ids and tp.sum() > 0:
                    if variant == "tp@2m":
                        err = np.linalg.norm(gt[tp, 2:4] - pred[tp, 2:4], axis=1)
                    else:
                        err = np.linalg.norm(gt[:, 2:4] - pred[:, 2:4], axis=1)
                    ave[j][i] += np.sum(err)
                    cnt[j][i] += err.shape[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        return ave[1][:-1] / cnt[1][:-1]


# ---------------------------------------------------------------- OccWorld multi_step_MeanIou


def occworld_miou(pred: np.ndarray, gt: np.ndarray, classes, free: int = 17, strict: bool = False):
    """pred, gt: (B, T, X, Y, Z). Returns (mIoU per step, IoU per step), x100, OccWorld rules
    (a class without GT scores 1, plain mean), or with ``strict`` the devkit's (0/0 is NaN,
    NaN-mean)."""
    steps = pred.shape[1]
    mious, ious_occ = [], []
    for t in range(steps):
        o, g = pred[:, t].reshape(-1), gt[:, t].reshape(-1)
        ious = []
        for c in classes:
            seen, pos, cor = (g == c).sum(), (o == c).sum(), ((g == c) & (o == c)).sum()
            if strict:
                ious.append(np.nan if seen + pos == 0 else cor / (seen + pos - cor))
            else:
                ious.append(1.0 if seen == 0 else cor / (seen + pos - cor))
        mious.append((np.nanmean(ious) if strict else np.mean(ious)) * 100)
        go, po = g != free, o != free
        seen, pos, cor = go.sum(), po.sum(), (go & po).sum()
        ious_occ.append((1.0 if seen == 0 else cor / (seen + pos - cor)) * 100)
    return np.array(mious), np.array(ious_occ)


# ---------------------------------------------------------------- SurroundOcc / OpenOccupancy


def surroundocc_eval(preds, gts, class_num: int = 17):
    results = []
    for pred_i, gt_i in zip(preds, gts, strict=True):
        mask = gt_i != 255
        score = np.zeros((class_num, 3))
        for j in range(class_num):
            if j == 0:
                score[j][0] += ((gt_i[mask] != 0) * (pred_i[mask] != 0)).sum()
                score[j][1] += (gt_i[mask] != 0).sum()
                score[j][2] += (pred_i[mask] != 0).sum()
            else:
                score[j][0] += ((gt_i[mask] == j) * (pred_i[mask] == j)).sum()
                score[j][1] += (gt_i[mask] == j).sum()
                score[j][2] += (pred_i[mask] == j).sum()
        results.append(score)
    results = np.stack(results, axis=0).mean(0)
    ious = []
    for i in range(class_num):
        tp, p, g = results[i, 0], results[i, 1], results[i, 2]
        ious.append(tp / (p + g - tp))
    return ious[0], np.mean(ious[1:])


def openoccupancy_eval(preds, gts, n: int = 17):
    def fast_hist(pred, label, max_label):
        pred, label = pred.copy().flatten(), label.copy().flatten()
        bin_count = np.bincount(max_label * label.astype(int) + pred, minlength=max_label**2)
        return bin_count[: max_label**2].reshape(max_label, max_label)

    ssc = np.zeros((n, n))
    sc = np.zeros((2, 2))
    for pred, gt in zip(preds, gts, strict=True):
        mask = gt != 255
        ssc += fast_hist(pred[mask], gt[mask], n)
        p2, g2 = (pred[mask] != 0).astype(int), (gt[mask] != 0).astype(int)
        sc += fast_hist(p2, g2, 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        ious = np.diag(ssc) / (ssc.sum(1) + ssc.sum(0) - np.diag(ssc))
        sc_iou = np.diag(sc) / (sc.sum(1) + sc.sum(0) - np.diag(sc))
    return sc_iou[1], np.sum(ious[1:]) / (n - 1)


def assert_same(a, b, path: str = "") -> None:
    """Exact equality of nested result dicts, with NaN equal to NaN."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), f"{path}: keys differ"
        for k in a:
            assert_same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"{path}: lengths differ"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and math.isnan(a):
        assert isinstance(b, float) and math.isnan(b), f"{path}: {a} != {b}"
    else:
        assert a == b, f"{path}: {a} != {b}"
