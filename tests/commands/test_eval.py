import json
import math

import numpy as np
import pytest

from occ4d.commands.eval import evaluate
from occ4d.core import Occ3D, make_pose
from occ4d.data.index import group_by_scene, load_index
from occ4d.io.atomic import save_npz
from occ4d.io.clipfile import save_clip
from occ4d.io.infos import devkit_info, load_pkl, save_devkit_infos
from occ4d.io.occ3d import load_labels, save_labels
from occ4d.io.openocc import load_openocc, save_openocc
from occ4d.metrics import ForecastMetric, Occ3DMIoU, RayFlowMetric, RayIoU, ray_origins

FREE = int(Occ3D.FREE)


def _data_root(tmp_path, frames, mini_infos_path, n=4, folder="gts", save=save_labels):
    """An Occ3D-style data root: real labels under real nuScenes-mini poses, devkit info file."""
    infos = [i for i in load_pkl(mini_infos_path)["infos"] if "scene-0103" in i["occ_path"]]
    infos = sorted(infos, key=lambda i: i["timestamp"])[:n]
    root = tmp_path / "data"
    out = []
    for k, info in enumerate(infos):
        rel = f"{folder}/scene-0103/{info['token']}/labels.npz"
        save(root / rel, frames[k % len(frames)])
        out.append(devkit_info(
            info["token"], info["scene_token"], k, info["timestamp"],
            make_pose(info["ego2global_translation"], info["ego2global_rotation"]), rel,
            lidar2ego=make_pose(info["lidar2ego_translation"], info["lidar2ego_rotation"]),
            prev=infos[k - 1]["token"] if k else "", next=infos[k + 1]["token"] if k + 1 < n else ""))
    save_devkit_infos(root / "occ_infos_temporal_val.pkl", out, "v1.0-mini")
    return root, [i["token"] for i in infos]


@pytest.fixture
def occ_root(tmp_path, occ3d_frame_paths, mini_infos_path):
    frames = [load_labels(p) for p in occ3d_frame_paths]
    root, tokens = _data_root(tmp_path, frames, mini_infos_path)
    preds = {}
    for k, tok in enumerate(tokens):
        preds[tok] = np.roll(frames[k % 2].semantics, k + 1, axis=k % 3)
    return root, tokens, frames, preds


def _write_preds(folder, preds, skip=()):
    # Every official layout at once: arr_0 (CVPR 2023), pred (SparseOcc), Occ3D folder tree.
    for k, (tok, sem) in enumerate(preds.items()):
        if tok in skip:
            continue
        if k % 3 == 0:
            save_npz(folder / f"{tok}.npz", True, sem)
        elif k % 3 == 1:
            save_npz(folder / f"{tok}.npz", True, pred=sem)
        else:
            save_npz(folder / "gts" / "scene-0103" / tok / "labels.npz", True, semantics=sem)


def test_occ_matches_the_metric_and_writes_json(tmp_path, occ_root):
    root, tokens, frames, preds = occ_root
    _write_preds(tmp_path / "pred", preds)
    report = evaluate("occ", tmp_path / "pred", root, json=tmp_path / "out.json")
    m = Occ3DMIoU("camera")
    for k, tok in enumerate(tokens):
        f = frames[k % 2]
        m.update(preds[tok], f.semantics, f.mask_camera)
    expected = m.compute()
    assert report["results"]["mIoU"] == expected["mIoU"]
    saved = json.loads((tmp_path / "out.json").read_text())
    assert saved["protocol"] == "occ3d-miou/mask=camera"
    assert saved["results"]["mIoU"] == expected["mIoU"] and saved["results"]["samples"] == len(tokens)


def test_missing_predictions_are_listed_or_scored_free(tmp_path, occ_root, capsys):
    root, tokens, frames, preds = occ_root
    _write_preds(tmp_path / "pred", preds, skip=tokens[:1])
    with pytest.raises(SystemExit) as stop:  # the one line of the error, on stderr
        evaluate("occ", tmp_path / "pred", root)
    assert tokens[0] in str(stop.value)
    report = evaluate("occ", tmp_path / "pred", root, allow_missing=True, mask="none")
    assert "scored as all-free" in report["notes"][0]
    m = Occ3DMIoU("none")
    for k, tok in enumerate(tokens):
        pred = np.full_like(preds[tok], FREE) if k == 0 else preds[tok]
        m.update(pred, frames[k % 2].semantics)
    assert report["results"]["mIoU_unrounded"] == m.compute()["mIoU_unrounded"]


