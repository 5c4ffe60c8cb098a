"""Rasterisation kernels (numba): oriented boxes into a column grid, and the static world resampled
into the ego grid.

Both the static world map (0.2 m columns in the world frame) and the Occ3D ego grid (0.4 m,
PROTOCOLS §1.1) share the Occ3D z axis, so a "grid" here is ``(X, Y, 16)`` uint8 with a planar
origin and column size; a column is inside a box when its centre is.
"""

from __future__ import annotations

import numba
import numpy as np

from occ4d.synth.shapes import DZ, Z_MIN


@numba.njit(cache=True)
def _layer_lo(z: float) -> int:
    k = int(np.ceil((z - Z_MIN) / DZ - 0.5 - 1e-9))
    return max(k, 0)


@numba.njit(cache=True)
def _layer_hi(z: float, nz: int) -> int:
    k = int(np.floor((z - Z_MIN) / DZ - 0.5 + 1e-9)) + 1
    return min(k, nz)


@numba.njit(cache=True)
def paint_boxes(grid, ox: float, oy: float, res: float, boxes, values, mark_centre: bool) -> None:
    """Write ``values[b]`` on the voxels of box b of ``boxes`` (P, 8), later boxes over earlier ones.

    The voxels are those :func:`fill_boxes` gives the box's class (it is this with the boxes'
    classes as values; their class column is not read here), so a grid of box indices painted
    here marks exactly where each box's class went (the flow raster, occ4d.synth.sensing).
    """
    nx, ny, nz = grid.shape
    for b in range(boxes.shape[0]):
        cx, cy, yaw, hl, hw = boxes[b, 0], boxes[b, 1], boxes[b, 2], boxes[b, 3] / 2, boxes[b, 4] / 2
        k0, k1 = _layer_lo(boxes[b, 5]), _layer_hi(boxes[b, 6], nz)
        val = values[b]
        if k1 <= k0:
            continue
        c, s = np.cos(yaw), np.sin(yaw)
        ex = abs(c) * hl + abs(s) * hw
        ey = abs(s) * hl + abs(c) * hw
        i0 = max(int(np.floor((cx - ex - ox) / res)), 0)
        i1 = min(int(np.floor((cx + ex - ox) / res)) + 1, nx)
        j0 = max(int(np.floor((cy - ey - oy) / res)), 0)
        j1 = min(int(np.floor((cy + ey - oy) / res)) + 1, ny)
        for i in range(i0, i1):
            px = ox + (i + 0.5) * res - cx
            for j in range(j0, j1):
                py = oy + (j + 0.5) * res - cy
                lx = c * px + s * py
                ly = -s * px + c * py
                if abs(lx) <= hl and abs(ly) <= hw:
                    for k in range(k0, k1):
                        grid[i, j, k] = val
        if mark_centre:
            i = int(np.floor((cx - ox) / res))
            j = int(np.floor((cy - oy) / res))
            if 0 <= i < nx and 0 <= j < ny:
                for k in range(k0, k1):
                    grid[i, j, k] = val


@numba.njit(cache=True)
def fill_boxes(grid, ox: float, oy: float, res: float, boxes, mark_centre: bool) -> None:
    """Write boxes (P, 8) = cx, cy, yaw, length, width, z0, z1, cls into ``grid`` (X, Y, Z).

    Columns whose centre lies in the rotated rectangle get the box's class on every layer whose
    centre lies in [z0, z1]. With ``mark_centre`` the column under the box centre is always
    filled, so objects thinner than a column (a cyclist seen edge-on) never vanish.
    """
    cls = np.empty(boxes.shape[0], np.uint8)
    for b in range(boxes.shape[0]):
        cls[b] = np.uint8(boxes[b, 7])
    paint_boxes(grid, ox, oy, res, boxes, cls, mark_centre)


@numba.njit(cache=True)
def sample_static(
    world,
    wx: float,
    wy: float,
    wres: float,
    ego_x: float,
    ego_y: float,
    ego_yaw: float,
    gx: float,
    gy: float,
    gres: float,
    out,
    outside_ground: int,
    free: int,
) -> None:
    """Resample the world map into the ego grid ``out`` (X, Y, Z): every ego column takes the
    world column under its centre (the ego grid is rotated by the ego yaw; z is shared).

    Columns beyond the world map get a plain ground layer of ``outside_ground``.
    """
    nx, ny, nz = out.shape
    wnx, wny = world.shape[0], world.shape[1]
    c, s = np.cos(ego_yaw), np.sin(ego_yaw)
    for i in range(nx):
        px = gx + (i + 0.5) * gres
        for j in range(ny):
            py = gy + (j + 0.5) * gres
            x = ego_x + c * px - s * py
            y = ego_y + s * px + c * py
            a = int(np.floor((x - wx) / wres))
            b = int(np.floor((y - wy) / wres))
            if 0 <= a < wnx and 0 <= b < wny:
                for k in range(nz):
                    out[i, j, k] = world[a, b, k]
            else:
                out[i, j, 0] = outside_ground
                for k in range(1, nz):
                    out[i, j, k] = free


def to_ego(boxes_world: np.ndarray, ego_x: float, ego_y: float, ego_yaw: float) -> np.ndarray:
    """Boxes (P, 8) from the world frame into the ego frame (x forward, y left)."""
    out = boxes_world.copy()
    c, s = np.cos(ego_yaw), np.sin(ego_yaw)
    dx, dy = boxes_world[:, 0] - ego_x, boxes_world[:, 1] - ego_y
    out[:, 0] = c * dx + s * dy
    out[:, 1] = -s * dx + c * dy
    out[:, 2] = boxes_world[:, 2] - ego_yaw
    return out
