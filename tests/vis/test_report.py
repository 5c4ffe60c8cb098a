"""Run reports: tables, curves, embedded samples, tolerant of a half-written log line."""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pytest

from occ4d.core.errors import DataError
from occ4d.core.vocab import OCC3D_VOCAB, Occ3D
from occ4d.io.clipfile import save_clip
from occ4d.vis.report import build_report, curve_series, read_run, save_report
from occ4d.vis.topdown import save_png


def make_run(root, with_partial_line: bool = True):
    root.mkdir()
    lines = []
    for step in range(1, 11):
        lines.append(json.dumps({"kind": "train", "step": step, "samples": 4 * step, "time": 0.0,
                                 "loss": 1.0 / step, "lr": 1e-3}))
        if step % 5 == 0:
            lines.append(json.dumps({"kind": "eval", "step": step, "samples": 4 * step, "time": 0.0,
                                     "mIoU": 20.0 + step}))
    text = "\n".join(lines) + "\n" + ('{"kind": "tra' if with_partial_line else "")
    (root / "metrics.jsonl").write_text(text)
    (root / "config.json").write_text(json.dumps({"model": {"preset": "tiny"}, "seed": 3}))
    (root / "ckpt-00000010.json").write_text(json.dumps({"step": 10, "samples": 40}))
    (root / "eval-val.json").write_text(json.dumps({"protocol": "occ3d-miou/mask=camera", "mIoU": 31.25,
                                                     "per_class": {"car": 44.5, "bus": 12.0}}))
    (root / "samples").mkdir()
    save_png(root / "samples" / "frame.png", np.full((8, 8, 3), 200, np.uint8))
    sem = np.full((3, 200, 200, 16), OCC3D_VOCAB.free, np.uint8)
    sem[:, 100:104, 90:95, 1:4] = Occ3D.CAR
    save_clip(root / "samples" / "forecast.npz", sem, np.array([[0.0, 0, 0], [1.5, 0, 0], [3.0, 0, 0]]))
    return root


def test_read_run_and_curves(tmp_path):
    run = read_run(make_run(tmp_path / "run"))
    assert len(run.records) == 12 and run.bad_lines == [13]
    assert run.config["seed"] == 3 and run.checkpoints == [{"file": "ckpt-00000010.json", "step": 10,
                                                            "samples": 40}]
    assert list(run.metric_files) == ["eval-val.json"]
    assert [p.name for p in run.media] == ["frame.png"] and [p.name for p in run.clips] == ["forecast.npz"]
    series = curve_series(run.records)
    assert set(series) == {"loss", "lr", "mIoU"}
    assert series["mIoU"]["eval"] == ([20, 40], [25.0, 30.0])
    assert series["loss"]["train"][0][:3] == [4, 8, 12]


def test_report_contents(tmp_path):
    root = make_run(tmp_path / "run")
    out = tmp_path / "report.html"
    save_report(out, root)
    page = out.read_text()
    assert page.count('class="plotly-graph-div"') == 3  # loss, lr, mIoU
    assert "31.25" in page and "per_class/car" in page and "44.5" in page
    assert "ckpt-00000010.json" in page and "&quot;preset&quot;: &quot;tiny&quot;" in page
    assert "skipped unreadable line(s) [13]" in page
    assert not re.search(r"<script[^>]+src=", page)  # plotly is inlined: the page works offline
    gifs = re.findall(r'src="data:image/gif;base64,([^"]+)"', page)
    assert len(gifs) == 1 and base64.b64decode(gifs[0])[:6] == b"GIF89a"
    assert len(re.findall(r'<img alt="samples/frame.png" src="data:image/png;base64,', page)) == 1


def test_empty_and_missing_runs(tmp_path):
    (tmp_path / "empty").mkdir()
    page = build_report(tmp_path / "empty")
    assert "no metrics were logged" in page and "plotly-graph-div" not in page
    with pytest.raises(DataError, match="run folder not found"):
        build_report(tmp_path / "absent")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text("{nope")
    with pytest.raises(DataError, match="config.json: not valid JSON"):
        build_report(tmp_path / "bad")


def test_forecast_pairs_in_the_run_folder_are_compared(tmp_path):
    """``occ4d forecast --save RUN/samples`` writes RUN/samples/{pred,gt}/<window>.npz."""
    root = make_run(tmp_path / "run", with_partial_line=False)
    gt = np.full((3, 200, 200, 16), OCC3D_VOCAB.free, np.uint8)
    gt[:, 100:104, 90:95, 1:4] = Occ3D.CAR
    pred = gt.copy()
    pred[2, 100:104, 90:95, 1:4] = Occ3D.BUS  # the last forecast frame has the wrong class
    traj = np.array([[-1.5, 0.0, 0.0], [0.0, 0, 0], [1.5, 0, 0]])
    save_clip(root / "samples" / "gt" / "w0.npz", gt, traj, current=1)
    save_clip(root / "samples" / "pred" / "w0.npz", pred, traj, current=1)
    run = read_run(root)
    assert run.pairs == [(root / "samples" / "gt" / "w0.npz", root / "samples" / "pred" / "w0.npz")]
    assert [p.name for p in run.clips] == ["forecast.npz"]  # the pair is not shown twice
    page = build_report(root)
    assert "samples/pred/w0.npz (3 frames, mean frame mIoU" in page
    gifs = re.findall(r'src="data:image/gif;base64,([^"]+)"', page)
    assert len(gifs) == 2  # the comparison and the lone clip file
    from occ4d.vis.video import read_video

    out = tmp_path / "cmp.gif"
    out.write_bytes(base64.b64decode(gifs[0]))
    red = np.all(read_video(out) == (255, 48, 48), axis=-1).sum(axis=(1, 2))
    assert red[0] == red[1] == 0 and red[2] > 0  # wrong voxels only in the frame that differs
