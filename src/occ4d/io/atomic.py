"""Atomic writes: write to a temporary file in the target folder, then rename over the target.

A crash or an exception mid-write leaves either the old file or no file, never half of one. A
SIGKILL can leave the hidden temporary file as well; ``remove_temps`` clears those before a rerun.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()
# atomic_path's temporary names: "." + target name + "." + mkstemp's 8 random characters + ".tmp"
_TEMP = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:  # read-only or full: name the file asked for, not a random temporary
        raise OSError(e.errno, e.strerror, str(path)) from e
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates 0600 files; give the result the mode a plain open() would.
        os.chmod(tmp_path, 0o666 & ~_UMASK)
        os.replace(tmp_path, path)
    except BaseException as e:
        tmp_path.unlink(missing_ok=True)
        if isinstance(e, OSError) and e.filename in (None, str(tmp_path)):
            # a failed write (disk full, ...) names the file being written, not its temporary
            raise OSError(e.errno, e.strerror, str(path)) from e
        raise


def remove_temps(folder: str | os.PathLike, recursive: bool = False) -> list[Path]:
    """Delete the temporary files ``atomic_path`` left in ``folder`` (or under it) when its process
    was killed mid-write (SIGKILL runs no cleanup); returns them. They are hidden names ending in
    ``.tmp``, which no reader globs, so they are harmless until removed. Call it before writing,
    while no other process writes into ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = folder.rglob(".*.tmp") if recursive else folder.glob(".*.tmp")
    stale = [p for p in found if p.is_file() and _TEMP.match(p.name)]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj, indent: int | None = 2) -> None:
    write_text(path, json.dumps(obj, indent=indent, sort_keys=False) + "\n")


def save_npz(path: str | os.PathLike, compressed: bool = True, *args: np.ndarray,
             **arrays: np.ndarray) -> None:
    """Write an ``.npz`` atomically and reproducibly.

    Same layout as ``np.savez(_compressed)`` (positional arrays become ``arr_0``, ``arr_1``...),
    but every zip entry carries a fixed timestamp, so the same arrays always give the same bytes
    (NumPy stamps entries with the current time).
    """
    named = {f"arr_{i}": a for i, a in enumerate(args)}
    clash = set(named) & set(arrays)
    if clash:
        raise ValueError(f"array names given twice: {sorted(clash)}")
    named.update(arrays)
    method = zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", compression=method, allowZip64=True) as zf:
        for name, arr in named.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = method
            with zf.open(info, "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, np.asanyarray(arr), allow_pickle=False)
