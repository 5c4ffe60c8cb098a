"""One entry point over every format reader and writer: ``read_frame(path, fmt)`` / ``write_frame``.

Each format lives in its own module; this table only dispatches, so callers (the frame index,
``occ4d convert``) never branch on format names themselves.
"""

from __future__ import annotations

import importlib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from occ4d.core.errors import DataError
from occ4d.core.frame import Frame
from occ4d.core.grid import OCC3D, OPENOCC_V1, OPENOCC_V2, OPENOCCUPANCY, SURROUNDOCC, WAYMO_04, GridSpec
from occ4d.core.vocab import (
    OCC3D_VOCAB,
    OPENOCC_VOCAB,
    OPENOCCUPANCY_VOCAB,
    SURROUNDOCC_VOCAB,
    WAYMO_VOCAB,
    Vocabulary,
)


@dataclass(frozen=True)
class FormatSpec:
    """A file format: where its reader/writer live, its native grid and vocabulary.

    ``keeps_ignore``: the format can store "no label" (SurroundOcc/OpenOccupancy file label 0,
    noise), so unmapped voxels stay ignored; other formats get their free class instead.
    """

    name: str
    module: str
    reader: str
    writer: str
    grid: GridSpec
    vocab: Vocabulary
    suffix: str
    keeps_ignore: bool = False


FORMATS: dict[str, FormatSpec] = {
    f.name: f
    for f in (
        FormatSpec("occ3d", "occ4d.io.occ3d", "load_labels", "save_labels", OCC3D, OCC3D_VOCAB, ".npz"),
        FormatSpec("openocc", "occ4d.io.openocc", "load_openocc", "save_openocc", OPENOCC_V2,
                   OPENOCC_VOCAB, ".npz"),
        FormatSpec("openocc_v1", "occ4d.io.openocc", "load_openocc_v1", "save_openocc_v1", OPENOCC_V1,
                   OPENOCC_VOCAB, ".npy"),
        FormatSpec("surroundocc", "occ4d.io.surroundocc", "load_surroundocc", "save_surroundocc", SURROUNDOCC,
                   SURROUNDOCC_VOCAB, ".npy", keeps_ignore=True),
        FormatSpec("openoccupancy", "occ4d.io.openoccupancy", "load_openoccupancy", "save_openoccupancy",
                   OPENOCCUPANCY, OPENOCCUPANCY_VOCAB, ".npy", keeps_ignore=True),
        FormatSpec("waymo", "occ4d.io.waymo", "load_waymo", "save_waymo", WAYMO_04, WAYMO_VOCAB, ".npz"),
    )
}


def spec(fmt: str) -> FormatSpec:
    if fmt not in FORMATS:
        raise DataError(None, f"unknown occupancy format {fmt!r}; known: {sorted(FORMATS)}")
    return FORMATS[fmt]


def read_frame(path: str | Path, fmt: str = "occ3d") -> Frame:
    """Read one frame file of format ``fmt`` (validated, in that format's grid and vocabulary)."""
    s = spec(fmt)
    return getattr(importlib.import_module(s.module), s.reader)(path)


def write_frame(path: str | Path, frame: Frame, fmt: str = "occ3d") -> None:
    """Write one frame in format ``fmt``; the frame must already be in that format's grid and vocabulary."""
    s = spec(fmt)
    getattr(importlib.import_module(s.module), s.writer)(path, frame)


def detect_format(path: str | Path) -> str:
    """Guess a file's format from its keys or table shape; ambiguous (N, 4) tables are an error."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file not found")
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as z:
                keys = set(z.files)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
            raise DataError(path, f"unreadable or truncated npz ({type(e).__name__}: {e})") from e
        if "voxel_label" in keys:
            return "waymo"
        if "semantics" in keys and ("mask_camera" in keys or "mask_lidar" in keys):
            return "occ3d"
        if "semantics" in keys:
            return "openocc"
        if path.name == "labels.npz":  # the Occ3D (and OpenOcc) layout's name: say what it lacks
            raise DataError(path, f"missing key 'semantics' (an Occ3D labels.npz holds semantics, "
                                  f"mask_lidar, mask_camera; this one has {sorted(keys)})")
        raise DataError(path, f"cannot tell the format from keys {sorted(keys)}; pass --from")
    if path.suffix == ".npy":
        from occ4d.io.openocc import load_npy

        table = load_npy(path)
        shape = table.shape
        if len(shape) == 2 and shape[1] == 2:
            return "openocc_v1"
        if len(shape) == 2 and shape[1] == 7:
            return "openoccupancy"
        if len(shape) == 2 and shape[1] == 4 and len(table):
            # SurroundOcc rows are [x, y, z] with z < 16; OpenOccupancy rows are [z, y, x] with z < 40.
            high = table[:, :3].max(axis=0)
            if high[2] >= SURROUNDOCC.shape[2]:
                return "openoccupancy"
            if high[0] >= OPENOCCUPANCY.shape[2]:
                return "surroundocc"
        raise DataError(path, f"cannot tell SurroundOcc from OpenOccupancy (table shape {shape}); "
                              "pass --from")
    raise DataError(path, f"unknown file type {path.suffix!r}; pass --from")
