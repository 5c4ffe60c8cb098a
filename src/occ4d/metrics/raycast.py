"""Casting RayIoU's rays through an occupancy grid: a numba CPU path and a torch path.

Both reproduce SparseOcc's ``render_forward_cuda_kernel`` (PROTOCOLS §3.7c-d) without compiling
anything for CUDA:

- voxel-space origins and endpoints are computed in float64 and stored as float32; the walk
  reads them back as double, so the direction comes from the rounded endpoints;
- the start voxel is the *truncation* (toward zero) of the origin's voxel coordinates;
- Amanatides-Woo traversal with strict comparisons (ties X=Y step Y, X=Z or Y=Z step Z);
- the first occupied in-grid voxel is the hit, else the last in-grid voxel; the depth is the
  distance at which the ray leaves that voxel (its far face), stored as float32 and multiplied
  by float32(voxel size); a ray that never enters the grid keeps the kernel's -1 (-0.4 m once
  scaled, exactly as the reference) and voxel (0, 0, 0);
- at most 1001 walk steps.

``cast_numba`` walks each ray serially, parallel over rays. ``cast_torch`` advances every ray
one step per iteration as tensor operations, so it runs on CUDA and on CPU tensors alike; the
two give identical depths and voxels (tested on real frames). Neither uses fused multiply-adds,
so they can differ from an nvcc build only on exact boundary ties (§3.7f).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from occ4d.core.grid import OCC3D, GridSpec

MAX_STEP = 1000  # the kernel stops once more than this many steps were taken
DBL_MAX = float(np.finfo(np.float64).max)


@dataclass
class RayHits:
    """What the walk found for each ray: depth (N,) float32 metres and hit voxel (N, 3) [x, y, z]."""

    depth: torch.Tensor
    voxel: torch.Tensor


def voxel_space(
    origins: np.ndarray, directions: np.ndarray, grid: GridSpec = OCC3D
) -> tuple[np.ndarray, np.ndarray]:
    """Voxel-space origins (T, 3) and ray endpoints (T, R, 3), both float32 (§3.7c step 4).

    Endpoints are origin + direction (1 m along the ray) in float64; both are shifted by the
    grid's minimum corner and divided by float32(voxel size) in float64, then cast to float32.
    """
    if len(set(grid.voxel_size)) != 1:
        raise ValueError(f"RayIoU needs isotropic voxels, grid {grid.name} has {grid.voxel_size}")
    o = np.asarray(origins, dtype=np.float64).reshape(-1, 3)
    offset = np.asarray(grid.range_min, dtype=np.float32).astype(np.float64)
    scale = np.float64(np.float32(grid.voxel_size[0]))
    ends = directions.astype(np.float64)[None, :, :] + o[:, None, :]
    o_vox = ((o - offset) / scale).astype(np.float32)
    e_vox = ((ends - offset) / scale).astype(np.float32)
    return o_vox, e_vox


def cast_numba(occupied: np.ndarray, origins: np.ndarray, directions: np.ndarray,
               grid: GridSpec = OCC3D, space: tuple[np.ndarray, np.ndarray] | None = None) -> RayHits:
    """Cast every direction from every origin through a bool grid ``[x, y, z]`` on the CPU.

    Returns depth (T*R,) float32 metres and voxel (T*R, 3) int64, origin-major. ``space`` is
    :func:`voxel_space`'s result when the caller already has it (GT and prediction share it).
    """
    occ = np.ascontiguousarray(np.asarray(occupied, dtype=np.bool_))
    o_vox, e_vox = space if space is not None else voxel_space(origins, directions, grid)
    depth = np.empty(e_vox.shape[:2], dtype=np.float32)
    vox = np.empty((*e_vox.shape[:2], 3), dtype=np.int64)
    from occ4d.metrics.raycast_numba import walk

    walk(occ, o_vox, e_vox, depth, vox)
    depth = depth * np.float32(grid.voxel_size[0])
    return RayHits(torch.from_numpy(depth.reshape(-1)), torch.from_numpy(vox.reshape(-1, 3)))


def cast_torch(occupied: torch.Tensor, origins: np.ndarray, directions: np.ndarray,
               grid: GridSpec = OCC3D, space: tuple[np.ndarray, np.ndarray] | None = None) -> RayHits:
    """The same walk as tensor operations over all rays at once, on ``occupied``'s device."""
    o_vox, e_vox = space if space is not None else voxel_space(origins, directions, grid)
    depth, vox = walk_torch(occupied, o_vox, e_vox)
    return RayHits(depth * torch.tensor(grid.voxel_size[0], dtype=torch.float32), vox)


