"""Info pickles: the restricted unpickler refuses code, and devkit infos round-trip through the index."""

from __future__ import annotations

import os
import pickle
import subprocess

import numpy as np
import pytest

from occ4d.core import DataError, make_pose, yaw_pose
from occ4d.data.index import load_index
from occ4d.io.infos import DEVKIT_INFO_KEYS, devkit_info, load_pkl, safe_loads, save_devkit_infos, save_pkl
from occ4d.io.occ3d import save_labels


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_crafted_pickle_does_not_run(tmp_path):
    marker = tmp_path / "MARKER"
    data = pickle.dumps({"infos": [_Exploit(marker)]})
    (tmp_path / "evil.pkl").write_bytes(data)
    with pytest.raises(DataError, match="refused to unpickle") as err:
        load_pkl(tmp_path / "evil.pkl")
    assert "evil.pkl" in str(err.value) and "system" in str(err.value)
    assert not marker.exists()
    # eval / builtins.__import__ / subprocess are refused as well
    for payload in (pickle.dumps(eval), pickle.dumps(subprocess.Popen), pickle.dumps(__import__)):
        with pytest.raises(DataError, match="refused"):
            safe_loads(payload, "x.pkl")
    assert not marker.exists()


def test_plain_containers_and_arrays_load(tmp_path):
    obj = {"a": [1, 2.5, "s", None, True], "b": np.arange(6, dtype=np.int32).reshape(2, 3),
           "c": (np.float32(1.5), {1, 2}), "d": np.array(["x", "y"])}
    for proto in (2, 4, 5):
        (tmp_path / "ok.pkl").write_bytes(pickle.dumps(obj, protocol=proto))
        back = load_pkl(tmp_path / "ok.pkl")
        np.testing.assert_array_equal(back["b"], obj["b"])
        assert back["a"] == obj["a"] and back["c"][1] == {1, 2} and back["d"].tolist() == ["x", "y"]


def test_truncated_and_missing_pickles(tmp_path):
    data = pickle.dumps({"infos": [{"token": "t" * 100}] * 10})
    (tmp_path / "t.pkl").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="truncated"):
        load_pkl(tmp_path / "t.pkl")
    with pytest.raises(DataError, match="file not found"):
        load_pkl(tmp_path / "none.pkl")


def test_save_pkl_refuses_what_it_could_not_reload(tmp_path):
    with pytest.raises(DataError, match="refused"):
        save_pkl(tmp_path / "x.pkl", {"p": tmp_path})  # a PosixPath is not a plain container
    assert not (tmp_path / "x.pkl").exists()


def test_devkit_infos_round_trip_through_the_index(tmp_path, rng):
    from occ4d.core import Frame

    l2e = make_pose([0.985793, 0.0, 1.84019], [0.70675, -0.01530, 0.01740, -0.70708])
    tokens = ["t0", "t1", "t2"]
    infos = []
    for i, tok in enumerate(tokens):
        rel = f"gts/scene-7/{tok}/labels.npz"
        save_labels(tmp_path / rel, Frame(np.full((200, 200, 16), 17, np.uint8)))
        infos.append(devkit_info(tok, "sc7", i, 1_000_000 + 500_000 * i, yaw_pose(i, 2 * i, 0.3 * i), rel,
                                 prev=tokens[i - 1] if i else "", next=tokens[i + 1] if i < 2 else "",
                                 lidar2ego=l2e, scene_name="scene-7", behaviour="left_turn"))
    assert set(DEVKIT_INFO_KEYS) <= set(infos[0])
    save_devkit_infos(tmp_path / "occ4d_infos_temporal_train.pkl", infos[::-1], "synthetic-v1")
    raw = load_pkl(tmp_path / "occ4d_infos_temporal_train.pkl")
    assert raw["metadata"] == {"version": "synthetic-v1"} and len(raw["infos"]) == 3
    assert raw["infos"][0]["ego2global_rotation"][0] >= 0  # (w, x, y, z) with w >= 0
    recs = load_index(tmp_path, split="train")
    assert [r.token for r in recs] == tokens
    assert all(r.scene == "scene-7" and r.extras["behaviour"] == "left_turn" for r in recs)
    np.testing.assert_allclose(recs[2].ego2global, yaw_pose(2, 4, 0.6), atol=1e-12)
    np.testing.assert_allclose(recs[2].lidar2ego, l2e, atol=1e-12)
    assert recs[1].extras["prev"] == "t0" and recs[1].extras["frame_idx"] == 1


def test_save_devkit_infos_checks_keys_and_links(tmp_path):
    good = devkit_info("a", "s", 0, 0, np.eye(4), "gts/s/a/labels.npz")
    bad = dict(good)
    del bad["can_bus"]
    with pytest.raises(DataError, match=r"lacks devkit key\(s\) \['can_bus'\]"):
        save_devkit_infos(tmp_path / "x.pkl", [bad], "v")
    with pytest.raises(DataError, match="appears twice"):
        save_devkit_infos(tmp_path / "x.pkl", [good, good], "v")
    with pytest.raises(DataError, match="next 'zz' is not a token"):
        save_devkit_infos(tmp_path / "x.pkl", [{**good, "next": "zz"}], "v")
    with pytest.raises(DataError, match="NaN"):
        devkit_info("a", "s", 0, 0, np.full((4, 4), np.nan), "p")
    assert not (tmp_path / "x.pkl").exists()

