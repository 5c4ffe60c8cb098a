"""The numba CPU kernel of RayIoU's voxel walk (see :mod:`occ4d.metrics.raycast` for the rules).

Kept in its own module so that numba is imported, and the kernel compiled (cached on disk),
only when the CPU path is first used.
"""

from __future__ import annotations

import numba
import numpy as np

MAX_STEP = 1000  # the kernel stops once more than this many steps were taken
DBL_MAX = float(np.finfo(np.float64).max)


@numba.njit(parallel=True, cache=True, nogil=True)
def walk(occ, o_vox, e_vox, out_depth, out_vox):
    """Walk rays (T origins x R endpoints) through bool ``occ[x, y, z]``; fills depth in voxel
    units (float32, -1 if the ray never enters) and the hit voxel (int64, (0, 0, 0) if none)."""
    n_orig, n_rays = e_vox.shape[0], e_vox.shape[1]
    sx, sy, sz = occ.shape[0], occ.shape[1], occ.shape[2]
    for i in numba.prange(n_orig * n_rays):
        t = i // n_rays
        r = i - t * n_rays
        xo = np.float64(o_vox[t, 0])
        yo = np.float64(o_vox[t, 1])
        zo = np.float64(o_vox[t, 2])
        rx = np.float64(e_vox[t, r, 0]) - xo
        ry = np.float64(e_vox[t, r, 1]) - yo
        rz = np.float64(e_vox[t, r, 2]) - zo
        length = np.sqrt(rx * rx + ry * ry + rz * rz)
        dx = rx / length
        dy = ry / length
        dz = rz / length
        vx = int(xo)
        vy = int(yo)
        vz = int(zo)
        stx = 1 if dx >= 0 else -1
        sty = 1 if dy >= 0 else -1
        stz = 1 if dz >= 0 else -1
        tmx = (np.float64(vx + (0 if stx < 0 else 1)) - xo) / dx if dx != 0 else DBL_MAX
        tmy = (np.float64(vy + (0 if sty < 0 else 1)) - yo) / dy if dy != 0 else DBL_MAX
        tmz = (np.float64(vz + (0 if stz < 0 else 1)) - zo) / dz if dz != 0 else DBL_MAX
        tdx = stx / dx if dx != 0 else DBL_MAX
        tdy = sty / dy if dy != 0 else DBL_MAX
        tdz = stz / dz if dz != 0 else DBL_MAX
        was_inside = False
        last_d = -1.0
        lx = 0
        ly = 0
        lz = 0
        step = 0
        while True:
            inside = 0 <= vx < sx and 0 <= vy < sy and 0 <= vz < sz
            if not inside and was_inside:
                break
            cx = vx
            cy = vy
            cz = vz
            if tmx < tmy:
                if tmx < tmz:
                    d = tmx
                    vx += stx
                    tmx += tdx
                else:
                    d = tmz
                    vz += stz
                    tmz += tdz
            else:
                if tmy < tmz:
                    d = tmy
                    vy += sty
                    tmy += tdy
                else:
                    d = tmz
                    vz += stz
                    tmz += tdz
            if inside:
                was_inside = True
                last_d = d
                lx = cx
                ly = cy
                lz = cz
                if occ[cx, cy, cz]:
                    break
            step += 1
            if step > MAX_STEP:
                break
        if was_inside:
            out_depth[t, r] = last_d
            out_vox[t, r, 0] = lx
            out_vox[t, r, 1] = ly
            out_vox[t, r, 2] = lz
        else:
            out_depth[t, r] = -1.0
            out_vox[t, r, 0] = 0
            out_vox[t, r, 1] = 0
            out_vox[t, r, 2] = 0
