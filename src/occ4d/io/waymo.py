"""Occ3D-Waymo files: ``voxel_label``, ``origin_voxel_state``, ``final_voxel_state``, ``infov``.

Each is an array over the grid, 200x200x16 at 0.4 m or 1600x1600x64 at 0.1 m (z 0.2)
(PROTOCOLS §1.2). Labels are 0..14 with free stored as 23; loading maps 23 -> 15 as CVT-Occ's
``LoadOccGTFromFileWaymo`` does. The masks become the Frame's:

- ``mask_lidar``  = ``origin_voxel_state`` (observed by the LiDAR);
- ``mask_camera`` = ``final_voxel_state`` AND ``infov``: exactly the evaluation mask of the
  Occ3D-Waymo metric (PROTOCOLS §3.6), so metrics treat it like Occ3D's camera mask.

Writing stores ``origin_voxel_state = mask_lidar`` and ``final_voxel_state = infov = mask_camera``:
a Frame round-trips exactly, a raw file's separate ``infov`` and ``final_voxel_state`` do not.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from occ4d.core.errors import DataError
from occ4d.core.frame import Frame
from occ4d.core.grid import WAYMO_01, WAYMO_04
from occ4d.core.vocab import WAYMO_FILE_FREE, WAYMO_VOCAB
from occ4d.io.atomic import save_npz
from occ4d.io.occ3d import read_npz

WAYMO_KEYS = ("voxel_label", "origin_voxel_state", "final_voxel_state", "infov")
_GRIDS = {g.shape: g for g in (WAYMO_04, WAYMO_01)}


def load_waymo(path: str | Path) -> Frame:
    """Read an Occ3D-Waymo ``.npz`` (free 23 -> 15; masks as described above), validated."""
    path = Path(path)
    arrays = read_npz(path, WAYMO_KEYS)
    labels = np.asarray(arrays["voxel_label"])
    grid = _GRIDS.get(tuple(labels.shape))
    if grid is None:
        raise DataError(path, f"voxel_label must have shape {sorted(_GRIDS)}, got {labels.shape}")
    if labels.dtype.kind not in "ui":
        raise DataError(path, f"voxel_label must be an integer array, got dtype {labels.dtype}")
    free = WAYMO_VOCAB.free
    sem = np.where(labels == WAYMO_FILE_FREE, free, labels)
    bad = (sem < 0) | (sem >= WAYMO_VOCAB.num_classes) | ((sem == free) & (labels != WAYMO_FILE_FREE))
    if np.any(bad):
        raise DataError(path, f"voxel_label has class id {int(labels[bad].flat[0])} outside 0..{free - 1} "
                              f"and {WAYMO_FILE_FREE} (free)")
    masks = {}
    for key in WAYMO_KEYS[1:]:
        m = np.asarray(arrays[key])
        if m.shape != labels.shape:
            raise DataError(path, f"{key} must have shape {labels.shape}, got {m.shape}")
        if m.dtype.kind not in "uib" or (m.size and (m.min() < 0 or m.max() > 1)):
            raise DataError(path, f"{key} must hold only 0 and 1 (dtype {m.dtype})")
        masks[key] = m.astype(bool)
    frame = Frame(semantics=sem.astype(np.uint8), vocab=WAYMO_VOCAB, grid=grid,
                  mask_lidar=masks["origin_voxel_state"],
                  mask_camera=masks["final_voxel_state"] & masks["infov"],
                  token=path.stem, source=str(path))
    return frame.validate()


def save_waymo(path: str | Path, frame: Frame) -> None:
    """Write an Occ3D-Waymo ``.npz`` (free 15 -> 23; absent masks written as all-ones)."""
    frame.validate()
    if frame.vocab != WAYMO_VOCAB or frame.grid not in (WAYMO_04, WAYMO_01):
        raise DataError(path, f"expected a waymo frame on an Occ3D-Waymo grid, got {frame.vocab.name} "
                              f"on {frame.grid.name} (convert it first)")
    labels = np.where(frame.semantics == WAYMO_VOCAB.free, WAYMO_FILE_FREE, frame.semantics).astype(np.uint8)
    ones = np.ones(frame.grid.shape, np.uint8)
    cam = ones if frame.mask_camera is None else frame.mask_camera.astype(np.uint8)
    lidar = ones if frame.mask_lidar is None else frame.mask_lidar.astype(np.uint8)
    save_npz(path, True, voxel_label=labels, origin_voxel_state=lidar, final_voxel_state=cam, infov=cam)
