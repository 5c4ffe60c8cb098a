"""``occ4d info`` and the dataset summary behind it."""

from __future__ import annotations

import numpy as np
import pytest
from ondisk import write_dataset

from occ4d.cli import main
from occ4d.core import DataError, yaw_pose
from occ4d.data.index import FrameRecord, load_index
from occ4d.data.summary import scene_motion, summarize
from occ4d.io.infos import save_pkl
from occ4d.io.occ3d import load_labels


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("info")
    infos = write_dataset(root, {"s1": 3, "s2": 2}, seed=4)
    for i, x in enumerate(infos):
        x["behaviour"] = "left_turn" if i < 3 else "stop_and_go"
    save_pkl(root / "occ4d_infos_temporal_val.pkl", {"infos": infos, "metadata": {"version": "t"}})
    return root


def test_summary_numbers(root):
    records = load_index(root)
    s = summarize(records, source=str(root))
    frames = [load_labels(r.path) for r in records]
    free = sum(int((f.semantics == 17).sum()) for f in frames)
    assert s.frames == 5 and s.scenes == 2 and s.voxels == 5 * 640_000
    assert s.class_counts[17] == free and s.class_counts.sum() == s.voxels and s.class_counts[-1] == 0
    cam = sum(int(f.mask_camera.sum()) for f in frames)
    assert s.mask_counts["mask_camera"] == (cam, 5 * 640_000)
    assert s.behaviours == {"left_turn": 3, "stop_and_go": 2} and s.splits == {"val": 5}


def test_scene_motion_from_poses():
    # 3 frames 0.5 s apart on a straight line at 10 m/s, turning 0.1 rad per step
    recs = [FrameRecord(f"t{i}", "s", i * 500_000, None, yaw_pose(5.0 * i, 0.0, 0.1 * i), np.eye(4))
            for i in range(3)]
    m = scene_motion(recs)
    assert m.path_length_m == pytest.approx(10.0) and m.mean_speed == pytest.approx(10.0)
    assert m.max_speed == pytest.approx(10.0) and m.mean_abs_yaw_rate == pytest.approx(0.2)
    assert m.duration_s == pytest.approx(1.0)
    # yaw wrapping: -3.1 -> +3.1 rad is a 0.083 rad turn, not 6.2
    wrap = [FrameRecord(f"t{i}", "s", i * 500_000, None, yaw_pose(0, 0, y), np.eye(4))
            for i, y in enumerate([3.1, -3.1])]
    assert scene_motion(wrap).mean_abs_yaw_rate == pytest.approx((2 * np.pi - 6.2) / 0.5)


def test_info_command_prints_and_skips_bad(root, tmp_path, capsys):
    main(["info", str(root), "--split", "val", "--no-progress"])
    out = capsys.readouterr().out
    assert "scenes: 2   frames read: 5" in out and "17 free" in out and "left_turn" in out
    assert "mask_camera" in out and "path length" in out and "splits: val 5 frames" in out

    bad_root = tmp_path / "bad"
    infos = write_dataset(bad_root, {"s": 3}, seed=5)
    infos.append({**infos[0], "token": "broken", "timestamp": infos[0]["timestamp"] + 10 ** 7,
                  "ego2global_translation": [np.nan, 0.0, 0.0]})
    save_pkl(bad_root / "x_infos_temporal_val.pkl", {"infos": infos})
    victim = bad_root / infos[1]["occ_gt_path"]
    victim.write_bytes(victim.read_bytes()[:100])
    with pytest.raises(DataError, match="NaN"):
        main(["info", str(bad_root), "--no-progress"])
    main(["info", str(bad_root), "--skip-bad", "--no-progress"])
    out = capsys.readouterr().out
    assert "frames read: 2" in out and "bad frames skipped: 2" in out
    infos.pop()
    save_pkl(bad_root / "x_infos_temporal_val.pkl", {"infos": infos})
    with pytest.raises(DataError, match="truncated") as err:
        main(["info", str(bad_root), "--no-progress"])
    assert str(victim) in str(err.value)
