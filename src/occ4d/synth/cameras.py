"""Surround camera images of the synthetic world (numba ray casting): colour, depth and semantics.

Each keyframe is seen by the six cameras of the rig (occ4d.synth.rig) at a chosen image width
(the height keeps the 16:9 aspect, intrinsics scaled with ``Camera.scaled``). The scene is ray
cast from the 0.2 m world map and the road users' boxes, resampled into a fine ego grid of
0.2 x 0.2 x 0.4 m cells (twice the Occ3D resolution in x and y), so the images carry detail the
0.4 m labels do not. Shading makes the task more than a colour lookup:

- per-class base colours, varied per 0.2 m cell and per 2 m patch by a hash of the cell's world
  position (so texture sticks to the world as the ego moves), and per road user by its id;
- Lambert shading by the face normal of the hit cell under a fixed sun, plus ambient light;
- exponential distance fog, a sky gradient, ground beyond the grid, and Gaussian pixel noise
  drawn from a generator seeded by (seed, scene, frame, camera).

Per pixel we also keep the camera-frame depth (z, metres; 0 where the ray hits nothing inside
the grid) and the Occ3D class of the hit cell (``IGNORE_PIXEL`` for sky and far ground).
Files: ``DIR/samples/CAM_*/<token>.jpg`` and ``DIR/samples/CAM_*/<token>.npz`` (``depth``
float16, ``semantics`` uint8), both deterministic in the seed.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np

from occ4d.core.camera import Camera, CameraRig
from occ4d.core.grid import OCC3D
from occ4d.core.vocab import OCC3D_VOCAB, Occ3D
from occ4d.io.atomic import save_npz, write_bytes
from occ4d.synth.scenery import RES, WorldMap
from occ4d.synth.voxelize import fill_boxes, sample_static, to_ego

FINE = (RES, RES, OCC3D.voxel_size[2])  # m per fine cell (x, y, z)
FINE_SHAPE = tuple(int(round((OCC3D.range_max[a] - OCC3D.range_min[a]) / FINE[a])) for a in range(3))
IGNORE_PIXEL = 255  # semantics of pixels that see sky or ground outside the grid
FOG_M = 55.0  # m: distance at which 1 - 1/e of the colour is fog
NOISE_STD = 5.0  # grey levels
SUN = np.array([0.45, 0.3, 0.84])  # world-frame direction towards the sun
JPEG_QUALITY = 92

# Base colours (RGB 0..255) per Occ3D class: plausible, and deliberately close for classes that
# only geometry tells apart (road / other_flat / sidewalk; car / truck / trailer).
BASE_COLOURS = np.array(
    [
        (120, 110, 100),  # others
        (200, 190, 170),  # barrier
        (60, 70, 160),  # bicycle
        (210, 150, 40),  # bus
        (140, 140, 150),  # car (tinted per vehicle)
        (220, 170, 30),  # construction_vehicle
        (90, 60, 60),  # motorcycle
        (150, 90, 70),  # pedestrian (tinted per person)
        (240, 110, 30),  # traffic_cone
        (150, 150, 160),  # trailer
        (160, 160, 165),  # truck
        (85, 85, 90),  # driveable_surface
        (110, 105, 100),  # other_flat
        (150, 145, 140),  # sidewalk
        (105, 125, 70),  # terrain
        (175, 150, 125),  # manmade
        (55, 110, 50),  # vegetation
        (0, 0, 0),  # free (never hit)
    ],
    dtype=np.float32,
)
_TINTED = np.zeros(len(BASE_COLOURS), np.bool_)
for _c in (Occ3D.CAR, Occ3D.BICYCLE, Occ3D.MOTORCYCLE, Occ3D.PEDESTRIAN, Occ3D.TRUCK, Occ3D.BUS):
    _TINTED[int(_c)] = True


@dataclass(frozen=True)
class CameraViews:
    """One keyframe's renders, cameras in rig order: ``rgb`` (N, H, W, 3) uint8, ``depth``
    (N, H, W) float32 metres along the camera's z axis (0 = no hit), ``semantics`` (N, H, W)
    uint8 Occ3D classes (``IGNORE_PIXEL`` = nothing inside the grid)."""

    rig: CameraRig
    rgb: np.ndarray
    depth: np.ndarray
    semantics: np.ndarray


def scaled_rig(rig: CameraRig, width: int) -> CameraRig:
    """The rig with every image resized to ``width`` pixels (height keeps the aspect ratio)."""
    cams = []
    for c in rig.cameras:
        s = width / c.width
        height = int(round(c.height * s))
        cams.append(c.scaled(s, height / c.height, width=width, height=height))
    return CameraRig(tuple(cams)).validate()


def fine_scene(world: WorldMap, ego_xy_yaw: tuple[float, float, float],
               agents: list[tuple[int, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """(classes, object ids) uint8 FINE_SHAPE grids in the ego frame: the static world resampled
    at 0.2 m and each road user's boxes ``(id, (P, 8) world boxes)`` drawn in (id 1..255)."""
    x, y, yaw = ego_xy_yaw
    cls = np.empty(FINE_SHAPE, np.uint8)
    sample_static(world.grid, world.origin[0], world.origin[1], RES, x, y, yaw, OCC3D.range_min[0],
                  OCC3D.range_min[1], RES, cls, int(Occ3D.TERRAIN), OCC3D_VOCAB.free)
    ids = np.zeros(FINE_SHAPE, np.uint8)
    for ident, bxs in agents:
        if not len(bxs):
            continue
        ego = to_ego(np.asarray(bxs, np.float64), x, y, yaw)
        fill_boxes(cls, OCC3D.range_min[0], OCC3D.range_min[1], RES, ego, False)
        tagged = ego.copy()
        tagged[:, 7] = ident % 255 + 1
        fill_boxes(ids, OCC3D.range_min[0], OCC3D.range_min[1], RES, tagged, False)
    return cls, ids