def test_bad_prediction_names_the_file(tmp_path, occ_root, capsys):
    root, tokens, frames, preds = occ_root
    preds[tokens[1]] = preds[tokens[1]].copy()
    preds[tokens[1]][0, 0, 0] = 30
    _write_preds(tmp_path / "pred", preds)
    with pytest.raises(SystemExit) as stop:
        evaluate("occ", tmp_path / "pred", root)
    out = str(stop.value)
    # The prediction file at fault is named, with its ground truth.
    assert f"pred/{tokens[1]}.npz" in out and "class id 30" in out and "labels.npz" in out
    save_npz(tmp_path / "pred" / f"{tokens[1]}.npz", True, pred=preds[tokens[0]].astype(np.float32))
    with pytest.raises(SystemExit) as stop:
        evaluate("occ", tmp_path / "pred", root)
    out = str(stop.value)
    assert f"pred/{tokens[1]}.npz" in out and "integer label array, got dtype float32" in out


def test_unknown_protocol_or_mask_is_refused(tmp_path, occ_root, capsys):
    root, tokens, frames, preds = occ_root
    _write_preds(tmp_path / "pred", preds)
    for kind, protocol in (("occ", "strict"), ("ray", "tp@2m"), ("flow", "occworld"), ("forecast", "devkit")):
        with pytest.raises(SystemExit, match=f"unknown --protocol {protocol!r}"):
            evaluate(kind, tmp_path / "pred", root, protocol=protocol)
    # RayIoU has no visibility mask: asking for one must not silently score without it.
    with pytest.raises(SystemExit, match="--mask applies to occ only"):
        evaluate("ray", tmp_path / "pred", root, mask="camera")
    with pytest.raises(SystemExit, match="occ3d ground truth has no flow"):  # said before reading predictions
        evaluate("flow", tmp_path / "pred", root)
    with pytest.raises(SystemExit, match="not a torch device"):
        evaluate("occ", tmp_path / "pred", root, device="gpu0")
    report = evaluate("occ", tmp_path / "pred", root, protocol="devkit", mask="lidar")
    assert report["protocol"] == "occ3d-miou/mask=lidar"


def test_occ_on_surroundocc_ground_truth(tmp_path, rng):
    from occ4d.core.frame import Frame
    from occ4d.core.grid import SURROUNDOCC
    from occ4d.core.vocab import SURROUNDOCC_VOCAB
    from occ4d.io.surroundocc import save_surroundocc
    from occ4d.metrics import SurroundOccMetric

    root, infos, m = tmp_path / "data", [], SurroundOccMetric()
    for k in range(2):
        sem = np.zeros(SURROUNDOCC.shape, np.uint8)
        sem[rng.random(sem.shape) < 0.05] = 4
        sem[:, :, 0], sem[0, 0, :] = 11, 255
        tok = f"tok{k}"
        save_surroundocc(root / f"samples/{tok}.npy", Frame(sem, SURROUNDOCC_VOCAB, SURROUNDOCC))
        infos.append(devkit_info(tok, "sc", k, 1000 + k * 500_000, np.eye(4), f"samples/{tok}.npy",
                                 occ_format="surroundocc", scene_name="sc"))
        pred = np.roll(np.where(sem == 255, 0, sem), k + 1, axis=0)
        save_npz(tmp_path / "pred" / f"{tok}.npz", True, pred)
        m.update(pred, sem)
    save_devkit_infos(root / "s_infos_temporal_val.pkl", infos, "v")
    report = evaluate("occ", tmp_path / "pred", root)
    expected = m.compute()
    assert report["protocol"] == "surroundocc" and "no visibility mask" in report["notes"][0]
    assert report["results"]["IoU"] == expected["IoU"] and 0 < expected["IoU"] < 1
    with pytest.raises(SystemExit):
        evaluate("occ", tmp_path / "pred", root, protocol="absent-gt-nan")


def test_ray_notes_a_missing_lidar2ego(tmp_path, occ3d_frame_path):
    sem = load_labels(occ3d_frame_path).semantics
    infos = []
    for k in range(2):
        tok = f"tok{k}"
        save_labels(tmp_path / "data" / "gts" / "sc" / tok / "labels.npz", load_labels(occ3d_frame_path))
        infos.append(devkit_info(tok, "sc", k, 1000 + k * 500_000, make_pose([2.0 * k, 0, 0], [1, 0, 0, 0]),
                                 f"gts/sc/{tok}/labels.npz"))
        save_npz(tmp_path / "pred" / f"{tok}.npz", True, sem)
    save_devkit_infos(tmp_path / "data" / "x_infos_temporal_val.pkl", infos, "v")
    report = evaluate("ray", tmp_path / "pred", tmp_path / "data")
    assert report["results"]["RayIoU"] == 1.0
    assert any("2 frame(s) have an identity lidar2ego" in n for n in report["notes"])


