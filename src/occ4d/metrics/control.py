"""Control metrics: does a generated clip move the way it was told to, and how good is a plan.

**Ego-motion registration.** The motion between two consecutive frames is recovered from the
static world alone: both frames are reduced to bird's-eye maps of the static classes (one
channel per class: road, sidewalk, terrain, buildings, vegetation, barriers, cones ...), and the
relative pose ``(x, y, yaw)`` of the later frame in the earlier one is the rigid motion that best
aligns them. For each candidate yaw the later map is rotated into the earlier frame's
orientation and the translation is found by phase correlation (the normalised cross-power
spectrum, summed over channels, peaks at the shift); the yaw with the highest peak wins. The
search is coarse to fine in yaw (2 degrees on 2x pooled maps, then 0.5 degrees at full
resolution and a parabola through the peak heights) and sub-voxel in translation
(a parabola through the peak and its neighbours).

If ``S_prev`` and ``S_next`` are the two maps and the pose is ``(t, R)``, a static point seen at
``q`` in the later frame is at ``p = R q + t`` in the earlier one, so ``S_next(q) = S_prev(R q + t)``.

:class:`ControlMetric` compares the estimated per-step motion of a clip with the per-step motion
of its conditioning trajectory. :class:`PlanningMetric` scores planned trajectories: L2 and the
collision rate of the ego box with ground-truth obstacles, in the ST-P3 convention OccWorld uses.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from occ4d.core.grid import OCC3D, GridSpec
from occ4d.core.vocab import OCC3D_VOCAB, Occ3D, Vocabulary

# Classes that do not move: what registration may rely on (Occ3D ids).
STATIC_CLASSES: tuple[int, ...] = tuple(
    int(c)
    for c in (
        Occ3D.BARRIER,
        Occ3D.TRAFFIC_CONE,
        Occ3D.DRIVEABLE_SURFACE,
        Occ3D.OTHER_FLAT,
        Occ3D.SIDEWALK,
        Occ3D.TERRAIN,
        Occ3D.MANMADE,
        Occ3D.VEGETATION,
    )
)
# Classes that block the ego vehicle (everything but free and the drivable/flat ground).
GROUND_CLASSES: tuple[int, ...] = tuple(
    int(c) for c in (Occ3D.DRIVEABLE_SURFACE, Occ3D.OTHER_FLAT, Occ3D.SIDEWALK, Occ3D.TERRAIN)
)
EGO_SIZE = (4.084, 1.85)  # nuScenes ego length and width in metres, as ST-P3 and OccWorld use


def static_bev(occ: torch.Tensor, classes: tuple[int, ...] = STATIC_CLASSES) -> torch.Tensor:
    """(..., X, Y, Z) ids -> (..., C, X, Y) float: 1 where the column holds static class c."""
    occ = occ.long()
    return torch.stack([(occ == c).any(dim=-1) for c in classes], dim=-3).float()


def _rotate_maps(maps: torch.Tensor, yaws: torch.Tensor, grid: GridSpec) -> torch.Tensor:
    """maps (C, X, Y) of the later frame -> (K, C, X, Y) seen in the earlier frame's orientation.

    Output cell u (metres, earlier orientation) reads the later map at q = R(yaw)^-1 u.
    """
    c, nx, ny = maps.shape
    dev = maps.device
    vx, vy = grid.voxel_size[:2]
    ux = grid.range_min[0] + vx * (torch.arange(nx, device=dev, dtype=torch.float32) + 0.5)
    uy = grid.range_min[1] + vy * (torch.arange(ny, device=dev, dtype=torch.float32) + 0.5)
    gx, gy = torch.meshgrid(ux, uy, indexing="ij")
    cs, sn = torch.cos(yaws)[:, None, None], torch.sin(yaws)[:, None, None]
    qx = cs * gx + sn * gy  # R^-1 u
    qy = -sn * gx + cs * gy
    # grid_sample on (K, C, X, Y): the last grid axis is (Y index, X index) in [-1, 1], align_corners=False.
    nxn = (qx - grid.range_min[0]) / (vx * nx) * 2 - 1
    nyn = (qy - grid.range_min[1]) / (vy * ny) * 2 - 1
    sample_grid = torch.stack([nyn, nxn], dim=-1)
    k = yaws.shape[0]
    return F.grid_sample(
        maps[None].expand(k, c, nx, ny),
        sample_grid,
        mode="bilinear",
        padding_mode="zeros",
        align_corners=False,
    )


def _subpixel(v_minus: float, v0: float, v_plus: float) -> float:
    """Offset in (-0.5, 0.5) of a parabola's vertex through three equally spaced samples."""
    den = v_minus - 2 * v0 + v_plus
    return 0.0 if abs(den) < 1e-12 else float(np.clip(0.5 * (v_minus - v_plus) / den, -0.5, 0.5))


