"""The HTML viewer: compact self-contained encoding, and the page itself in headless Chromium."""

from __future__ import annotations

import base64
import fcntl
import io
import json
import os
import re
import select
import shutil
import subprocess
import time
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


class Chromium:
    """Headless Chromium driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``:
    commands go in on fd 3, replies and events come out on fd 4, each a JSON text ending in NUL),
    so the test clicks the real controls and sees every console message without extra packages."""

    def __init__(self, tmp: Path, width: int = 800, height: int = 600):
        to_r, self._to_w = os.pipe()
        self._from_r, from_w = os.pipe()

        def fds() -> None:  # in the child: the pipe ends become fds 3 and 4 (moved above 10 first)
            r, w = fcntl.fcntl(to_r, fcntl.F_DUPFD, 10), fcntl.fcntl(from_w, fcntl.F_DUPFD, 10)
            os.dup2(r, 3)
            os.dup2(w, 4)

        args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--enable-unsafe-swiftshader",
                "--remote-debugging-pipe", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp / 'profile'}",
                f"--window-size={width},{height}", "about:blank"]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, close_fds=False, preexec_fn=fds)
        os.close(to_r)
        os.close(from_w)
        self._buf, self._id, self.events, self._session = b"", 0, [], None
        page = next(t for t in self.send("Target.getTargets")["targetInfos"] if t["type"] == "page")
        attached = self.send("Target.attachToTarget", targetId=page["targetId"], flatten=True)
        self._session = attached["sessionId"]
        for domain in ("Runtime", "Log", "Page"):
            self.send(f"{domain}.enable")
        self.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                  mobile=False)

    def _message(self, deadline: float) -> dict:
        while b"\0" not in self._buf:
            ready, _, _ = select.select([self._from_r], [], [], max(deadline - time.monotonic(), 0))
            if not ready:
                raise TimeoutError("no reply from chromium")
            chunk = os.read(self._from_r, 1 << 20)
            if not chunk:
                raise RuntimeError(f"chromium exited (code {self.proc.poll()})")
            self._buf += chunk
        msg, self._buf = self._buf.split(b"\0", 1)
        return json.loads(msg)

    def send(self, method: str, timeout: float = 60, **params) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params}
        if self._session and not method.startswith(("Target.", "Browser.")):
            msg["sessionId"] = self._session
        os.write(self._to_w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._message(deadline)
            if reply.get("id") == self._id:
                assert "error" not in reply, (method, reply["error"])
                return reply["result"]
            self.events.append(reply)

    def js(self, expression: str):
        """Evaluate ``expression`` in the page and return its value (statements: wrap in braces)."""
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    def wait(self, condition: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not self.js(condition):
            assert time.monotonic() < deadline, f"timed out waiting for {condition}"
            time.sleep(0.05)

    def screenshot(self) -> np.ndarray:
        data = base64.b64decode(self.send("Page.captureScreenshot", format="png")["data"])
        return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(int)

    def problems(self) -> list[str]:
        """Console errors, uncaught exceptions and error-level log entries seen so far."""
        out = []
        for e in self.events:
            p = e.get("params", {})
            if e.get("method") == "Runtime.exceptionThrown":
                out.append(str(p["exceptionDetails"]))
            elif e.get("method") == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append(str(p.get("args")))
            elif e.get("method") == "Log.entryAdded" and p["entry"]["level"] == "error":
                out.append(p["entry"]["text"])
        return out

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=10)
        except (RuntimeError, TimeoutError, OSError):
            pass  # it may close the pipe before it replies; it is killed below if still running
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait(10)
            os.close(self._to_w)
            os.close(self._from_r)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (scripts/system-deps.sh installs it)")
def test_viewer_in_headless_chromium(occ3d_frame_paths, tmp_path):
    a, b = (load_labels(p) for p in occ3d_frame_paths)
    gt = np.stack([a.semantics, b.semantics])
    pred = gt.copy()
    pred[:, 90:110, 90:110, 0:4] = Occ3D.CAR
    mask = np.stack([a.mask_camera, b.mask_camera]).astype(bool)
    page = tmp_path / "viewer.html"
    save_viewer(page, {"gt": gt, "pred": pred}, mask_camera=mask,
                trajectory=np.array([[0.0, 0.0, 0.0], [4.0, 0.5, 0.1]]))
    browser = Chromium(tmp_path)
    try:
        def drawn(frame: int, source: str, voxels: int) -> None:
            """Wait until the page shows this frame and source with exactly this many voxels."""
            browser.wait(f"document.body.dataset.frame === '{frame}' && document.body.dataset.source === "
                         f"'{source}' && document.body.dataset.voxels === '{voxels}'")

        def changed(before: np.ndarray) -> np.ndarray:
            after = browser.screenshot()
            assert np.abs(after - before).mean() > 3
            return after

        browser.send("Page.navigate", url=f"{page.resolve().as_uri()}#t=0&src=gt&view=orbit")
        browser.wait("document.body && document.body.dataset.status !== ''")
        status = browser.js("document.body.dataset.status")
        assert status == "ready", browser.js("document.body.dataset.error")
        n = [int((g != FREE).sum()) for g in gt]
        drawn(0, "gt", n[0])  # every non-free voxel of the frame is drawn, none more
        shot = browser.screenshot()
        assert shot.shape == (600, 800, 3)
        background = np.all(shot == (40, 40, 46), axis=-1)
        assert 0.2 < (~background).mean() < 0.98  # voxels and the panel, not a blank page

        # The time slider: moved to the second frame, it draws that frame and says so.
        browser.js("{ const s = document.getElementById('time'); s.value = '1';"
                   " s.dispatchEvent(new Event('input')); }")
        drawn(1, "gt", n[1])
        assert "frame 2/2" in browser.js("document.getElementById('time-label').textContent")
        assert "t=1" in browser.js("location.hash")
        shot = changed(shot)

        # A class toggle in the legend hides exactly that class; ticking it again brings it back.
        c = int(np.bincount(gt[1][gt[1] != FREE]).argmax())
        toggle = f"document.querySelector('#legend input[data-cls=\"{c}\"]').click()"
        browser.js(toggle)
        drawn(1, "gt", n[1] - int((gt[1] == c).sum()))
        shot = changed(shot)
        browser.js(toggle)
        drawn(1, "gt", n[1])

        # The ground-truth / prediction switch, and the error view of the pair.
        select = ("{{ const e = document.getElementById('source'); e.value = '{}';"
                  " e.dispatchEvent(new Event('change')); }}")
        browser.js(select.format("pred"))
        drawn(1, "pred", int((pred[1] != FREE).sum()))
        browser.js(select.format("error"))
        drawn(1, "error", int(((gt[1] != FREE) | (pred[1] != FREE)).sum()))
        shot = changed(shot)
        browser.js(select.format("gt"))
        drawn(1, "gt", n[1])

        # Only camera-visible voxels.
        browser.js("document.getElementById('mask').click()")
        drawn(1, "gt", int(((gt[1] != FREE) & mask[1]).sum()))
        browser.js("document.getElementById('mask').click()")
        drawn(1, "gt", n[1])

        # Orbit controls: a drag across the picture turns the camera.
        shot = browser.screenshot()
        mouse = dict(button="left", clickCount=1)
        browser.send("Input.dispatchMouseEvent", type="mousePressed", x=500, y=300, buttons=1, **mouse)
        browser.send("Input.dispatchMouseEvent", type="mouseMoved", x=650, y=300, buttons=1, button="left")
        browser.send("Input.dispatchMouseEvent", type="mouseReleased", x=650, y=300, buttons=0, **mouse)
        shot = changed(shot)

        assert browser.js("document.body.dataset.status") == "ready"
        assert not browser.problems()
    finally:
        browser.close()
