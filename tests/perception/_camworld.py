"""A small synthetic world with rendered cameras, generated once per test process."""

from __future__ import annotations

import tempfile
from pathlib import Path

SCENES, FRAMES, SEED, WIDTH = 2, 8, 3, 64
_ROOT: Path | None = None


def camera_world() -> Path:
    """2 scenes x 8 keyframes (one train, one val scene), cameras at 64 x 36 pixels."""
    global _ROOT
    if _ROOT is None:
        from occ4d.synth.world import generate

        root = Path(tempfile.mkdtemp(prefix="occ4d-camworld-"))
        generate(root, SCENES, FRAMES, SEED, val_fraction=0.5, camera_width=WIDTH, progress=False)
        _ROOT = root
    return _ROOT