def _phase_peaks(prev: torch.Tensor, rotated: torch.Tensor, max_shift: int):
    """Phase correlation of prev (C, X, Y) against each rotated map (K, C, X, Y).

    Returns peak heights (K,) and integer shifts (K, 2) in voxels within +-max_shift, plus the
    correlation surfaces (K, 2X, 2Y) for sub-voxel refinement.
    """
    _, nx, ny = prev.shape
    size = (2 * nx, 2 * ny)  # zero padding: no wrap-around between opposite borders
    fp = torch.fft.rfft2(prev - prev.mean(dim=(-2, -1), keepdim=True), s=size)
    fr = torch.fft.rfft2(rotated - rotated.mean(dim=(-2, -1), keepdim=True), s=size)
    cross = (fp[None] * fr.conj()).sum(dim=1)  # (K, 2X, Y+1): c(d) = sum_u prev(u + d) rot(u)
    corr = torch.fft.irfft2(cross / cross.abs().clamp_min(1e-9), s=size)  # (K, 2X, 2Y)
    idx = torch.arange(-max_shift, max_shift + 1, device=prev.device)
    window = corr[:, idx % size[0]][:, :, idx % size[1]]  # (K, S, S)
    flat = window.flatten(1)
    heights, arg = flat.max(dim=1)
    s = 2 * max_shift + 1
    shifts = torch.stack([idx[arg // s], idx[arg % s]], dim=1)
    return heights, shifts, corr


def estimate_motion(
    prev: torch.Tensor,
    nxt: torch.Tensor,
    *,
    grid: GridSpec = OCC3D,
    classes: tuple[int, ...] = STATIC_CLASSES,
    max_yaw_deg: float = 20.0,
    max_shift_m: float = 12.0,
) -> np.ndarray:
    """Pose (x [m], y [m], yaw [rad]) of frame ``nxt`` in frame ``prev``, both (X, Y, Z) label grids.

    Only the static classes are used. Returns NaNs when either frame holds no static voxel.
    """
    p_map, n_map = static_bev(prev, classes), static_bev(nxt, classes)
    if p_map.sum() == 0 or n_map.sum() == 0:
        return np.full(3, np.nan)
    # Coarse: yaw every 2 degrees on maps pooled 2x (half the FFT work per candidate).
    half = GridSpec(
        "coarse",
        (grid.shape[0] // 2, grid.shape[1] // 2, 1),
        (2 * grid.voxel_size[0], 2 * grid.voxel_size[1], 1.0),
        grid.range_min,
        grid.frame,
    )
    p_half = F.avg_pool2d(p_map[:, : 2 * half.shape[0], : 2 * half.shape[1]], 2)
    n_half = F.avg_pool2d(n_map[:, : 2 * half.shape[0], : 2 * half.shape[1]], 2)
    coarse = torch.deg2rad(torch.arange(-max_yaw_deg, max_yaw_deg + 1e-6, 2.0))
    max_half = int(math.ceil(max_shift_m / min(half.voxel_size[:2])))
    heights, _, _ = _phase_peaks(p_half, _rotate_maps(n_half, coarse, half), max_half)
    best = float(coarse[int(heights.argmax())])
    # Fine: full resolution, +-1.5 degrees around the coarse best in 0.5 degree steps, then a
    # parabola through the peak heights.
    max_shift = int(math.ceil(max_shift_m / min(grid.voxel_size[:2])))
    fine = best + torch.deg2rad(torch.arange(-1.5, 1.5 + 1e-6, 0.5))
    heights, shifts, corr = _phase_peaks(p_map, _rotate_maps(n_map, fine, grid), max_shift)
    k = int(heights.argmax())
    yaw = float(fine[k])
    if 0 < k < len(fine) - 1:
        yaw += _subpixel(*(float(h) for h in heights[k - 1 : k + 2])) * float(fine[1] - fine[0])
    dx, dy = (int(v) for v in shifts[k])
    sx, sy = corr.shape[1:]
    c = corr[k]
    ox = _subpixel(
        float(c[(dx - 1) % sx, dy % sy]), float(c[dx % sx, dy % sy]), float(c[(dx + 1) % sx, dy % sy])
    )
    oy = _subpixel(
        float(c[dx % sx, (dy - 1) % sy]), float(c[dx % sx, dy % sy]), float(c[dx % sx, (dy + 1) % sy])
    )
    return np.array([(dx + ox) * grid.voxel_size[0], (dy + oy) * grid.voxel_size[1], yaw])


def step_motions(traj: np.ndarray) -> np.ndarray:
    """(T, 3) poses in any common frame -> (T-1, 3) pose of frame t+1 in frame t."""
    traj = np.asarray(traj, dtype=np.float64)
    d = traj[1:, :2] - traj[:-1, :2]
    c, s = np.cos(traj[:-1, 2]), np.sin(traj[:-1, 2])
    x, y = c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1]
    dyaw = np.arctan2(np.sin(traj[1:, 2] - traj[:-1, 2]), np.cos(traj[1:, 2] - traj[:-1, 2]))
    return np.stack([x, y, dyaw], axis=1)


class ControlMetric:
    """Error between the motion a clip implies and the trajectory it was conditioned on.

    ``update(clip (T, X, Y, Z), traj (T, 3))`` registers every consecutive pair; ``compute()``
    returns the mean per-step translation error (m), yaw error (degrees) and the share of steps
    that could not be registered (no static voxels).
    """

    def __init__(self, *, grid: GridSpec = OCC3D, classes: tuple[int, ...] = STATIC_CLASSES):
        self.grid, self.classes = grid, classes
        self.trans_err: list[float] = []
        self.yaw_err: list[float] = []
        self.failed = 0

    def update(self, clip: torch.Tensor, traj) -> np.ndarray:
        """Returns the estimated per-step motions (T-1, 3) of this clip."""
        traj = torch.as_tensor(traj).cpu().numpy()
        if len(traj) != clip.shape[0]:
            raise ValueError(f"clip has {clip.shape[0]} frames but the trajectory {len(traj)} rows")
        want = step_motions(traj)
        got = np.stack(
            [
                estimate_motion(clip[t], clip[t + 1], grid=self.grid, classes=self.classes)
                for t in range(clip.shape[0] - 1)
            ]
        )
        for g, w in zip(got, want, strict=True):
            if np.isnan(g).any():
                self.failed += 1
                continue
            self.trans_err.append(float(np.linalg.norm(g[:2] - w[:2])))
            self.yaw_err.append(float(np.degrees(abs(math.remainder(g[2] - w[2], 2 * math.pi)))))
        return got

    def compute(self) -> dict[str, float]:
        n = len(self.trans_err)
        total = n + self.failed
        return {
            "trans_err_m": float(np.mean(self.trans_err)) if n else float("nan"),
            "yaw_err_deg": float(np.mean(self.yaw_err)) if n else float("nan"),
            "steps": float(total),
            "failed_share": self.failed / total if total else float("nan"),
        }


def obstacle_bev(
    occ: torch.Tensor, vocab: Vocabulary = OCC3D_VOCAB, ground: tuple[int, ...] = GROUND_CLASSES
):
    """(..., X, Y, Z) ids -> (..., X, Y) bool: a column holds anything but free space and ground."""
    occ = occ.long()
    blocked = occ != vocab.free
    for c in ground:
        blocked &= occ != c
    return blocked.any(dim=-1)


def ego_box_hits(
    obstacles: torch.Tensor, pose: np.ndarray, grid: GridSpec = OCC3D, step: float = 0.2
) -> bool:
    """Does the ego box at ``pose`` (x, y, yaw in the obstacle map's frame) touch an obstacle column?"""
    length, width = EGO_SIZE
    lx = np.arange(-length / 2, length / 2 + 1e-9, step)
    ly = np.arange(-width / 2, width / 2 + 1e-9, step)
    bx, by = np.meshgrid(lx, ly, indexing="ij")
    c, s = math.cos(pose[2]), math.sin(pose[2])
    px, py = c * bx - s * by + pose[0], s * bx + c * by + pose[1]
    ix = np.floor((px - grid.range_min[0]) / grid.voxel_size[0]).astype(np.int64)
    iy = np.floor((py - grid.range_min[1]) / grid.voxel_size[1]).astype(np.int64)
    ok = (ix >= 0) & (ix < obstacles.shape[0]) & (iy >= 0) & (iy < obstacles.shape[1])
    occ = obstacles.cpu().numpy()
    return bool(occ[ix[ok], iy[ok]].any())


class PlanningMetric:
    """L2 and collision rate of planned ego trajectories (ST-P3 convention, as OccWorld reports).

    ``update(pred (B, F, 3), gt (B, F, 3), future_occ (B, F, X, Y, Z))`` with both trajectories
    relative to the current frame and the ground-truth future frames in their own ego frames.
    At 2 Hz, horizon h s covers steps 1..2h; the reported L2 at h is the mean over those steps
    of the per-step xy error, and the collision rate at h the mean over those steps of the share
    of plans whose ego box touches an obstacle column of the ground-truth frame.
    """

    HORIZONS = {"1s": 2, "2s": 4, "3s": 6}

    def __init__(self, *, grid: GridSpec = OCC3D, vocab: Vocabulary = OCC3D_VOCAB):
        self.grid, self.vocab = grid, vocab
        self.l2: list[np.ndarray] = []
        self.col: list[np.ndarray] = []

    def update(self, pred, gt, future_occ: torch.Tensor) -> None:
        pred = torch.as_tensor(pred).double().cpu().numpy()
        gt = torch.as_tensor(gt).double().cpu().numpy()
        b, f, _ = pred.shape
        self.l2.append(np.linalg.norm(pred[..., :2] - gt[..., :2], axis=-1))
        obstacles = obstacle_bev(future_occ, self.vocab)  # (B, F, X, Y)
        col = np.zeros((b, f))
        for i in range(b):
            for k in range(f):
                # the planned pose seen from the ground-truth ego frame at step k
                rel = step_motions(np.stack([gt[i, k], pred[i, k]]))[0]
                col[i, k] = ego_box_hits(obstacles[i, k], rel, self.grid)
        self.col.append(col)

    def compute(self) -> dict[str, float]:
        if not self.l2:
            return {}
        l2, col = np.concatenate(self.l2), np.concatenate(self.col)
        out = {}
        for name, steps in self.HORIZONS.items():
            if steps <= l2.shape[1]:
                out[f"l2_{name}"] = float(l2[:, :steps].mean())
                out[f"collision_{name}"] = float(col[:, :steps].mean() * 100)
        keys = [k for k in out if k.startswith("l2_")]
        out["l2_avg"] = float(np.mean([out[k] for k in keys]))
        out["collision_avg"] = float(np.mean([out[k.replace("l2", "collision")] for k in keys]))
        out["samples"] = float(l2.shape[0])
        return out
