"""End to end: ``occ4d train perception`` on the synthetic cameras, ``occ4d eval perception``, the
camera-input world model through ``occ4d forecast --perception``, the most-frequent-class baseline,
and ``occ4d perceive`` on the real keyframe's six images."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from _camworld import camera_world

from occ4d.cli import main
from occ4d.core.vocab import OCC3D_VOCAB
from occ4d.data.index import load_frame, load_index

SMALL = ["--model.image-size", "64", "32", "--model.depth-bins", "8", "--model.context-channels", "8",
         "--model.fpn-channels", "16", "--model.bev-channels", "16", "32", "--model.head-channels", "8",
         "--optim.total-samples", "2", "--optim.warmup-samples", "0", "--run.progress", "False",
         "--clips.max-val-samples", "2"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("perception") / "run"
    main(["train", "perception", "--preset", "tiny", "--data", str(camera_world()), "--out", str(out),
          *SMALL])
    return out


def test_train_writes_checkpoints_and_evaluates(run):
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in records if r["kind"] == "eval"]
    assert evals and {"mIoU", "RayIoU", "IoU", "fps"} <= set(evals[-1])
    assert sorted(p.name for p in run.glob("ckpt-*.safetensors"))


def test_the_class_prior_is_fitted_at_start_and_saved_with_the_weights(run):
    """The tiny preset's prior is the training split's log-frequencies, in both weight sets."""
    from occ4d.models.perception.prior import log_prior
    from occ4d.models.perception.recipe import split_counts
    from occ4d.train.checkpoint import load_checkpoint
    from occ4d.train.registry import load_model

    model, cfg, _ = load_model(run)
    assert cfg.model.class_prior
    want = log_prior(split_counts(load_index(camera_world(), "train")), cfg.model.prior_smoothing)
    tensors, _ = load_checkpoint(run)
    assert torch.equal(tensors["model"]["prior_logits"], want)
    assert torch.equal(tensors["ema"]["prior_logits"], want)
    assert torch.equal(model.prior_logits, want)


def test_eval_perception_scores_the_split(run, tmp_path):
    out = tmp_path / "eval.json"
    main(["eval", "perception", "--ckpt", str(run), "--data", str(camera_world()), "--json", str(out)])
    res = json.loads(out.read_text())["results"]
    assert res["protocol"].startswith("perception/occ3d-miou/mask=camera + rayiou")
    assert res["frames"] == 8 and res["GFLOPs"] > 0 and res["fps"] > 0
    assert 0 <= res["mIoU"] <= 100 and 0 <= res["RayIoU"] <= 100


def test_forecast_history_comes_from_the_cameras(run, tmp_path, capsys):
    from occ4d.data.dataset import ClipDataset
    from occ4d.models.perception.perceived import perceived_history

    root = camera_world()
    records = load_index(root, "val")
    clips = ClipDataset(records, past=2, future=6, stride=1, with_masks=False)
    ds = perceived_history(run, clips, root, records, past=2)
    item, plain = ds[0], clips[0]
    for t, token in enumerate(plain["tokens"][:2]):
        assert torch.equal(item["semantics"][t], ds.predict(token).long())
    assert torch.equal(item["semantics"][2:], plain["semantics"][2:])  # the future stays ground truth
    out = tmp_path / "f.json"
    main(["forecast", "--ckpt", "copy-last", "--data", str(root), "--perception", str(run), "--past", "2",
          "--future", "6", "--json", str(out)])
    res = json.loads(out.read_text())
    assert res["history"].startswith("cameras via") and res["windows"] == 1
    assert "history: cameras via" in capsys.readouterr().out


def test_most_frequent_grid_is_the_per_voxel_mode():
    from occ4d.models.perception.recipe import most_frequent_grid

    records = load_index(camera_world(), "train")
    grid = most_frequent_grid(records)
    frames = np.stack([load_frame(r).semantics for r in records])
    i, j, k = 100, 100, 0
    values, counts = np.unique(frames[:, i, j, k], return_counts=True)
    assert grid[i, j, k] == values[counts.argmax()]
    assert grid.shape == (200, 200, 16) and (grid == OCC3D_VOCAB.free).mean() > 0.5


def test_perceive_the_real_keyframe(run, nuscenes_keyframe_info, tmp_path):
    from occ4d.io.images import load_image

    main(["perceive", "--ckpt", str(run), "--info", str(nuscenes_keyframe_info), "--out", str(tmp_path)])
    token = "ca9a282c9e77460f8360f564131a8af5"
    with np.load(tmp_path / f"{token}.npz") as z:
        pred = z["arr_0"]
    assert pred.shape == (200, 200, 16) and pred.dtype == np.uint8 and pred.max() < OCC3D_VOCAB.num_classes
    picture = load_image(tmp_path / f"{token}.png")
    assert picture.shape[0] > 200 and picture.shape[1] > 1200
