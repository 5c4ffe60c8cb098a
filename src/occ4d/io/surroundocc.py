"""SurroundOcc files: a sparse (N, 4) table ``[x, y, z, label]`` of voxel indices, LiDAR frame.

The grid is 200x200x16 at 0.5 m over (-50, -50, -5)..(50, 50, 3) in the LiDAR frame (PROTOCOLS
§1.2). Following SurroundOcc's loader (``LoadOccupancy``): file label 0 is noise and becomes
255 (ignored by the metric); every voxel not listed is empty (0).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from occ4d.core.errors import DataError
from occ4d.core.frame import Frame
from occ4d.core.grid import SURROUNDOCC, GridSpec
from occ4d.core.vocab import IGNORE, SURROUNDOCC_VOCAB, Vocabulary
from occ4d.io.openocc import integer_table, load_npy, save_npy

# In the files, 0 marks noise; in the dense grid 0 is "empty" and noise is IGNORE.
FILE_NOISE = 0


def sparse_to_dense(table: np.ndarray, grid: GridSpec, vocab: Vocabulary, path,
                    order: str = "xyz") -> np.ndarray:
    """Dense uint8 [x, y, z] grid from an integer table whose first three columns index voxels in
    ``order`` and whose last column is the label (noise 0 -> IGNORE). Later rows win on repeats."""
    idx = table[:, :3]
    if order == "zyx":
        idx = idx[:, ::-1]
    labels = table[:, -1]
    shape = np.asarray(grid.shape)
    if idx.size and (idx.min() < 0 or np.any(idx.max(axis=0) >= shape)):
        raise DataError(path, f"voxel index outside the {grid.name} grid {grid.shape} "
                              f"(min {idx.min(axis=0).tolist()}, max {idx.max(axis=0).tolist()}, "
                              f"order {order})")
    if labels.size and (labels.min() < 0 or labels.max() >= vocab.num_classes):
        bad = labels[(labels < 0) | (labels >= vocab.num_classes)][0]
        raise DataError(path, f"class id {bad} outside 0..{vocab.num_classes - 1} (vocabulary {vocab.name})")
    dense = np.full(grid.shape, vocab.free, np.uint8)
    dense[idx[:, 0], idx[:, 1], idx[:, 2]] = np.where(labels == FILE_NOISE, IGNORE, labels).astype(np.uint8)
    return dense


def dense_to_sparse(sem: np.ndarray, free: int, order: str = "xyz") -> np.ndarray:
    """(N, 4) int64 rows [i, j, k, label] of every non-empty voxel (IGNORE written as noise 0), in
    C order of ``order``'s axes."""
    arr = sem if order == "xyz" else sem.transpose(2, 1, 0)
    idx = np.argwhere(arr != free)
    labels = arr[tuple(idx.T)].astype(np.int64)
    labels[labels == IGNORE] = FILE_NOISE
    return np.concatenate([idx.astype(np.int64), labels[:, None]], axis=1)


def load_surroundocc(path: str | Path) -> Frame:
    """Read a SurroundOcc ``.npy`` as a dense LiDAR-frame grid (0 empty, 255 noise), validated."""
    path = Path(path)
    table = integer_table(load_npy(path), (4,), path, "SurroundOcc occupancy")
    sem = sparse_to_dense(table, SURROUNDOCC, SURROUNDOCC_VOCAB, path, "xyz")
    frame = Frame(semantics=sem, vocab=SURROUNDOCC_VOCAB, grid=SURROUNDOCC, token=path.stem, source=str(path))
    return frame.validate(allow_ignore=True)


def save_surroundocc(path: str | Path, frame: Frame) -> None:
    """Write a SurroundOcc frame as (N, 4) ``[x, y, z, label]`` (ignored voxels as noise 0)."""
    frame.validate(allow_ignore=True)
    if frame.vocab != SURROUNDOCC_VOCAB or frame.grid != SURROUNDOCC:
        raise DataError(path, f"expected a surroundocc frame on grid {SURROUNDOCC.name}, got "
                              f"{frame.vocab.name} on {frame.grid.name} (convert it first)")
    save_npy(path, dense_to_sparse(frame.semantics, SURROUNDOCC_VOCAB.free, "xyz"))
