"""The interactive viewer: one self-contained HTML file that opens from disk, no server, offline.

The file inlines a vendored three.js bundle (``assets/three-occ4d.min.js``, rebuilt by
``assets/vendor_three.sh``), the viewer script (``assets/viewer.js``) and the data. Every grid is
stored as its raw uint8 bytes in ``[x, y, z]`` C order, zlib-compressed and base64-encoded; the
browser inflates it with ``DecompressionStream('deflate')``. A 200x200x16 Occ3D frame (640 kB raw)
takes a few tens of kB this way, since free space compresses to almost nothing.

The viewer has orbit controls, class toggles in the legend, a time slider for clips, a switch
between sources (ground truth / prediction, plus an error view when both are given) and a
camera-mask filter. Its state lives in the URL hash (``#t=3&src=pred&view=bev``), so a link
reopens the same picture and tests can drive it without a browser automation library.
"""

from __future__ import annotations

import base64
import json
import os
import re
import zlib
from collections.abc import Mapping
from importlib import resources

import numpy as np

from occ4d.core.grid import OCC3D, GridSpec
from occ4d.core.vocab import OCC3D_VOCAB, Vocabulary
from occ4d.io.atomic import write_text

SOURCE_LABELS = {"gt": "ground truth", "pred": "prediction"}


def _asset(name: str) -> str:
    return resources.files("occ4d.vis").joinpath("assets", name).read_text(encoding="utf-8")


def encode_grid(a: np.ndarray) -> str:
    """uint8 array -> base64 of its zlib-compressed C-order bytes (what the viewer inflates)."""
    raw = np.ascontiguousarray(a, dtype=np.uint8).tobytes()
    return base64.b64encode(zlib.compress(raw, 6)).decode("ascii")


def decode_grid(text: str, shape: tuple[int, ...]) -> np.ndarray:
    """Inverse of :func:`encode_grid`."""
    return np.frombuffer(zlib.decompress(base64.b64decode(text)), dtype=np.uint8).reshape(shape)


def _as_clip(name: str, a: np.ndarray, grid: GridSpec) -> np.ndarray:
    a = np.asarray(a)
    if a.shape == tuple(grid.shape):
        a = a[None]
    if a.ndim != 4 or a.shape[1:] != tuple(grid.shape):
        raise ValueError(f"source {name!r} must be (X, Y, Z) or (T, X, Y, Z) with X, Y, Z = {grid.shape}, "
                         f"got {a.shape}")
    return a


def _hex(rgb) -> str:
    return "#{:02x}{:02x}{:02x}".format(*(int(v) for v in rgb))


def viewer_payload(sources: Mapping[str, np.ndarray], vocab: Vocabulary = OCC3D_VOCAB, grid: GridSpec = OCC3D,
                   mask_camera: np.ndarray | None = None, trajectory: np.ndarray | None = None,
                   hz: float = 2.0, current: int = 0, labels: Mapping[str, str] | None = None) -> dict:
    """The JSON-able data the viewer script reads (see the module docstring for the encoding)."""
    if not sources:
        raise ValueError("the viewer needs at least one source grid")
    clips = {k: _as_clip(k, v, grid) for k, v in sources.items()}
    lengths = {k: len(v) for k, v in clips.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"all sources must have the same number of frames, got {lengths}")
    frames = next(iter(lengths.values()))
    if not 0 <= current < frames:
        raise ValueError(f"current frame {current} outside 0..{frames - 1}")
    for k, v in clips.items():
        if v.size and int(v.max()) >= vocab.num_classes:
            raise ValueError(f"source {k!r} has class id {int(v.max())} outside the vocabulary {vocab.name}")
    masks = None
    if mask_camera is not None:
        m = _as_clip("mask_camera", mask_camera, grid)
        if len(m) != frames:
            raise ValueError(f"mask_camera has {len(m)} frames, the sources {frames}")
        masks = [encode_grid(f.astype(bool)) for f in m]
    traj = None
    if trajectory is not None:
        traj = np.asarray(trajectory, dtype=np.float64)
        if traj.shape != (frames, 3) or not np.all(np.isfinite(traj)):
            raise ValueError(f"trajectory must be finite (T, 3) = ({frames}, 3), got {traj.shape}")
        traj = [[round(float(v), 4) for v in row] for row in traj]
    labels = {**SOURCE_LABELS, **(labels or {})}
    names = vocab.names
    return {
        "grid": {"shape": list(grid.shape), "voxel": list(grid.voxel_size), "min": list(grid.range_min)},
        "classes": [{"id": c, "name": names[c], "colour": _hex(vocab.colours[c])}
                    for c in vocab.semantic_ids],
        "free": int(vocab.free),
        "frames": int(frames),
        "hz": float(hz),
        "current": int(current),
        "sources": {k: {"label": labels.get(k, k), "frames": [encode_grid(f) for f in v]}
                    for k, v in clips.items()},
        "default_source": next(iter(clips)),
        "error_of": ["gt", "pred"] if {"gt", "pred"} <= set(clips) else None,
        "masks": masks,
        "trajectory": traj,
    }


def viewer_html(sources: Mapping[str, np.ndarray], vocab: Vocabulary = OCC3D_VOCAB, grid: GridSpec = OCC3D,
                mask_camera: np.ndarray | None = None, trajectory: np.ndarray | None = None,
                hz: float = 2.0, current: int = 0, title: str = "occ4d viewer",
                labels: Mapping[str, str] | None = None) -> str:
    """The whole viewer page as a string.

    ``sources`` maps a key to a grid (X, Y, Z) or a clip (T, X, Y, Z) uint8; keys "gt" and "pred"
    get readable labels and, together, an error view. ``mask_camera`` is bool like the sources;
    ``trajectory`` is (T, 3) x, y, yaw in the clip's reference frame (drawn in each frame's own).
    """
    payload = viewer_payload(sources, vocab, grid, mask_camera, trajectory, hz, current, labels)
    # "<" is escaped so no data can close the script element early.
    data = json.dumps(payload, separators=(",", ":")).replace("<", "\\u003c")
    parts = {
        "TITLE": _html_escape(title),
        "DATA": data,
        "THREE": _asset("three-occ4d.min.js"),
        "VIEWER": _asset("viewer.js"),
    }
    # One pass over the template only, so text inside the inserted parts is never substituted.
    return re.sub(r"__([A-Z]+)__", lambda m: parts.get(m.group(1), m.group(0)), _asset("viewer.html"))


def _html_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def save_viewer(path: str | os.PathLike, sources: Mapping[str, np.ndarray], **kwargs) -> None:
    """Write :func:`viewer_html` to ``path`` atomically (same keyword arguments)."""
    write_text(path, viewer_html(sources, **kwargs))
