"""Moving a frame onto another grid: nearest-voxel resampling through a rigid transform.

A LiDAR-frame grid (SurroundOcc, OpenOccupancy, OpenOcc v1) differs from the Occ3D ego grid by
lidar2ego (a ~90 degree yaw plus a translation) and also in range and voxel size, so converting
between them is a resampling, never an axis permutation, and it is **lossy** (PROTOCOLS §1.2):
every target voxel centre is mapped into the source grid and takes the label of the source voxel
that contains it. Thin structures can vanish when the target voxels are coarser, and target
voxels outside the source grid have no source at all (reported as not covered).
"""

from __future__ import annotations

import numpy as np

from occ4d.core.frame import Frame
from occ4d.core.grid import GridSpec
from occ4d.core.pose import check_pose, invert_pose, make_pose

# nuScenes LIDAR_TOP in the ego frame, one real calibration (PROTOCOLS §1.1). Calibration varies
# per log: use the info file's lidar2ego when there is one.
NUSCENES_LIDAR2EGO = make_pose((0.985793, 0.0, 1.84019), (0.70675, -0.01530, 0.01740, -0.70708))


def grid_transform(src: GridSpec, dst: GridSpec, lidar2ego: np.ndarray | None) -> np.ndarray:
    """The 4x4 map from ``dst`` grid coordinates to ``src`` grid coordinates (identity when both
    grids are in the same frame). ``lidar2ego`` is needed when exactly one of them is LiDAR-frame."""
    if src.frame == dst.frame:
        return np.eye(4)
    if lidar2ego is None:
        raise ValueError(f"moving between the {src.frame} and {dst.frame} frames needs lidar2ego")
    l2e = check_pose(lidar2ego, None, "lidar2ego")
    # dst ego -> src lidar is inverse(lidar2ego); dst lidar -> src ego is lidar2ego itself.
    return invert_pose(l2e) if src.frame == "lidar" else l2e


def source_index(src: GridSpec, dst: GridSpec, dst_to_src: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For every ``dst`` voxel, the flat index of the ``src`` voxel containing its centre.

    Returns ``(index, covered)``, both shaped ``dst.shape``; ``index`` is 0 where not covered.
    Works one z slice at a time so a 512x512x40 target needs only a slice of float64 centres.
    """
    t = np.asarray(dst_to_src, dtype=np.float64)
    if np.array_equal(t[:3, :3], np.eye(3)):
        return _separable_index(src, dst, t[:3, 3])
    xs, ys, zs = (dst.axis_centres(a) for a in range(3))
    gx, gy = np.meshgrid(xs, ys, indexing="ij")
    index = np.zeros(dst.shape, np.int64)
    covered = np.zeros(dst.shape, bool)
    for k, z in enumerate(zs):
        pts = np.stack([gx.ravel(), gy.ravel(), np.full(gx.size, z)], axis=1)
        pts = pts @ t[:3, :3].T + t[:3, 3]
        idx, inside = src.point_to_index(pts)
        safe = np.where(inside[:, None], idx, 0)
        flat = np.where(inside, np.ravel_multi_index(tuple(safe.T), src.shape), 0)
        index[:, :, k] = flat.reshape(gx.shape)
        covered[:, :, k] = inside.reshape(gx.shape)
    return index, covered


def _separable_index(src: GridSpec, dst: GridSpec, shift: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`source_index` for a pure translation: each axis maps on its own (same floor rule)."""
    per_axis = []
    for a in range(3):
        pts = dst.axis_centres(a) + shift[a]
        i = np.floor((pts - src.range_min[a]) / src.voxel_size[a]).astype(np.int64)
        per_axis.append((i, (i >= 0) & (i < src.shape[a])))
    (ix, okx), (iy, oky), (iz, okz) = per_axis
    covered = okx[:, None, None] & oky[None, :, None] & okz[None, None, :]
    _, sy, sz = src.shape
    index = ix[:, None, None] * (sy * sz) + iy[None, :, None] * sz + iz[None, None, :]
    return np.where(covered, index, 0), covered


def resample_frame(frame: Frame, dst: GridSpec, dst_to_src: np.ndarray,
                   fill: int) -> tuple[Frame, np.ndarray]:
    """``frame`` resampled onto ``dst`` (same vocabulary); uncovered voxels get ``fill`` and masks False.

    Returns the new frame and the ``covered`` mask. Flow is dropped: only OpenOcc v2 carries it and
    its vectors would also need rotating, which no target format stores.
    """
    index, covered = source_index(frame.grid, dst, dst_to_src)
    sem = frame.semantics.reshape(-1)[index]
    sem[~covered] = fill

    def take(mask):
        return None if mask is None else mask.reshape(-1)[index] & covered

    out = Frame(semantics=sem.astype(np.uint8), vocab=frame.vocab, grid=dst,
                mask_camera=take(frame.mask_camera), mask_lidar=take(frame.mask_lidar),
                ego2global=frame.ego2global, timestamp=frame.timestamp, scene=frame.scene,
                token=frame.token, source=frame.source)
    return out, covered
