"""``occ4d report`` samples the run's model: tokenizer reconstructions and forecasts beside ground truth."""

from __future__ import annotations

import base64
import io
import json
import re
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from occ4d.cli import main
from occ4d.commands.report import forecast_samples, model_samples
from occ4d.core.frame import Frame
from occ4d.core.vocab import OCC3D_VOCAB
from occ4d.io.occ3d import load_labels, save_labels
from occ4d.vis.compare import frame_miou

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models (tests/conftest.py)

FREE = OCC3D_VOCAB.free


@pytest.fixture
def dataset(occ3d_frame_path, tmp_path):
    """One val scene of 10 frames (the real frame, shifted 2 voxels per frame) in the Occ3D layout."""
    root = tmp_path / "data"
    base = load_labels(occ3d_frame_path)
    for t in range(10):
        save_labels(root / "gts" / "scene-0000" / f"tok{t}" / "labels.npz",
                    Frame(np.roll(base.semantics, -2 * t, axis=0), mask_camera=base.mask_camera,
                          mask_lidar=base.mask_lidar))
    (root / "annotations.json").write_text(json.dumps({"train_split": [], "val_split": ["scene-0000"]}))
    return root


def tokenizer_run(run, root):
    """A tiny untrained tokenizer saved as a run's checkpoint (the report only needs its weights)."""
    from occ4d.train.checkpoint import save_checkpoint
    from occ4d.train.config import OptimConfig, RunConfig, TrainConfig, to_dict
    from occ4d.train.registry import get_spec

    spec = get_spec("tokenizer")
    preset = spec.presets["tiny-vqvae"]
    model_cfg = replace(preset.model, channels=8, latent_dim=16, codebook_size=32, train_crop=32)
    data = replace(preset.data, root=str(root))
    cfg = TrainConfig("tokenizer", "tiny-vqvae", model_cfg, data, OptimConfig(), RunConfig())
    torch.manual_seed(0)
    model = spec.build(model_cfg)
    state = {"config": to_dict(cfg), "samples": 7}
    save_checkpoint(run, 7, {"model": model.state_dict()}, state, keep_last=1)
    return model.eval()


def figures(page: str) -> list[tuple[str, np.ndarray]]:
    """(caption, first picture) of every embedded figure."""
    out = []
    pattern = (r'<figure><img alt="[^"]*" src="data:image/(?:png|gif);base64,([^"]+)">'
               r"<figcaption>([^<]*)</figcaption>")
    for data, caption in re.findall(pattern, page):
        out.append((caption, np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB"))))
    return out


def test_report_shows_tokenizer_reconstructions(dataset, tmp_path, capsys):
    model = tokenizer_run(tmp_path / "run", dataset)
    found, notes = model_samples(tmp_path / "run", None, 1, "val")  # data folder from the run's config
    assert len(found) == 1 and not notes
    for s in found:
        with torch.no_grad():
            expected = model.reconstruct(torch.from_numpy(s.gt)[None])[0].numpy()
        assert np.array_equal(s.pred, expected) and s.gt.shape == (1, 200, 200, 16)
        assert s.mask is not None and s.mask.dtype == bool and "reconstruction at step 7" in s.name
    out = tmp_path / "report.html"
    main(["report", str(tmp_path / "run"), "--out", str(out), "--samples", "1"])
    assert "1 model sample(s)" in capsys.readouterr().out
    shown = figures(out.read_text())
    assert len(shown) == 1
    for (caption, pic), s in zip(shown, found, strict=True):
        miou = frame_miou(s.gt[0], s.pred[0], mask=s.mask[0])
        assert f"mean frame mIoU {miou:.2f} %" in caption
        assert pic.shape[1] == 3 * 400 + 8  # ground truth | prediction | error at 2 pixels per voxel


def test_report_notes_when_no_sample_can_be_made(dataset, tmp_path, capsys):
    tokenizer_run(tmp_path / "run", tmp_path / "moved-away")
    main(["report", str(tmp_path / "run"), "--out", str(tmp_path / "r.html")])
    assert "pass --data DIR" in capsys.readouterr().out
    assert "pass --data DIR" in (tmp_path / "r.html").read_text()
    assert model_samples(tmp_path / "run", dataset, 0, "val") == ([], [])  # --samples 0: none asked for
    main(["report", str(tmp_path / "run"), "--out", str(tmp_path / "r2.html"), "--data", str(dataset),
          "--samples", "1"])
    assert len(figures((tmp_path / "r2.html").read_text())) == 1


def test_forecast_samples_beside_ground_truth(dataset, tmp_path):
    from occ4d.models.world import EgoWarp
    from occ4d.vis.report import sample_html
    from occ4d.vis.video import read_video

    found = forecast_samples(EgoWarp(past=4, future=6), dataset, 3, "val", past=4, future=6)
    assert len(found) == 1  # one whole window of 10 frames in the scene
    s = found[0]
    assert s.gt.shape == s.pred.shape == (10, 200, 200, 16)
    assert s.current == 3 and s.trajectory.shape == (10, 3)
    assert np.array_equal(s.pred[:4], s.gt[:4])  # the history is given, the future forecast
    assert not np.array_equal(s.pred[4:], s.gt[4:])
    page = sample_html(s)
    assert "10 frames, mean frame mIoU" in page
    gif = tmp_path / "sample.gif"
    gif.write_bytes(base64.b64decode(re.search(r'src="data:image/gif;base64,([^"]+)"', page).group(1)))
    frames = read_video(gif)
    assert frames.shape[0] == 10
    red = np.all(frames == (255, 48, 48), axis=-1).sum(axis=(1, 2))  # wrong voxels in the error panel
    assert red[:4].sum() == 0 and (red[4:] > 0).all()
