"""The written world: Occ3D layout, devkit infos, validation, class balance and determinism."""

from pathlib import Path

import numpy as np
import pytest

from occ4d.cli import main
from occ4d.core.vocab import OCC3D_VOCAB, Occ3D
from occ4d.data.index import load_frame, load_index
from occ4d.io.infos import DEVKIT_INFO_KEYS, load_pkl
from occ4d.io.occ3d import load_labels
from occ4d.synth import generate
from occ4d.synth.ego import BEHAVIOURS
from occ4d.synth.stats import format_histograms, histogram
from occ4d.synth.world import split_scenes

SEED = 3


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A moderate world: one scene per ego behaviour, three keyframes each, two workers."""
    root = tmp_path_factory.mktemp("world")
    summary = generate(root, scenes=7, frames=3, seed=SEED, workers=2, progress=False)
    return root, summary


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout_infos_and_validation(world):
    root, summary = world
    assert summary["keyframes"] == 21 and len(summary["train"]) + len(summary["val"]) == 7
    assert set(summary["behaviours"].values()) == set(BEHAVIOURS)
    infos = []
    for split in ("train", "val"):
        data = load_pkl(root / f"occ4d_infos_temporal_{split}.pkl")
        assert data["metadata"]["version"] == "occ4d-synth-v1"
        for info in data["infos"]:
            assert set(DEVKIT_INFO_KEYS) <= set(info)
            assert info["split"] == split and info["scene_name"] in summary[split]
            assert info["behaviour"] == summary["behaviours"][info["scene_name"]]
        infos += data["infos"]
    assert len(infos) == 21
    by_token = {i["token"]: i for i in infos}
    for info in infos:
        path = root / info["occ_gt_path"]
        assert info["occ_gt_path"] == f"gts/{info['scene_name']}/{info['token']}/labels.npz"
        frame = load_labels(path)  # the same validation as real Occ3D frames
        assert frame.mask_lidar.any() and frame.mask_camera.any()
        assert len(info["can_bus"]) == 18 and isinstance(info["timestamp"], int)
        assert list(info["cams"]) == [
            "CAM_FRONT",
            "CAM_FRONT_RIGHT",
            "CAM_FRONT_LEFT",
            "CAM_BACK",
            "CAM_BACK_LEFT",
            "CAM_BACK_RIGHT",
        ]
        cam = info["cams"]["CAM_BACK"]
        assert cam["data_path"] == "" and np.asarray(cam["cam_intrinsic"]).shape == (3, 3)
        assert (
            np.asarray(cam["sensor2lidar_rotation"]).shape == (3, 3) and len(cam["sensor2ego_rotation"]) == 4
        )
        if info["next"]:
            nxt = by_token[info["next"]]
            assert nxt["prev"] == info["token"] and nxt["timestamp"] - info["timestamp"] == 500_000
            assert nxt["scene_token"] == info["scene_token"] and nxt["frame_idx"] == info["frame_idx"] + 1
            # Poses are rigid, planar and move at most 15 m per 0.5 s.
            step = np.subtract(nxt["ego2global_translation"], info["ego2global_translation"])
            assert step[2] == 0 and np.linalg.norm(step) < 7.5
    # The project's own reader loads the synthetic world like a real one.
    records = load_index(root)
    assert len(records) == 21
    frame = load_frame(records[0])
    assert frame.semantics.shape == (200, 200, 16)


def test_class_frequencies_like_occ3d(world):
    root, summary = world
    counts = histogram(root / "gts")
    assert counts == summary["class_counts"]
    total = sum(counts.values())
    assert 0.90 <= counts["free"] / total <= 0.95
    missing = [c.name for c in Occ3D if c != Occ3D.FREE and counts[OCC3D_VOCAB.names[c]] == 0]
    assert not missing, f"classes never seen in the world: {missing}"
    assert 0.05 < summary["lidar_coverage"] < 0.4 and 0.05 < summary["camera_coverage"] < 0.4


def test_histogram_beside_the_real_frames(world, occ3d_frame_paths):
    root, summary = world
    counts = summary["class_counts"]
    real = histogram(occ3d_frame_paths[0].parent.parent)
    table = format_histograms(counts, real)
    assert "real Occ3D %" in table and len(table.splitlines()) == 2 + OCC3D_VOCAB.num_classes
    free_row = next(line for line in table.splitlines() if line.startswith("free"))
    synth_pct, real_pct = map(float, free_row.split()[1:])
    assert synth_pct == pytest.approx(100 * counts["free"] / sum(counts.values()), abs=1e-3)
    assert real_pct == pytest.approx(100 * real["free"] / sum(real.values()), abs=1e-3)
    assert 90 <= real_pct <= 95  # the range the synthetic world is held to


def test_same_seed_same_bytes_for_any_worker_count(world, tmp_path):
    root, _ = world
    generate(tmp_path / "a", scenes=2, frames=3, seed=SEED, workers=1, val_fraction=0.5, progress=False)
    main(
        [
            "synth",
            "--out",
            str(tmp_path / "b"),
            "--scenes",
            "2",
            "--frames",
            "3",
            "--seed",
            str(SEED),
            "--workers",
            "2",
            "--val-fraction",
            "0.5",
            "--real",
            str(tmp_path / "none"),
        ]
    )
    a, b = files(tmp_path / "a"), files(tmp_path / "b")
    assert a == b and len(a) == 2 * 3 * 2 + 5  # gts/ and openocc_v2/ labels, 4 info files, world.json
    # A scene's labels depend only on (seed, scene): the same as in the 7-scene world.
    first = sorted(k for k in a if k.startswith("gts/scene-0000"))
    assert [(root / k).read_bytes() for k in first] == [a[k] for k in first]


def test_bad_arguments_and_splits():
    with pytest.raises(ValueError, match="at least one scene"):
        generate("/nonexistent", scenes=0, frames=3, seed=0)
    with pytest.raises(ValueError, match="val_fraction"):
        generate("/nonexistent", scenes=2, frames=3, seed=0, val_fraction=1.0)
    assert split_scenes(10, 0.2, 0).count("val") == 2
    assert split_scenes(1, 0.2, 0) == ["train"]
    assert split_scenes(3, 0.0, 0) == ["train"] * 3
