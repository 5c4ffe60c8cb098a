"""The HTML viewer: compact self-contained encoding, and the page itself in headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from occ4d.core.vocab import OCC3D_VOCAB, Occ3D
from occ4d.io.occ3d import load_labels
from occ4d.vis.viewer import decode_grid, encode_grid, save_viewer, viewer_html, viewer_payload

CHROMIUM = next((p for p in ("/usr/bin/chromium", shutil.which("chromium") or "",
                             shutil.which("chromium-browser") or "") if p and Path(p).exists()), None)
FREE = OCC3D_VOCAB.free


def test_encoding_round_trip_and_payload(rng):
    grid = rng.integers(0, 18, size=(200, 200, 16), dtype=np.uint8)
    assert np.array_equal(decode_grid(encode_grid(grid), grid.shape), grid)
    clip = np.full((2, 200, 200, 16), FREE, np.uint8)
    clip[1, 5, 5, 5] = Occ3D.CAR
    payload = viewer_payload({"gt": clip, "pred": clip}, trajectory=np.zeros((2, 3)), current=1)
    assert payload["frames"] == 2 and payload["error_of"] == ["gt", "pred"] and payload["current"] == 1
    assert [c["id"] for c in payload["classes"]] == OCC3D_VOCAB.semantic_ids  # free is never drawn
    assert payload["classes"][Occ3D.CAR]["colour"] == "#0096f5"
    with pytest.raises(ValueError, match="same number of frames"):
        viewer_payload({"gt": clip, "pred": clip[0]})
    with pytest.raises(ValueError, match="outside the vocabulary"):
        viewer_payload({"gt": np.full((200, 200, 16), 40, np.uint8)})


def test_page_is_self_contained(occ3d_frame_path):
    sem = load_labels(occ3d_frame_path).semantics
    page = viewer_html({"gt": sem}, title="a <frame>")
    assert "<title>a &lt;frame&gt;</title>" in page
    assert not re.search(r"<script[^>]+src=", page)  # everything inline: opens from disk, offline
    assert not re.search(r'''(src|href)=["']https?:''', page)
    assert "OrbitControls" in page and "DecompressionStream" in page
    # A real frame is small: free space compresses to almost nothing.
    assert len(page.encode()) < 1_000_000


def _chromium(url: str, tmp: Path, *extra: str) -> subprocess.CompletedProcess:
    args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--enable-unsafe-swiftshader",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--no-first-run", f"--user-data-dir={tmp / 'profile'}", "--enable-logging=stderr", "--v=0",
            "--window-size=800,600", "--virtual-time-budget=10000", *extra, url]
    return subprocess.run(args, capture_output=True, text=True, timeout=120)


def _body_attrs(dom: str) -> dict[str, str]:
    body = re.search(r"<body([^>]*)>", dom)
    assert body, dom[:500]
    return dict(re.findall(r'data-([a-z-]+)="([^"]*)"', body.group(1)))


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (scripts/system-deps.sh installs it)")
def test_viewer_in_headless_chromium(occ3d_frame_paths, tmp_path):
    a, b = (load_labels(p) for p in occ3d_frame_paths)
    gt = np.stack([a.semantics, b.semantics])
    pred = gt.copy()
    pred[:, 90:110, 90:110, 0:4] = Occ3D.CAR
    page = tmp_path / "viewer.html"
    save_viewer(page, {"gt": gt, "pred": pred}, mask_camera=np.stack([a.mask_camera, b.mask_camera]),
                trajectory=np.array([[0.0, 0.0, 0.0], [4.0, 0.5, 0.1]]))
    url = page.resolve().as_uri()

    shots, logs = [], []
    for t in (0, 1):
        run = _chromium(f"{url}#t={t}&src=gt&view=orbit", tmp_path, "--dump-dom")
        assert run.returncode == 0, run.stderr[-2000:]
        attrs = _body_attrs(run.stdout)
        assert attrs.get("status") == "ready", attrs.get("error", run.stdout[-500:])
        assert attrs["frame"] == str(t) and attrs["source"] == "gt"
        # Every non-free voxel of that frame is drawn, none more.
        assert int(attrs["voxels"]) == int((gt[t] != FREE).sum())
        logs.append(run.stderr)
        png = tmp_path / f"shot{t}.png"
        shot = _chromium(f"{url}#t={t}&src=gt&view=orbit", tmp_path, f"--screenshot={png}")
        assert shot.returncode == 0 and png.is_file(), shot.stderr[-2000:]
        shots.append(np.asarray(Image.open(png).convert("RGB")).astype(int))
        logs.append(shot.stderr)

    for log in logs:  # page errors reach the console as "Uncaught ..." lines
        console = [line for line in log.splitlines() if "CONSOLE" in line]
        assert not [line for line in console if "Uncaught" in line or "Error:" in line], console
    for img in shots:
        assert img.shape == (600, 800, 3)
        background = np.all(img == (40, 40, 46), axis=-1)
        assert 0.2 < (~background).mean() < 0.98  # voxels and the panel, not a blank page
    assert np.abs(shots[0] - shots[1]).mean() > 3  # the time slider changed the picture
