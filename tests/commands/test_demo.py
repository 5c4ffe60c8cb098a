"""occ4d demo, at the smallest size: every stage runs and leaves its outputs."""

from __future__ import annotations

import numpy as np

from occ4d.cli import main
from occ4d.vis.video import read_video


def test_demo_end_to_end(tmp_path, capsys):
    main(["demo", "--out", str(tmp_path), "--scenes", "2", "--frames", "10", "--pictures", "2"])
    text = capsys.readouterr().out
    assert "class histogram" in text
    assert "copy-last: 1 windows" in text and "ego-warp: 1 windows" in text
    pngs = sorted((tmp_path / "pictures").glob("*.png"))
    assert len(pngs) == 2
    gif = next((tmp_path / "pictures").glob("*.gif"))
    frames = read_video(gif)
    assert len(frames) == 10 and frames.std() > 10  # ten keyframes, not blank
    html = (tmp_path / "viewer.html").read_text()
    assert "ego-warp forecast" in html and len(html) > 100_000
    assert (tmp_path / "world" / "occ4d_infos_temporal_val.pkl").is_file()
    # the baselines' tables are real numbers in the protocol's range
    rows = [line.split() for line in text.splitlines() if line.startswith(("mIoU", "IoU"))]
    vals = np.array([[float(v) for v in r[1:]] for r in rows])
    assert vals.shape == (4, 4) and np.all((vals >= 0) & (vals <= 100))


def test_demo_refuses_too_few_frames(tmp_path):
    import pytest

    with pytest.raises(SystemExit, match="at least 10"):
        main(["demo", "--out", str(tmp_path), "--frames", "5"])
