"""OpenOccupancy (nuScenes-Occupancy v0.1) files: sparse rows ``[z, y, x, ..., cls]``, LiDAR frame.

The grid is 512x512x40 at 0.2 m over (-51.2, -51.2, -5)..(51.2, 51.2, 3) (PROTOCOLS §1.2; the
paper's z range is a typo, OpenOccupancy#36). Rows are (N, 4) ``[z, y, x, cls]``; (N, 7) rows
carry extra columns between the indices and the class, which the loader ignores (it reads the
first three columns as indices and the last as the class). File class 0 is noise (-> 255) and
unlisted voxels are empty (0). Several rows may name one voxel: like OpenOccupancy's
``nb_process_label`` the voxel takes the most frequent label, ties going to the lowest id
(noise counts as 255 in that vote).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from occ4d.core.errors import DataError
from occ4d.core.frame import Frame
from occ4d.core.grid import OPENOCCUPANCY
from occ4d.core.vocab import IGNORE, OPENOCCUPANCY_VOCAB
from occ4d.io.openocc import integer_table, load_npy, save_npy
from occ4d.io.surroundocc import FILE_NOISE, dense_to_sparse


def majority_dense(zyx: np.ndarray, labels: np.ndarray, path) -> np.ndarray:
    """Dense uint8 [x, y, z] grid: per voxel the most frequent label (ties -> lowest id)."""
    grid, vocab = OPENOCCUPANCY, OPENOCCUPANCY_VOCAB
    xyz = zyx[:, ::-1]
    shape = np.asarray(grid.shape)
    if xyz.size and (xyz.min() < 0 or np.any(xyz.max(axis=0) >= shape)):
        raise DataError(path, f"voxel index outside the {grid.name} grid {grid.shape} "
                              "(rows are [z, y, x, ..., cls])")
    if labels.size and (labels.min() < 0 or labels.max() >= vocab.num_classes):
        bad = labels[(labels < 0) | (labels >= vocab.num_classes)][0]
        raise DataError(path, f"class id {bad} outside 0..{vocab.num_classes - 1} (vocabulary {vocab.name})")
    labels = np.where(labels == FILE_NOISE, IGNORE, labels)
    dense = np.full(grid.shape, vocab.free, np.uint8)
    if not len(labels):
        return dense
    flat = np.ravel_multi_index(tuple(xyz.T), grid.shape)
    # Count (voxel, label) pairs; sorting by (voxel, -count, label) puts each voxel's winner first.
    pairs, counts = np.unique(flat * 256 + labels, return_counts=True)
    vox, lab = pairs // 256, pairs % 256
    order = np.lexsort((lab, -counts, vox))
    vox, lab = vox[order], lab[order]
    first = np.ones(len(vox), bool)
    first[1:] = vox[1:] != vox[:-1]
    dense.reshape(-1)[vox[first]] = lab[first].astype(np.uint8)
    return dense


def load_openoccupancy(path: str | Path) -> Frame:
    """Read an OpenOccupancy ``.npy`` as a dense 512x512x40 LiDAR-frame grid (0 empty, 255 noise)."""
    path = Path(path)
    table = integer_table(load_npy(path), (4, 7), path, "OpenOccupancy occupancy")
    sem = majority_dense(table[:, :3], table[:, -1], path)
    frame = Frame(semantics=sem, vocab=OPENOCCUPANCY_VOCAB, grid=OPENOCCUPANCY, token=path.stem,
                  source=str(path))
    return frame.validate(allow_ignore=True)


def save_openoccupancy(path: str | Path, frame: Frame) -> None:
    """Write (N, 4) int64 rows ``[z, y, x, cls]``, one per non-empty voxel (ignored -> noise 0)."""
    frame.validate(allow_ignore=True)
    if frame.vocab != OPENOCCUPANCY_VOCAB or frame.grid != OPENOCCUPANCY:
        raise DataError(path, f"expected an openoccupancy frame on grid {OPENOCCUPANCY.name}, got "
                              f"{frame.vocab.name} on {frame.grid.name} (convert it first)")
    save_npy(path, dense_to_sparse(frame.semantics, OPENOCCUPANCY_VOCAB.free, "zyx"))