def walk_torch(occupied: torch.Tensor, o_vox: np.ndarray, e_vox: np.ndarray,
               compact_every: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Walk rays (T origins x R endpoints, voxel units) through bool ``occupied[x, y, z]``.

    Returns depth (T*R,) float32 in voxel units (-1 if the ray never enters the grid) and the hit
    voxel (T*R, 3) int64. Each iteration advances every unfinished ray by one voxel; finished
    rays leave the working set every ``compact_every`` iterations.
    """
    dev = occupied.device
    occ = occupied.to(torch.bool).contiguous()
    dims = torch.tensor(occ.shape, device=dev, dtype=torch.int64)
    n_orig, n_rays = e_vox.shape[:2]
    n = n_orig * n_rays
    xo = torch.from_numpy(o_vox).to(dev, torch.float64).repeat_interleave(n_rays, 0)  # (N, 3)
    xe = torch.from_numpy(e_vox.reshape(-1, 3)).to(dev, torch.float64)
    r = xe - xo
    length = torch.sqrt(r[:, 0] * r[:, 0] + r[:, 1] * r[:, 1] + r[:, 2] * r[:, 2])
    d = r / length[:, None]
    v = xo.to(torch.int64)  # truncation toward zero, as the kernel's int()
    step = torch.where(d >= 0, 1, -1).to(torch.int64)
    nonzero = d != 0
    boundary = (v + (step > 0).to(torch.int64)).to(torch.float64)
    t_max = torch.where(nonzero, (boundary - xo) / d, torch.full_like(d, DBL_MAX))
    t_delta = torch.where(nonzero, step.to(torch.float64) / d, torch.full_like(d, DBL_MAX))

    out_depth = torch.full((n,), -1.0, dtype=torch.float64, device=dev)
    out_vox = torch.zeros((n, 3), dtype=torch.int64, device=dev)
    ids = torch.arange(n, device=dev)
    was_inside = torch.zeros(n, dtype=torch.bool, device=dev)
    last_d = torch.full((n,), -1.0, dtype=torch.float64, device=dev)
    last_v = torch.zeros((n, 3), dtype=torch.int64, device=dev)
    active = torch.ones(n, dtype=torch.bool, device=dev)
    stride = torch.tensor([occ.shape[1] * occ.shape[2], occ.shape[2], 1], device=dev)
    flat_occ = occ.reshape(-1)

    for it in range(MAX_STEP + 1):
        inside = ((v >= 0) & (v < dims)).all(dim=1)
        # Left the grid after being in it: the ray ends on its last in-grid voxel.
        leaving = active & ~inside & was_inside
        active = active & ~leaving
        tx, ty, tz = t_max[:, 0], t_max[:, 1], t_max[:, 2]
        axis = torch.where(tx < ty, torch.where(tx < tz, 0, 2), torch.where(ty < tz, 1, 2))
        d_exit = t_max.gather(1, axis[:, None])[:, 0]
        cur = v
        sel = torch.nn.functional.one_hot(axis, 3).to(torch.bool) & active[:, None]
        v = torch.where(sel, v + step, v)
        t_max = torch.where(sel, t_max + t_delta, t_max)
        rec = active & inside
        last_d = torch.where(rec, d_exit, last_d)
        last_v = torch.where(rec[:, None], cur, last_v)
        was_inside = was_inside | rec
        safe = torch.where(rec[:, None], cur, torch.zeros_like(cur))
        hit = rec & flat_occ[(safe * stride).sum(1)]
        active = active & ~hit
        if it == MAX_STEP or (it % compact_every == compact_every - 1):
            done = ~active
            if it == MAX_STEP:
                done = torch.ones_like(active)
            fin = done & was_inside
            out_depth[ids[fin]] = last_d[fin]
            out_vox[ids[fin]] = last_v[fin]
            keep = ~done
            ids, v, t_max, t_delta, step = ids[keep], v[keep], t_max[keep], t_delta[keep], step[keep]
            was_inside, last_d, last_v, active = was_inside[keep], last_d[keep], last_v[keep], active[keep]
            if ids.numel() == 0:
                break
    return out_depth.to(torch.float32), out_vox


def resolve_backend(backend: str, occupied) -> str:
    """``auto`` means torch for CUDA tensors and numba otherwise."""
    if backend not in ("auto", "numba", "torch"):
        raise ValueError(f"backend must be 'auto', 'numba' or 'torch', got {backend!r}")
    if backend == "auto":
        return "torch" if isinstance(occupied, torch.Tensor) and occupied.is_cuda else "numba"
    return backend


def cast(occupied, origins: np.ndarray, directions: np.ndarray, grid: GridSpec = OCC3D,
         backend: str = "auto", space: tuple[np.ndarray, np.ndarray] | None = None) -> RayHits:
    """Dispatch: ``numba`` (CPU), ``torch`` (the tensor's device) or ``auto`` (torch for CUDA
    tensors, numba otherwise). Results live on the grid's device."""
    backend = resolve_backend(backend, occupied)
    if backend == "numba":
        occ_np = occupied.cpu().numpy() if isinstance(occupied, torch.Tensor) else np.asarray(occupied)
        hits = cast_numba(occ_np, origins, directions, grid, space)
        if isinstance(occupied, torch.Tensor) and occupied.device.type != "cpu":
            hits = RayHits(hits.depth.to(occupied.device), hits.voxel.to(occupied.device))
        return hits
    occ_t = occupied if isinstance(occupied, torch.Tensor) else torch.from_numpy(np.asarray(occupied))
    return cast_torch(occ_t, origins, directions, grid, space)
