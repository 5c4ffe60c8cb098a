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


def test_eval_perception_scores_flow_and_saves_what_eval_flow_scores_the_same(run, tmp_path):
    """The flow head's figures in both official mAVE variants; the saved OpenOcc v2 predictions,
    scored by ``occ4d eval flow`` against the world, give the same RayIoU, mAVE and Occ Score."""
    world, save = camera_world(), tmp_path / "pred"
    out = tmp_path / "eval.json"
    main(["eval", "perception", "--ckpt", str(run), "--data", str(world), "--json", str(out),
          "--save", str(save)])
    res = json.loads(out.read_text())["results"]
    assert "rayiou+mave[tp@2m]" in res["protocol"] and "rayiou+mave[all-valid-rays]" in res["protocol"]
    for key in ("flow_RayIoU", "mAVE", "OccScore", "mAVE_all", "OccScore_all"):
        assert key in res
    assert set(res["per_class_AVE"]) <= {"car", "truck", "trailer", "bus", "construction_vehicle", "bicycle",
                                         "motorcycle", "pedestrian"}
    tokens = {r.token for r in load_index(world, "val")}
    assert {p.stem for p in save.glob("*.npz")} == tokens
    assert {p.parent.name for p in save.glob("openocc_v2/*/*/labels.npz")} == tokens
    for protocol, suffix in (("tp@2m", ""), ("all-valid-rays", "_all")):
        flow_json = tmp_path / f"flow{suffix}.json"
        main(["eval", "flow", "--pred", str(save), "--gt", str(world), "--split", "val",
              "--protocol", protocol, "--json", str(flow_json)])
        flow = json.loads(flow_json.read_text())["results"]
        assert 100 * flow["OccScore"] == pytest.approx(res[f"OccScore{suffix}"], abs=1e-6, nan_ok=True)
        assert flow["mAVE"] == pytest.approx(res[f"mAVE{suffix}"], abs=1e-6, nan_ok=True)
        if not suffix:
            assert 100 * flow["RayIoU"] == pytest.approx(res["flow_RayIoU"], abs=1e-6)
    # the saved Occ3D predictions score the same mIoU through occ4d eval occ
    occ_json = tmp_path / "occ.json"
    main(["eval", "occ", "--pred", str(save), "--gt", str(world), "--split", "val", "--json", str(occ_json)])
    assert json.loads(occ_json.read_text())["results"]["mIoU"] == pytest.approx(res["mIoU"], abs=1e-6)


def test_save_applies_to_perception_only(tmp_path):
    with pytest.raises(SystemExit, match="--save applies to perception only"):
        main(["eval", "occ", "--pred", str(tmp_path), "--gt", str(camera_world()), "--save", str(tmp_path)])


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


def test_perceived_flow_is_in_the_openocc_v2_layout_of_the_real_frames(run, nuscenes_keyframe_info,
                                                                        openocc_frame_path, tmp_path):
    """Format check on real data: the flow ``occ4d perceive`` writes for the real nuScenes keyframe
    reads as an OpenOcc v2 frame and scores against the real OpenOcc v2 frame in ../shared/data
    (another keyframe, so the figures mean nothing beyond the format)."""
    from occ4d.core.vocab import OPENOCC_VOCAB, convert_labels
    from occ4d.io.openocc import load_openocc
    from occ4d.metrics import RayFlowMetric

    main(["perceive", "--ckpt", str(run), "--info", str(nuscenes_keyframe_info), "--out", str(tmp_path)])
    token = "ca9a282c9e77460f8360f564131a8af5"
    pred = load_openocc(tmp_path / "openocc_v2" / "keyframe" / token / "labels.npz")
    with np.load(tmp_path / f"{token}.npz") as z:
        occ3d = z["arr_0"]
    want = convert_labels(occ3d, OCC3D_VOCAB, OPENOCC_VOCAB)
    want[want == 255] = OPENOCC_VOCAB.free
    assert np.array_equal(pred.semantics, want)
    assert pred.flow.shape == (200, 200, 16, 2) and np.isfinite(pred.flow).all()
    assert np.array_equal(pred.flow, np.broadcast_to(pred.flow[:, :, :1], pred.flow.shape))
    real = load_openocc(openocc_frame_path)
    origins = np.array([[0.985793, 0.0, 1.84019]])
    for variant in ("tp@2m", "all-valid-rays"):
        metric = RayFlowMetric(mave=variant)
        metric.update(pred.semantics, real.semantics, origins, pred.flow, real.flow,
                      source=str(openocc_frame_path))
        res = metric.compute()
        assert 0 <= res["RayIoU"] <= 1 and res["mAVE_variant"] == variant
        if not np.isnan(res["mAVE"]):
            assert res["OccScore"] == pytest.approx(0.9 * res["RayIoU"] + 0.1 * max(1 - res["mAVE"], 0))


def test_flow_scores_of_a_model_that_predicts_the_ground_truth(tmp_path):
    """A stand-in model returning each val keyframe's own Occ3D labels and OpenOcc flow scores
    mAVE 0 and Occ Score 0.9 RayIoU + 0.1 in both variants; a wrong flow raises the tp@2m mAVE
    by exactly its error on the true-positive rays."""
    import dataclasses

    from occ4d.data.index import openocc_twins
    from occ4d.models.perception.recipe import PRESETS, dataset, perception_scores
    from occ4d.train.config import RunConfig, TrainConfig

    world = camera_world()
    preset = PRESETS["tiny"]
    cfg = TrainConfig(model=dataclasses.replace(preset.model, image_size=(64, 32)),
                      data=dataclasses.replace(preset.data, root=str(world)), optim=preset.optim,
                      model_name="perception", preset="tiny", run=RunConfig())
    val = dataset(cfg, "val")
    records = [frames[-1] for frames in val.frames]
    gts = [(load_frame(r).semantics, load_frame(t).flow) for r, t in zip(records, openocc_twins(records),
                                                                          strict=True)]

    class Oracle(torch.nn.Module):
        def __init__(self, offset):
            super().__init__()
            self.config, self.i, self.offset = cfg.model, 0, offset

        def predict_flow(self, *inputs):
            sem, flow = gts[self.i]
            self.i += 1
            return torch.from_numpy(sem)[None], torch.from_numpy(flow + self.offset)[None]

    out, full = perception_scores(Oracle(0.0), val, cfg, torch.device("cpu"))
    assert out["mAVE"] == 0.0 and out["mAVE_all"] == 0.0
    assert out["OccScore"] == pytest.approx(90 * full["flow"]["RayIoU"] + 10)
    assert out["OccScore_all"] == pytest.approx(out["OccScore"])
    assert full["flow"]["RayIoU"] > 0.9  # Occ3D labels relabelled to OpenOcc: only "others" differs
    offset = np.float32(0.6) / np.sqrt(np.float32(2))  # (offset, offset) is 0.6 m/s off
    shifted, _ = perception_scores(Oracle(offset), val, cfg, torch.device("cpu"))
    assert shifted["mAVE"] == pytest.approx(0.6, abs=1e-5)