@numba.njit(cache=True, inline="always")
def _hash(a: int, b: int, c: int) -> float:
    """A value in [0, 1) from three integers (a 64-bit integer mix)."""
    h = (a * 73856093) ^ (b * 19349663) ^ (c * 83492791) ^ 0x5BD1E995
    h = (h ^ (h >> 15)) * 2246822519
    h = (h ^ (h >> 13)) * 3266489917
    h = h ^ (h >> 16)
    return (h & 0xFFFFFF) / 16777216.0


@numba.njit(cache=True)
def _cast(cls, ids, origin, dirs, forward, lo, size, free, base, tinted, sun, ego, ignore, fog_m,
          rgb, depth, sem) -> None:
    """Ray cast every direction ``dirs`` (P, 3) (unit, ego frame) from ``origin`` through the fine
    grid (Amanatides & Woo); write colour (P, 3) float32, z depth (P,) and class (P,).

    ``ego`` = (x, y, cos yaw, sin yaw) places hit points in the world for texture; ``sun`` is in
    the ego frame."""
    nx, ny, nz = cls.shape
    big = 1e30
    for p in range(dirs.shape[0]):
        d0, d1, d2 = dirs[p, 0], dirs[p, 1], dirs[p, 2]
        # Voxel units: position (o - lo) / size; t stays in metres because d_v = d / size.
        o = ((origin[0] - lo[0]) / size[0], (origin[1] - lo[1]) / size[1], (origin[2] - lo[2]) / size[2])
        dv = (d0 / size[0], d1 / size[1], d2 / size[2])
        i, j, k = int(np.floor(o[0])), int(np.floor(o[1])), int(np.floor(o[2]))
        si = 1 if dv[0] > 0 else -1
        sj = 1 if dv[1] > 0 else -1
        sk = 1 if dv[2] > 0 else -1
        ti = ((i + (si > 0)) - o[0]) / dv[0] if dv[0] != 0 else big
        tj = ((j + (sj > 0)) - o[1]) / dv[1] if dv[1] != 0 else big
        tk = ((k + (sk > 0)) - o[2]) / dv[2] if dv[2] != 0 else big
        di = abs(1.0 / dv[0]) if dv[0] != 0 else big
        dj = abs(1.0 / dv[1]) if dv[1] != 0 else big
        dk = abs(1.0 / dv[2]) if dv[2] != 0 else big
        t, axis, hit = 0.0, -1, -1
        for _ in range(nx + ny + nz + 3):
            if i < 0 or j < 0 or k < 0 or i >= nx or j >= ny or k >= nz:
                break
            if axis >= 0 and cls[i, j, k] != free:
                hit = int(cls[i, j, k])
                break
            if ti < tj and ti < tk:
                t, axis, i, ti = ti, 0, i + si, ti + di
            elif tj < tk:
                t, axis, j, tj = tj, 1, j + sj, tj + dj
            else:
                t, axis, k, tk = tk, 2, k + sk, tk + dk
        if hit < 0:
            if d2 < -1e-3:  # ground beyond the grid: the road plane, mostly fog
                tg = (lo[2] + size[2] - origin[2]) / d2
                f = 1.0 - np.exp(-tg / fog_m)
                for c in range(3):
                    rgb[p, c] = (1 - f) * (0.85 * base[14, c]) + f * 200.0
            else:  # sky: from a pale horizon to a blue zenith
                a = min(max(d2 * 2.5, 0.0), 1.0)
                rgb[p, 0] = (1 - a) * 205.0 + a * 100.0
                rgb[p, 1] = (1 - a) * 212.0 + a * 145.0
                rgb[p, 2] = (1 - a) * 222.0 + a * 215.0
            depth[p] = 0.0
            sem[p] = ignore
            continue
        # Hit cell, its world position (texture is anchored to the world) and face normal.
        hx = origin[0] + d0 * (t + 1e-4)
        hy = origin[1] + d1 * (t + 1e-4)
        hz = origin[2] + d2 * (t + 1e-4)
        wx = ego[0] + ego[2] * hx - ego[3] * hy
        wy = ego[1] + ego[3] * hx + ego[2] * hy
        a, b = int(np.floor(wx / size[0])), int(np.floor(wy / size[1]))
        kk = int(np.floor((hz - lo[2]) / size[2]))
        fine = 0.82 + 0.36 * _hash(a, b, kk)
        patch = 0.88 + 0.24 * _hash(a // 10, b // 10, 7 + hit)
        n = 0.0
        if axis == 0:
            n = -si * sun[0]
        elif axis == 1:
            n = -sj * sun[1]
        else:
            n = -sk * sun[2]
        light = 0.38 + 0.62 * max(n, 0.0)
        f = 1.0 - np.exp(-t / fog_m)
        ident = int(ids[i, j, k])
        for c in range(3):
            col = base[hit, c]
            if tinted[hit] and ident > 0:
                col = 0.35 * col + 0.65 * 255.0 * _hash(ident, c, 3)
            col = col * fine * patch * light
            rgb[p, c] = (1 - f) * col + f * 200.0
        depth[p] = t * (d0 * forward[0] + d1 * forward[1] + d2 * forward[2])
        sem[p] = hit


def pixel_rays(cam: Camera) -> tuple[np.ndarray, np.ndarray]:
    """Unit ray directions (H*W, 3) in the ego frame through every pixel centre, and the camera's
    forward axis (3,) in the ego frame (for z depth)."""
    u, v = np.meshgrid(np.arange(cam.width) + 0.5, np.arange(cam.height) + 0.5)
    pix = np.stack([u.ravel(), v.ravel(), np.ones(u.size)], axis=1)
    rays_cam = pix @ np.linalg.inv(np.asarray(cam.intrinsic, np.float64)).T
    r = np.asarray(cam.sensor2ego, np.float64)[:3, :3]
    rays = rays_cam @ r.T
    rays /= np.linalg.norm(rays, axis=1, keepdims=True)
    return np.ascontiguousarray(rays), r[:, 2].copy()


def render_views(world: WorldMap, ego_xy_yaw: tuple[float, float, float],
                 agents: list[tuple[int, np.ndarray]], rig: CameraRig,
                 noise_seed: tuple[int, ...]) -> CameraViews:
    """Render every camera of ``rig`` (already at its output size) for one keyframe."""
    cls, ids = fine_scene(world, ego_xy_yaw, agents)
    x, y, yaw = ego_xy_yaw
    c, s = np.cos(yaw), np.sin(yaw)
    sun_ego = np.array([c * SUN[0] + s * SUN[1], -s * SUN[0] + c * SUN[1], SUN[2]])
    sun_ego /= np.linalg.norm(sun_ego)
    lo = np.asarray(OCC3D.range_min, np.float64)
    size = np.asarray(FINE, np.float64)
    rng = np.random.default_rng(np.random.SeedSequence([int(v) & 0xFFFFFFFF for v in noise_seed]))
    rgbs, depths, sems = [], [], []
    for cam in rig.cameras:
        dirs, forward = pixel_rays(cam)
        n = dirs.shape[0]
        rgb = np.empty((n, 3), np.float32)
        depth = np.empty(n, np.float32)
        sem = np.empty(n, np.uint8)
        origin = np.asarray(cam.sensor2ego, np.float64)[:3, 3].copy()
        _cast(cls, ids, origin, dirs, forward, lo, size, OCC3D_VOCAB.free, BASE_COLOURS, _TINTED, sun_ego,
              np.array([x, y, c, s]), IGNORE_PIXEL, FOG_M, rgb, depth, sem)
        rgb += rng.normal(0.0, NOISE_STD, rgb.shape).astype(np.float32)
        rgbs.append(np.clip(np.rint(rgb), 0, 255).astype(np.uint8).reshape(cam.height, cam.width, 3))
        depths.append(depth.reshape(cam.height, cam.width))
        sems.append(sem.reshape(cam.height, cam.width))
    return CameraViews(rig, np.stack(rgbs), np.stack(depths), np.stack(sems))


def image_path(cam: str, token: str) -> str:
    """Path of a camera image relative to the data root, as the devkit converter lays out samples/."""
    return f"samples/{cam}/{token}.jpg"


def aux_path(cam: str, token: str) -> str:
    """Path of a camera's depth + semantics file relative to the data root."""
    return f"samples/{cam}/{token}.npz"


def jpeg_bytes(rgb: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality, subsampling=0, optimize=False)
    return buf.getvalue()


def write_views(root: Path, token: str, views: CameraViews) -> dict[str, dict]:
    """Write a keyframe's images and depth/semantics files; returns per camera the ``cams``
    entries to update in its info: ``data_path`` and the ``cam_intrinsic`` of the written image."""
    out = {}
    for n, cam in enumerate(views.rig.cameras):
        write_bytes(root / image_path(cam.name, token), jpeg_bytes(views.rgb[n]))
        save_npz(root / aux_path(cam.name, token), depth=views.depth[n].astype(np.float16),
                 semantics=views.semantics[n])
        out[cam.name] = {"data_path": image_path(cam.name, token),
                         "cam_intrinsic": np.asarray(cam.intrinsic, np.float64).copy()}
    return out
