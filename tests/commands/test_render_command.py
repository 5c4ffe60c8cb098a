"""``occ4d render`` and ``occ4d report`` end to end on small inputs built from the real frame."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from occ4d.cli import main
from occ4d.core.frame import Frame
from occ4d.io.atomic import save_npz
from occ4d.io.clipfile import save_clip
from occ4d.io.occ3d import load_labels, save_labels
from occ4d.vis.video import read_video


@pytest.fixture
def dataset(occ3d_frame_path, tmp_path):
    """gts/scene-a/<token>/labels.npz for 3 frames, and a prediction folder <token>.npz (arr_0)."""
    base = load_labels(occ3d_frame_path)
    root, preds = tmp_path / "occ3d", tmp_path / "preds"
    tokens = [f"tok{t}" for t in range(3)]
    for t, tok in enumerate(tokens):
        sem = np.roll(base.semantics, -3 * t, axis=0)
        save_labels(root / "gts" / "scene-a" / tok / "labels.npz",
                    Frame(sem, mask_camera=base.mask_camera, mask_lidar=base.mask_lidar))
        pred = sem.copy()
        pred[95:105, 95:105, 2:5] = 4
        save_npz(preds / f"{tok}.npz", True, pred)
    return root, preds, tokens


def png(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def test_render_frame_png_both_styles(occ3d_frame_path, tmp_path):
    main(["render", str(occ3d_frame_path), "--out", str(tmp_path / "a.png"), "--size", "320", "240",
          "--mask", "camera", "--mask-mode", "hide", "--view", "bev"])
    img = png(tmp_path / "a.png")
    assert img.shape[1] == 320 and 240 < img.shape[0] < 280 and img.std() > 10  # render + title bar
    main(["render", str(occ3d_frame_path.parent), "--out", str(tmp_path / "b.png"), "--style", "topdown",
          "--scale", "2", "--title", "frame"])
    assert png(tmp_path / "b.png").shape[1] == 400


def test_render_prediction_against_gt(dataset, tmp_path):
    root, preds, tokens = dataset
    out = tmp_path / "cmp.png"
    main(["render", str(preds / f"{tokens[0]}.npz"), "--gt", str(root / "gts" / "scene-a" / tokens[0]),
          "--out", str(out), "--style", "topdown", "--scale", "1"])
    img = png(out)
    assert img.shape[1] == 3 * 200 + 8
    assert np.all(img[:, 408:] == (255, 48, 48), axis=-1).any()  # the changed block shows as wrong


def test_render_scene_and_prediction_folder(dataset, tmp_path):
    root, preds, tokens = dataset
    main(["render", str(root), "--out", str(tmp_path / "scene.gif"), "--style", "topdown", "--scale", "1"])
    assert read_video(tmp_path / "scene.gif").shape[0] == 3
    main(["render", str(preds), "--gt", str(root), "--out", str(tmp_path / "both.html")])
    page = (tmp_path / "both.html").read_text()
    data = json.loads(page.split('type="application/json">')[1].split("</script>")[0])
    assert data["frames"] == 3 and data["error_of"] == ["gt", "pred"] and data["masks"] is not None
    main(["render", str(root / "gts" / "scene-a"), "--out", str(tmp_path / "strip.png"), "--style", "topdown",
          "--scale", "2"])
    assert png(tmp_path / "strip.png").shape[1] == 3 * 200 + 8  # a time strip of the three frames


def test_render_clip_file_video(occ3d_frame_path, tmp_path):
    sem = load_labels(occ3d_frame_path).semantics
    clip = tmp_path / "forecast.npz"
    save_clip(clip, np.stack([sem, sem]), np.array([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0]]), hz=2.0)
    main(["render", str(clip), "--out", str(tmp_path / "c.mp4"), "--style", "topdown", "--scale", "1"])
    assert read_video(tmp_path / "c.mp4").shape[0] == 2


def test_render_clip_folders(occ3d_frame_path, tmp_path):
    """``occ4d forecast --save S`` writes S/pred and S/gt folders of same-named clip files."""
    sem = load_labels(occ3d_frame_path).semantics
    traj = np.array([[-2.0, 0.0, 0.0], [0.0, 0.0, 0.0], [2.0, 0.0, 0.0]])
    for name, shift in (("a", 0), ("b", 6)):
        gt = np.stack([np.roll(sem, -shift - 3 * t, axis=0) for t in range(3)])
        pred = gt.copy()
        pred[2, 95:105, 95:105, 2:5] = 4  # only the last forecast frame of each clip is wrong
        save_clip(tmp_path / "gt" / f"{name}.npz", gt, traj, current=1)
        save_clip(tmp_path / "pred" / f"{name}.npz", pred, traj, current=1)
    out = tmp_path / "cmp.html"
    main(["render", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"), "--scene", "b", "--out", str(out)])
    data = json.loads(out.read_text().split('type="application/json">')[1].split("</script>")[0])
    assert data["frames"] == 3 and data["current"] == 1 and data["error_of"] == ["gt", "pred"]
    from occ4d.vis.viewer import decode_grid

    shown_gt = decode_grid(data["sources"]["gt"]["frames"][0], sem.shape)
    assert np.array_equal(shown_gt, np.roll(sem, -6, axis=0))  # clip "b", not the first one
    main(["render", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"), "--out", str(tmp_path / "s.png"),
          "--style", "topdown", "--scale", "1"])
    strip = png(tmp_path / "s.png")
    errors = strip[-200:]  # the error row: red only in the third frame
    red = np.all(errors == (255, 48, 48), axis=-1)
    assert not red[:, :404].any() and red[:, 408:].any()
    with pytest.raises(SystemExit, match="clip 'c' not found; clips here: a, b"):
        main(["render", str(tmp_path / "pred"), "--scene", "c", "--out", str(tmp_path / "x.png")])


def test_render_errors(occ3d_frame_path, tmp_path):
    with pytest.raises(SystemExit, match="--out must end in"):
        main(["render", str(occ3d_frame_path), "--out", str(tmp_path / "x.bmp")])
    clip = tmp_path / "clip.npz"
    sem = load_labels(occ3d_frame_path).semantics
    save_clip(clip, np.stack([sem, sem]), np.zeros((2, 3)))
    mismatch = r"clip.npz: prediction has 2 frames and the ground truth \S+labels.npz has 1"
    with pytest.raises(SystemExit, match=mismatch):
        main(["render", str(clip), "--gt", str(occ3d_frame_path), "--out", str(tmp_path / "x.png")])
    with pytest.raises(SystemExit, match="no such file or folder"):
        main(["render", str(tmp_path / "absent.npz"), "--out", str(tmp_path / "x.png")])
    bad = tmp_path / "bad.npz"
    save_npz(bad, True, semantics=np.full((200, 200, 16), 30, np.uint8))
    with pytest.raises(SystemExit, match="bad.npz.*class id 30"):
        main(["render", str(bad), "--out", str(tmp_path / "x.png"), "--style", "topdown"])


def test_report_command(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    record = {"kind": "train", "step": 1, "samples": 2, "loss": 0.5}
    (run / "metrics.jsonl").write_text(json.dumps(record) + "\n")
    main(["report", str(run), "--out", str(tmp_path / "r.html")])
    assert "plotly-graph-div" in (tmp_path / "r.html").read_text()
    assert "wrote" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="run folder not found"):
        main(["report", str(tmp_path / "nope"), "--out", str(tmp_path / "r2.html")])