def test_ray_uses_scene_origins(tmp_path, occ_root):
    root, tokens, frames, preds = occ_root
    _write_preds(tmp_path / "pred", preds)
    report = evaluate("ray", tmp_path / "pred", root)
    records = group_by_scene(load_index(root))["scene-0103"]
    e2g, l2e = [r.ego2global for r in records], [r.lidar2ego for r in records]
    m = RayIoU()
    for k, r in enumerate(records):
        m.update(preds[r.token], frames[tokens.index(r.token) % 2].semantics, ray_origins(k, e2g, l2e))
    assert report["results"]["RayIoU"] == m.compute()["RayIoU"]
    assert report["protocol"] == "rayiou"


def test_flow_on_openocc_ground_truth(tmp_path, openocc_frame_path, mini_infos_path):
    frame = load_openocc(openocc_frame_path)
    root, tokens = _data_root(tmp_path, [frame], mini_infos_path, n=2, folder="openocc_v2", save=save_openocc)
    pred_flow = frame.flow * 0.9
    for tok in tokens:
        save_npz(tmp_path / "pred" / f"{tok}.npz", True, pred=frame.semantics, flow=pred_flow)
    report = evaluate("flow", tmp_path / "pred", root, protocol="all-valid-rays")
    assert report["results"]["mAVE_variant"] == "all-valid-rays"
    records = load_index(root)
    e2g, l2e = [r.ego2global for r in records], [r.lidar2ego for r in records]
    m = RayFlowMetric(mave="all-valid-rays")
    for k in range(len(records)):
        m.update(frame.semantics, frame.semantics, ray_origins(k, e2g, l2e), pred_flow, frame.flow)
    expected = m.compute()
    assert report["results"]["mAVE"] == expected["mAVE"] and report["results"]["RayIoU"] == 1.0
    assert report["results"]["OccScore"] == expected["OccScore"]


def test_forecast_clips(tmp_path, occ3d_frame_path, capsys):
    sem = load_labels(occ3d_frame_path).semantics
    traj = np.zeros((7, 3))
    rng = np.random.default_rng(0)
    m = ForecastMetric("strict")
    gt = np.stack([np.roll(sem, t, axis=0) for t in range(7)])
    pred = gt.copy()
    pred[1:][rng.random(pred[1:].shape) < 0.1] = FREE
    save_clip(tmp_path / "gt" / "a.npz", gt, traj, current=0)
    save_clip(tmp_path / "pred" / "a.npz", pred, traj, current=0)
    m.update(pred[1:], gt[1:])
    report = evaluate("forecast", tmp_path / "pred", tmp_path / "gt", protocol="strict")
    expected = m.compute()
    assert report["protocol"] == "forecast/strict"
    for key in ("mIoU@1s", "mIoU@2s", "mIoU@3s", "IoU_avg", "mIoU_avg"):
        assert report["results"][key] == expected[key] and not math.isnan(expected[key])
    out = capsys.readouterr().out
    car = [line for line in out.splitlines() if " car " in line][0]  # the per-class table
    assert f"{expected['per_class']['1s']['car']:.2f}" in car and "IoU (occupied)" in out


def test_forecast_errors_name_the_forecast_file(tmp_path, occ3d_frame_path, capsys):
    sem = load_labels(occ3d_frame_path).semantics
    gt = np.stack([np.roll(sem, t, axis=0) for t in range(7)])
    traj = np.zeros((7, 3))
    save_clip(tmp_path / "gt" / "a.npz", gt, traj, current=0)
    save_clip(tmp_path / "pred" / "a.npz", gt, traj, current=0, hz=10.0)
    with pytest.raises(SystemExit) as stop:
        evaluate("forecast", tmp_path / "pred", tmp_path / "gt")
    out = str(stop.value)
    assert "pred/a.npz" in out and "10 Hz" in out and "gt/a.npz" in out
    save_clip(tmp_path / "gt" / "a.npz", gt, traj, current=3)  # 3 future frames: no 2 s / 3 s horizon
    with pytest.raises(SystemExit) as stop:
        evaluate("forecast", tmp_path / "pred", tmp_path / "gt")
    out = str(stop.value)
    assert "gt/a.npz" in out and "3 future frame(s)" in out


def test_unreadable_prediction_names_the_file(tmp_path, occ_root, capsys):
    root, tokens, frames, preds = occ_root
    _write_preds(tmp_path / "pred", preds)
    (tmp_path / "pred" / f"{tokens[0]}.npz").write_bytes(b"not a zip file")
    with pytest.raises(SystemExit) as stop:
        evaluate("occ", tmp_path / "pred", root)
    out = str(stop.value)
    assert f"{tokens[0]}.npz" in out and "unreadable" in out


def test_progress_keeps_every_item_in_order():
    from occ4d.evaluate.common import progress as _progress

    assert list(_progress(list(range(10)), "x")) == list(range(10))
    items = list(range(120))  # long enough to go through the progress bar
    assert list(_progress(items, "evaluating")) == items
