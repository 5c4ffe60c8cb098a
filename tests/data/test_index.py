"""The frame index: every info flavour, Occ3D's annotations.json, the folder scan, bad entries."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from ondisk import devkit_info, ego_pose, write_dataset

from occ4d.core import DataError
from occ4d.data.index import group_by_scene, load_frame, load_index, resolve_path, scan_index
from occ4d.io.infos import save_pkl
from occ4d.io.occ3d import load_labels


@pytest.fixture
def devkit_root(tmp_path):
    infos = write_dataset(tmp_path, {"scene-b": 3, "scene-a": 2})
    shuffled = [infos[i] for i in (3, 0, 4, 2, 1)]
    save_pkl(tmp_path / "occ4d_infos_temporal_val.pkl", {"infos": shuffled, "metadata": {"version": "t"}})
    return tmp_path, infos


def test_devkit_flavour_sorted_and_loaded(devkit_root):
    root, infos = devkit_root
    recs = load_index(root, split="val")
    assert [(r.scene, r.token) for r in recs] == [
        ("scene-a", "scene-a-tok00"), ("scene-a", "scene-a-tok01"),
        ("scene-b", "scene-b-tok00"), ("scene-b", "scene-b-tok01"), ("scene-b", "scene-b-tok02"),
    ]
    assert all(r.path.is_absolute() and r.path.name == "labels.npz" for r in recs)
    assert recs[0].extras["split"] == "val" and recs[0].extras["scene_token"] == "tok-scene-a"
    np.testing.assert_allclose(recs[3].ego2global, ego_pose(1), atol=1e-12)
    assert recs[3].lidar2ego[0, 3] == pytest.approx(0.985793)
    frame = load_frame(recs[3])
    assert frame.scene == "scene-b" and frame.token == "scene-b-tok01"
    assert frame.timestamp == infos[1]["timestamp"]
    np.testing.assert_allclose(frame.ego2global, ego_pose(1), atol=1e-12)
    np.testing.assert_array_equal(frame.semantics, load_labels(recs[3].path).semantics)
    groups = group_by_scene(reversed(recs))
    assert list(groups) == ["scene-a", "scene-b"]
    assert [r.timestamp for r in groups["scene-b"]] == sorted(r.timestamp for r in groups["scene-b"])


def test_split_selection(devkit_root):
    root, infos = devkit_root
    save_pkl(root / "occ4d_infos_temporal_train.pkl", {"infos": infos[:2], "metadata": {"version": "t"}})
    assert len(load_index(root, split="train")) == 2
    assert len(load_index(root, split="val")) == 5
    with pytest.raises(DataError, match="two frames share|appears twice"):
        load_index(root)  # both splits list the same frames
    with pytest.raises(DataError, match="no info file for split 'test'"):
        load_index(root, split="test")


def test_bevdet_and_occworld_flavours(tmp_path):
    infos = write_dataset(tmp_path, {"scene-0001": 2, "scene-0002": 2})
    for x in infos:  # BEVDet: occ_path is the token folder, prefixed with ./data/nuscenes
        rel = x.pop("occ_gt_path")
        x["occ_path"] = "./data/nuscenes/" + rel.rsplit("/", 1)[0]
    save_pkl(tmp_path / "bevdet.pkl", {"infos": infos, "metadata": {}})
    recs = load_index(tmp_path / "bevdet.pkl")
    assert [r.scene for r in recs] == ["scene-0001"] * 2 + ["scene-0002"] * 2
    assert all(r.path.is_file() for r in recs)

    # OccWorld: a dict scene -> ordered list, Windows backslash after data/nuscenes, no scene_token
    scene_dict = {}
    for x in infos:
        y = {k: v for k, v in x.items() if k != "scene_token"}
        y["occ_path"] = x["occ_path"].replace("./data/nuscenes/", "./data/nuscenes\\")
        scene_dict.setdefault(x["token"].split("-tok")[0], []).append(y)
    save_pkl(tmp_path / "world.pkl", {"infos": scene_dict, "metadata": {}})
    recs2 = load_index(tmp_path / "world.pkl")
    assert [(r.scene, r.token, r.path) for r in recs2] == [(r.scene, r.token, r.path) for r in recs]
    assert load_frame(recs2[2]).scene == "scene-0002"


def test_openocc_scene_from_path_and_backslashes(tmp_path):
    info = devkit_info("tokA", "x", 0, "", np.eye(4))
    del info["occ_gt_path"], info["scene_token"]
    info["occ_path"] = ".\\data\\nuscenes\\openocc_v2\\scene-0042\\tokA"
    rec = load_index_one(tmp_path, info)
    assert rec.scene == "scene-0042" and rec.fmt == "openocc"
    assert rec.path.parts[-4:] == ("openocc_v2", "scene-0042", "tokA", "labels.npz")
    resolved = resolve_path("C:\\data\\gts\\s\\t\\labels.npz", tmp_path)
    assert resolved.parts[-4:] == ("gts", "s", "t", "labels.npz")


def load_index_one(root, info):
    save_pkl(root / "one.pkl", {"infos": [info]})
    return load_index(root / "one.pkl")[0]


def test_folder_scan_fallback_warns(tmp_path, caplog):
    write_dataset(tmp_path, {"s1": 3, "s2": 1})
    with caplog.at_level(logging.WARNING):
        recs = load_index(tmp_path)
    assert "no info file" in caplog.text
    assert [(r.scene, r.token) for r in recs] == [("s1", "s1-tok00"), ("s1", "s1-tok01"), ("s1", "s1-tok02"),
                                                   ("s2", "s2-tok00")]
    assert [r.timestamp for r in recs[:3]] == [0, 500_000, 1_000_000]
    assert all(np.array_equal(r.ego2global, np.eye(4)) for r in recs)
    (tmp_path / "annotations.json").write_text('{"train_split": ["s2"], "val_split": ["s1"]}')
    assert [r.scene for r in load_index(tmp_path, split="train")] == ["s2"]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda x: x.pop("token"), "missing key 'token'"),
        (lambda x: x.pop("timestamp"), "missing key 'timestamp'"),
        (lambda x: x.pop("occ_gt_path"), "missing key 'occ_gt_path'"),
        (lambda x: x.pop("ego2global_rotation"), "missing key 'ego2global_translation'"),
        (lambda x: x.__setitem__("ego2global_translation", [np.nan, 0.0, 0.0]), "NaN"),
        (lambda x: x.__setitem__("ego2global_rotation", [0.0, 0.0, 0.0, 0.0]), "bad ego2global pose"),
        (lambda x: x.__setitem__("ego2global", np.diag([2.0, 1.0, 1.0, 1.0])), "not rigid"),
        (lambda x: x.__setitem__("timestamp", "soon"), "not a number"),
    ],
)
def test_bad_info_entries(tmp_path, mutate, message):
    infos = write_dataset(tmp_path, {"s": 3})
    mutate(infos[1])
    save_pkl(tmp_path / "x_infos_temporal_val.pkl", {"infos": infos})
    with pytest.raises(DataError, match=message) as err:
        load_index(tmp_path)
    assert "x_infos_temporal_val.pkl" in str(err.value)
    scan = scan_index(tmp_path, skip_bad=True)
    assert [r.token for r in scan.records] == ["s-tok00", "s-tok02"]
    assert len(scan.skipped) == 1 and message.split()[0] in scan.skipped[0]


def test_duplicate_tokens_and_missing_source(tmp_path):
    infos = write_dataset(tmp_path, {"s": 2})
    infos[1]["token"] = infos[0]["token"]
    save_pkl(tmp_path / "d.pkl", {"infos": infos})
    with pytest.raises(DataError, match="appears twice"):
        load_index(tmp_path / "d.pkl")
    assert len(scan_index(tmp_path / "d.pkl", skip_bad=True).records) == 1
    with pytest.raises(DataError, match="no such file"):
        load_index(tmp_path / "nothing")
    save_pkl(tmp_path / "bad.pkl", {"something": []})
    with pytest.raises(DataError, match="neither 'infos'"):
        load_index(tmp_path / "bad.pkl")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no gts"):
        load_index(tmp_path / "empty")


def occ3d_annotations(infos: list[dict], train: list[str], val: list[str]) -> dict:
    """An Occ3D ``annotations.json`` (PROTOCOLS §2.1) describing the frames of ``infos``."""
    scene_infos: dict = {}
    for x in infos:
        scene = x["occ_gt_path"].split("/")[1]
        scene_infos.setdefault(scene, {})[x["token"]] = {
            "timestamp": x["timestamp"], "camera_sensor": {},
            "ego_pose": {"translation": x["ego2global_translation"], "rotation": x["ego2global_rotation"]},
            "gt_path": x["occ_gt_path"], "prev": "", "next": "",
        }
    # tokens listed newest first: the index orders frames by timestamp, not by file order
    scene_infos = {s: dict(reversed(list(f.items()))) for s, f in scene_infos.items()}
    return {"train_split": train, "val_split": val, "scene_infos": scene_infos}


def test_occ3d_annotations_json_gives_real_poses(tmp_path, caplog):
    infos = write_dataset(tmp_path, {"s1": 3, "s2": 2})
    (tmp_path / "annotations.json").write_text(json.dumps(occ3d_annotations(infos, ["s2"], ["s1"])))
    with caplog.at_level(logging.WARNING):
        recs = load_index(tmp_path)
    assert "no info file" not in caplog.text  # not the identity-pose folder scan
    assert [(r.scene, r.token) for r in recs] == [(x["occ_gt_path"].split("/")[1], x["token"]) for x in infos]
    by_token = {x["token"]: x for x in infos}
    for i, r in enumerate(recs):
        t = i if i < 3 else i - 3
        np.testing.assert_allclose(r.ego2global, ego_pose(t, 0.0 if i < 3 else 1000.0), atol=1e-12)
        assert r.timestamp == by_token[r.token]["timestamp"] and r.path.is_file()
        assert r.extras["split"] == ("val" if r.scene == "s1" else "train") and "scanned" not in r.extras
    assert load_frame(recs[4]).scene == "s2"
    assert [r.token for r in load_index(tmp_path, split="train")] == ["s2-tok00", "s2-tok01"]
    with pytest.raises(DataError, match="no list 'test_split'"):
        load_index(tmp_path, split="test")

    bad = occ3d_annotations(infos, ["s2"], ["s1"])
    bad["scene_infos"]["s1"]["s1-tok01"]["ego_pose"]["translation"] = [float("nan"), 0.0, 0.0]
    (tmp_path / "annotations.json").write_text(json.dumps(bad))
    with pytest.raises(DataError, match="NaN") as err:
        load_index(tmp_path)
    assert "annotations.json" in str(err.value) and "s1-tok01" in str(err.value)
    scan = scan_index(tmp_path, skip_bad=True)
    assert len(scan.records) == 4 and len(scan.skipped) == 1
    (tmp_path / "annotations.json").write_text('{"scene_infos": ')
    with pytest.raises(DataError, match="truncated JSON"):
        load_index(tmp_path)


def test_sparseocc_flavour_finds_labels_by_token(tmp_path):
    infos = write_dataset(tmp_path, {"scene-0003": 2, "scene-0009": 1})
    for x in infos:  # plain mmdet3d / SparseOcc infos: no label path, no scene name
        del x["occ_gt_path"], x["scene_token"]
    save_pkl(tmp_path / "nuscenes_infos_val_sweep.pkl", {"infos": infos, "metadata": {}})
    recs = load_index(tmp_path / "nuscenes_infos_val_sweep.pkl")
    assert [(r.scene, r.token) for r in recs] == [("scene-0003", "scene-0003-tok00"),
                                                  ("scene-0003", "scene-0003-tok01"),
                                                  ("scene-0009", "scene-0009-tok00")]
    assert all(r.fmt == "occ3d" and r.path == (tmp_path / "gts" / r.scene / r.token / "labels.npz").resolve()
               for r in recs)
    np.testing.assert_allclose(recs[1].ego2global, ego_pose(1), atol=1e-12)

    infos.append({**infos[0], "token": "lost", "timestamp": infos[0]["timestamp"] + 10**7})
    save_pkl(tmp_path / "nuscenes_infos_val_sweep.pkl", {"infos": infos, "metadata": {}})
    with pytest.raises(DataError, match="no <scene>/lost/labels.npz under gts/, occ3d/, openocc_v2/"):
        load_index(tmp_path / "nuscenes_infos_val_sweep.pkl")
    scan = scan_index(tmp_path / "nuscenes_infos_val_sweep.pkl", skip_bad=True)
    assert len(scan.records) == 3 and "lost" in scan.skipped[0]
