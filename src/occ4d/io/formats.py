"""One entry point over every format reader and writer: ``read_frame(path, fmt)`` / ``write_frame``.

Each format lives in its own module; this table only dispatches, so callers (the frame index,
``occ4d convert``) never branch on format names themselves.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from occ4d.core.errors import DataError
from occ4d.core.frame import Frame

# format name -> (module, reader, writer). Readers return validated Frames in the format's own
# vocabulary and grid; writers take such Frames.
FORMATS: dict[str, tuple[str, str, str]] = {
    "occ3d": ("occ4d.io.occ3d", "load_labels", "save_labels"),
}


def _get(fmt: str, which: int):
    if fmt not in FORMATS:
        raise DataError(None, f"unknown occupancy format {fmt!r}; known: {sorted(FORMATS)}")
    module, *funcs = FORMATS[fmt]
    return getattr(importlib.import_module(module), funcs[which])


def read_frame(path: str | Path, fmt: str = "occ3d") -> Frame:
    """Read one frame file of format ``fmt`` (validated, in that format's grid and vocabulary)."""
    return _get(fmt, 0)(path)


def write_frame(path: str | Path, frame: Frame, fmt: str = "occ3d") -> None:
    """Write one frame in format ``fmt``; the frame must already be in that format's grid and vocabulary."""
    _get(fmt, 1)(path, frame)
