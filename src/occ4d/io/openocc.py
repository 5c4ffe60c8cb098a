"""OpenOcc files: v2 (dense ``semantics`` + ``flow``, ego frame) and v1 (sparse ``[flat_index, class]``).

OpenOcc v2 (PROTOCOLS §2, ``nuscenes_infos_*_occ.pkl``): an ``.npz`` with ``semantics``
(200, 200, 16) in OpenOcc class order (car = 0 ... vegetation = 15, free = 16), optionally
``flow`` (200, 200, 16, 2) float32 (vx, vy) m/s and ``instances``. The official files hold uint8
semantics; some redistributed files hold int32, so both are accepted. There are no masks.

OpenOcc v1 (OccNet paper): an ``.npy`` (n, 2) of ``[flat_index, class]`` listing the non-empty
voxels of a 200x200x16, 0.5 m LiDAR-frame grid, ``flat = z * 40000 + y * 200 + x``; every other
voxel is empty (16).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from occ4d.core.errors import DataError
from occ4d.core.frame import Frame
from occ4d.core.grid import OPENOCC_V1, OPENOCC_V2
from occ4d.core.vocab import OPENOCC_VOCAB
from occ4d.io.atomic import atomic_path, save_npz
from occ4d.io.occ3d import read_npz


def load_openocc(path: str | Path) -> Frame:
    """Read an OpenOcc v2 frame (semantics in OpenOcc ids, flow if present), validated."""
    path = Path(path)
    arrays = read_npz(path, ("semantics",), ("flow",))
    frame = Frame(semantics=arrays["semantics"], vocab=OPENOCC_VOCAB, grid=OPENOCC_V2,
                  flow=arrays.get("flow"), token=path.parent.name, source=str(path))
    return frame.validate()


def save_openocc(path: str | Path, frame: Frame) -> None:
    """Write an OpenOcc v2 frame: uint8 ``semantics`` and, when the frame has one, ``flow``."""
    _check(frame, OPENOCC_V2, path)
    arrays = {"semantics": frame.semantics.astype(np.uint8)}
    if frame.flow is not None:
        arrays["flow"] = frame.flow.astype(np.float32)
    save_npz(path, True, **arrays)


def load_npy(path: str | Path) -> np.ndarray:
    """Read a plain ``.npy`` (no pickles); a missing or truncated file is a DataError."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file not found")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise DataError(path, f"unreadable or truncated npy ({type(e).__name__}: {e})") from e


def save_npy(path: str | Path, array: np.ndarray) -> None:
    """Write an ``.npy`` atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.lib.format.write_array(fh, np.asarray(array), allow_pickle=False)


def integer_table(arr: np.ndarray, cols: tuple[int, ...], path, name: str) -> np.ndarray:
    """Check a sparse (N, C) table: C in ``cols``, integer-valued (floats allowed if integral)."""
    arr = np.asarray(arr)
    if arr.ndim != 2 or arr.shape[1] not in cols:
        widths = " or ".join(map(str, cols))
        raise DataError(path, f"{name} must be an (N, {widths}) array, got shape {arr.shape}")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise DataError(path, f"{name} holds non-integer or NaN values")
    elif arr.dtype.kind not in "ui":
        raise DataError(path, f"{name} must be numeric, got dtype {arr.dtype}")
    return arr.astype(np.int64)


def load_openocc_v1(path: str | Path) -> Frame:
    """Read an OpenOcc v1 sparse file into a dense [x, y, z] grid (LiDAR frame, empty = 16)."""
    path = Path(path)
    table = integer_table(load_npy(path), (2,), path, "OpenOcc v1 occupancy")
    flat, cls = table[:, 0], table[:, 1]
    n = OPENOCC_V1.num_voxels
    if flat.size and (flat.min() < 0 or flat.max() >= n):
        raise DataError(path, f"flat index outside 0..{n - 1} (min {flat.min()}, max {flat.max()})")
    if cls.size and (cls.min() < 0 or cls.max() >= OPENOCC_VOCAB.num_classes):
        bad = cls[(cls < 0) | (cls >= OPENOCC_VOCAB.num_classes)][0]
        raise DataError(path, f"class id {bad} outside 0..{OPENOCC_VOCAB.num_classes - 1}")
    x, y, z = OPENOCC_V1.shape
    dense = np.full(n, OPENOCC_VOCAB.free, np.uint8)
    dense[flat] = cls
    # flat = z * (X * Y) + y * X + x, i.e. a C-order (Z, Y, X) array; transpose to [x, y, z].
    sem = dense.reshape(z, y, x).transpose(2, 1, 0)
    frame = Frame(semantics=np.ascontiguousarray(sem), vocab=OPENOCC_VOCAB, grid=OPENOCC_V1,
                  token=path.stem, source=str(path))
    return frame.validate()


def save_openocc_v1(path: str | Path, frame: Frame) -> None:
    """Write the non-empty voxels as (n, 2) int64 ``[flat_index, class]`` sorted by flat index."""
    _check(frame, OPENOCC_V1, path)
    zyx = frame.semantics.transpose(2, 1, 0).reshape(-1)
    flat = np.flatnonzero(zyx != OPENOCC_VOCAB.free)
    save_npy(path, np.stack([flat, zyx[flat].astype(np.int64)], axis=1))


def _check(frame: Frame, grid, path) -> None:
    frame.validate()
    if frame.vocab != OPENOCC_VOCAB or frame.grid != grid:
        raise DataError(path, f"expected an {OPENOCC_VOCAB.name} frame on grid {grid.name}, got "
                              f"{frame.vocab.name} on {frame.grid.name} (convert it first)")
