"""Converting a frame between formats: relabel through the one mapping table, resample if the grids differ.

Same grid (Occ3D <-> OpenOcc v2 <-> Occ3D-Waymo 0.4 m, SurroundOcc <-> OpenOcc v1 geometry):
an exact relabel through ``occ4d.core.vocab.convert_labels``. Different grids: a nearest-voxel
resampling through lidar2ego (``occ4d.io.resample``), which is lossy (PROTOCOLS §1.2).

Voxels whose class has no counterpart in the target vocabulary (e.g. Occ3D "others" in
SurroundOcc) are counted; they, and source voxels that were already ignored (noise), keep the
ignore value where the target format can store it (SurroundOcc/OpenOccupancy noise) and
otherwise become the target's free class.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from occ4d.core.frame import Frame
from occ4d.core.vocab import EXACT_MAPPING, IGNORE, convert_labels
from occ4d.io.formats import spec
from occ4d.io.resample import grid_transform, resample_frame


@dataclass(frozen=True)
class ConversionStats:
    """What one conversion did, in voxels. ``unmapped``: source voxels whose class has no target
    counterpart; ``ignored``: source voxels already without a label (noise); ``uncovered``: target
    voxels outside the source grid (filled with free, masks False)."""

    voxels: int
    unmapped: int
    ignored: int
    uncovered: int
    resampled: bool
    exact_mapping: bool


def convert_frame(frame: Frame, to: str,
                  lidar2ego: np.ndarray | None = None) -> tuple[Frame, ConversionStats]:
    """``frame`` in format ``to``'s grid and vocabulary, with statistics of what was lost."""
    target = spec(to)
    src_vocab, dst_vocab = frame.vocab, target.vocab
    exact = EXACT_MAPPING[src_vocab.mapping] and EXACT_MAPPING[dst_vocab.mapping]
    if not exact:
        warnings.warn(f"{src_vocab.name} -> {dst_vocab.name} uses name-level class correspondences that no "
                      "official code defines (PROTOCOLS §2.10)", stacklevel=2)
    labels = convert_labels(frame.semantics, src_vocab, dst_vocab)
    was_ignored = frame.semantics == IGNORE
    unmapped_mask = (labels == IGNORE) & ~was_ignored
    ignored = int(was_ignored.sum())
    fill = IGNORE if target.keeps_ignore else dst_vocab.free
    labels[labels == IGNORE] = fill
    out = Frame(semantics=labels, vocab=dst_vocab, grid=frame.grid, mask_camera=frame.mask_camera,
                mask_lidar=frame.mask_lidar, flow=frame.flow, ego2global=frame.ego2global,
                timestamp=frame.timestamp, scene=frame.scene, token=frame.token, source=frame.source)
    uncovered = 0
    resampled = _geometry(frame.grid) != _geometry(target.grid)
    if resampled:
        transform = grid_transform(frame.grid, target.grid, lidar2ego)
        out, covered = resample_frame(out, target.grid, transform, dst_vocab.free)
        uncovered = int((~covered).sum())
    else:
        out.grid = target.grid  # same geometry, possibly another name (Occ3D vs Occ3D-Waymo 0.4 m)
    if out.flow is not None and to != "openocc":
        out.flow = None  # only OpenOcc v2 stores flow
    out.validate(allow_ignore=target.keeps_ignore)
    stats = ConversionStats(voxels=out.grid.num_voxels, unmapped=int(unmapped_mask.sum()), ignored=ignored,
                            uncovered=uncovered, resampled=resampled, exact_mapping=exact)
    return out, stats


def _geometry(grid) -> tuple:
    return grid.shape, grid.voxel_size, grid.range_min, grid.frame
