"""The README's pictures come from the documented command (docs/make_media.py), from the synthetic world."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from occ4d.vis.video import read_video
from occ4d.vis.voxels import BACKGROUND_3D

SCRIPT = Path(__file__).resolve().parents[2] / "docs" / "make_media.py"


@pytest.mark.slow
@pytest.mark.skipif(not SCRIPT.is_file(), reason="docs/make_media.py is not in this checkout")
def test_make_media_writes_the_readme_pictures(tmp_path):
    def make(out: Path) -> subprocess.CompletedProcess:
        cmd = [sys.executable, str(SCRIPT), "--seed", "7", "--frames", "4", "--out", str(out)]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=300)

    run = make(tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    png, gif = tmp_path / "synthetic_frame.png", tmp_path / "synthetic_clip.gif"
    assert 0 < png.stat().st_size < 1_000_000 and 0 < gif.stat().st_size < 1_000_000
    frame = np.asarray(Image.open(png).convert("RGB"))
    assert frame.shape[1] == 720
    assert 0.2 < (~np.all(frame == BACKGROUND_3D, axis=-1)).mean() < 0.98  # a scene, not a blank picture
    clip = read_video(gif)
    assert clip.shape[0] == 4 and len({c.tobytes() for c in clip}) == 4  # the clip moves
    # the scene's first four keyframes continued along three prompts, side by side
    steered = read_video(tmp_path / "steered.gif")
    assert steered.shape[0] == 12 and (tmp_path / "steered.gif").stat().st_size < 1_000_000
    width = (steered.shape[2] - 8) // 3  # three panels, 4-pixel gaps
    panels = [steered[:, :, k * (width + 4) : k * (width + 4) + width] for k in range(3)]
    ends = [p[-1, 30:] for p in panels]  # the last frames, below the titles: the prompts part ways
    assert not any(np.array_equal(ends[a], ends[b]) for a, b in ((0, 1), (0, 2), (1, 2)))
    again = tmp_path / "again"
    assert make(again).returncode == 0
    assert (again / "synthetic_clip.gif").read_bytes() == gif.read_bytes()  # the same seed, the same bytes
    assert (again / "steered.gif").read_bytes() == (tmp_path / "steered.gif").read_bytes()
