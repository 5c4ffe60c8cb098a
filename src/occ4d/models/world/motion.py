"""Motion-warp: ego-warp plus constant-velocity moving objects, a forecasting baseline and prior.

Ego-warp (:mod:`occ4d.models.world.baselines`) leaves every moving object where it was at the
current frame. Motion-warp tracks the objects of the dynamic classes (mIoU_D's, PROTOCOLS §3.3)
through the history and moves them on at their estimated velocity:

1. **Objects.** In each frame, in its own grid, the columns holding a dynamic class are split
   into 8-connected components, one class at a time (so a trailer and its tractor stay apart). A
   component that touches the grid border is *truncated*: its centroid moves with the cut, not
   with the object, so it is never used to estimate motion.
2. **History in the current frame.** Each past component's centroid is carried into the current
   ego frame with that frame's exact pose (``traj_p``), so no resampling blurs it.
3. **Tracks.** The current frame's components are matched to the previous frame's by class,
   size (within x2.5) and centroid distance (at most ``gate`` m per frame; Hungarian assignment),
   then further back from each track's predicted position with a tight gate. The velocity is the
   least-squares slope of the centroids over the track (in voxels per frame, current ego frame).
4. **Forecast.** Objects slower than ``min_speed`` m per frame stay (parked cars must not jitter);
   the others' dynamic voxels are lifted out of the current frame (left free: the ground under a
   car is its own voxel), the rest is warped to frame k's ego pose as ego-warp does, and each
   moving object is drawn in at its place ``velocity * (k + 1)`` on: every voxel centre of frame k,
   moved back by that shift into the current frame, takes the object's labels where it lands on
   one of the object's columns. The object is sampled once, at frame k's own centres; shifting it
   by whole voxels in the current grid and then warping would round twice.

With ``MotionConfig(extrude=GROUND)`` (the ``motion-extrude`` baseline), the area that enters the
grid is not left free: it copies the ground classes of the nearest border column of the current
frame (``warp_grid(..., extrude=...)``), which continues a straight road ahead.

With ``fuse=True`` as well (the ``fused-warp`` baseline), the columns are resampled from the
whole history, not the current frame alone. Every keyframe samples the world at its own voxel
centres (Occ3D labels a voxel by what lies at its centre; the synthetic world does exactly that),
so frames taken at different sub-voxel offsets sample the scene more densely than one. Each output
column takes the column of the history frame whose voxel centre lies nearest to its own centre,
among the frames that see it with no dynamic class in that column, or with one next to a standing
object of the forecast (parked cars and stopped traffic are sampled as densely as walls); the
columns a moving object was drawn into keep motion-warp's, and a moving object's earlier places
leave no ghost. Nearest-neighbour warping of the current frame alone misplaces thin structures
(poles, barriers, edges of buildings and cars) by up to half a voxel.

Heading changes are not modelled (translation only), and untracked objects (new, truncated or
unmatched) stand still, so motion-warp equals ego-warp on a scene without tracked motion.
Tracking runs in numpy/scipy on the CPU (connected components have no good torch equivalent);
tensors on another device are moved there and back.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage
from scipy.optimize import linear_sum_assignment
from torch import nn

from occ4d.core.grid import OCC3D, GridSpec
from occ4d.core.vocab import OCC3D_DYNAMIC, OCC3D_VOCAB, Occ3D, Vocabulary
from occ4d.models.world.baselines import warp_grid

# Occ3D's ground classes, the ones motion-extrude continues into the area entering the grid.
GROUND = tuple(int(c) for c in (Occ3D.DRIVEABLE_SURFACE, Occ3D.OTHER_FLAT, Occ3D.SIDEWALK, Occ3D.TERRAIN))

_EIGHT = np.ones((3, 3), dtype=bool)  # 8-connectivity in the ground plane


@dataclass(frozen=True)
class MotionConfig:
    """Tracking thresholds, in metres per frame (2 Hz on Occ3D: 8 m/frame = 16 m/s = 58 km/h)."""

    gate: float = 8.0  # largest centroid move between the current and the previous frame
    track_gate: float = 1.6  # largest miss of a track's predicted position further back
    # Slower objects stand still (0.8 m/s at 2 Hz; walkers, ~1.4 m/s, still move): chosen on the
    # synthetic world's training split, where it beat 0.25 / 0.3 / 0.5 (vehicles braking into a
    # stop are better left standing, and then fused like parked ones).
    min_speed: float = 0.4
    dynamic: tuple[int, ...] = tuple(sorted(int(c) for c in OCC3D_DYNAMIC))
    extrude: tuple[int, ...] = ()  # classes continued into the area entering the grid (e.g. GROUND)
    fuse: bool = False  # columns (not moving objects) from the history frame that sampled them closest

    def __post_init__(self) -> None:
        if self.gate <= 0 or self.track_gate <= 0 or self.min_speed < 0:
            raise ValueError(
                f"gate and track_gate must be positive and min_speed non-negative, got "
                f"{self.gate}, {self.track_gate}, {self.min_speed}"
            )


# The motion baselines by name (``occ4d forecast --ckpt NAME``, the refiner's ``base``).
MOTION_BASELINES = ("motion-warp", "motion-extrude", "fused-warp")


def motion_config(name: str) -> MotionConfig:
    """The :class:`MotionConfig` of a motion baseline: motion-warp; motion-extrude (plus the ground
    continued into the area entering the grid); fused-warp (plus static columns from the history)."""
    if name not in MOTION_BASELINES:
        raise ValueError(f"unknown motion baseline {name!r}; choose one of {MOTION_BASELINES}")
    return MotionConfig(extrude=GROUND if name != "motion-warp" else (), fuse=name == "fused-warp")


@dataclass
class _Object:
    cls: int
    cols: np.ndarray  # (N, 2) x, y column indices
    centroid: np.ndarray  # (2,) in voxels
    truncated: bool


def _objects(labels: np.ndarray, dynamic: np.ndarray) -> list[_Object]:
    """Connected components of each dynamic class in a (X, Y, Z) label grid."""
    edge = np.zeros(labels.shape[:2], dtype=bool)
    edge[0, :] = edge[-1, :] = edge[:, 0] = edge[:, -1] = True
    out = []
    present = np.isin(np.arange(256), np.unique(labels))
    for c in dynamic[present[dynamic]]:
        mask = (labels == c).any(-1)
        comp, n = ndimage.label(mask, _EIGHT)
        if n == 0:
            continue
        ids = np.arange(1, n + 1)
        cents = np.asarray(ndimage.center_of_mass(mask, comp, ids), dtype=np.float64).reshape(n, 2)
        touch = np.asarray(ndimage.maximum(edge, comp, ids)).reshape(n).astype(bool)
        order = np.argsort(comp.ravel(), kind="stable")
        flat = comp.ravel()[order]
        starts = np.searchsorted(flat, ids)
        ends = np.searchsorted(flat, ids, side="right")
        xy = np.stack(np.unravel_index(order, comp.shape), axis=1)
        for j in range(n):
            out.append(_Object(int(c), xy[starts[j] : ends[j]], cents[j], bool(touch[j])))
    return out


def _match(cur: list[_Object], expect: np.ndarray, prev: list[_Object], gate: float) -> np.ndarray:
    """Index into ``prev`` for each of ``cur`` (-1: none); ``expect`` (N, 2) where each should be."""
    out = np.full(len(cur), -1)
    if not cur or not prev:
        return out
    big = 1e9
    cost = np.full((len(cur), len(prev)), big)
    for i, a in enumerate(cur):
        for j, b in enumerate(prev):
            if a.cls != b.cls or b.truncated:
                continue
            ratio = len(a.cols) / len(b.cols)
            d = float(np.hypot(*(expect[i] - b.centroid)))
            if 0.4 <= ratio <= 2.5 and d <= gate:
                cost[i, j] = d
    rows, cols = linear_sum_assignment(cost)
    keep = cost[rows, cols] < big
    out[rows[keep]] = cols[keep]
    return out


def track_velocities(
    past: np.ndarray, traj: np.ndarray, *, grid: GridSpec = OCC3D, config: MotionConfig = MotionConfig()
) -> tuple[list[_Object], np.ndarray]:
    """The current frame's dynamic objects and their velocities.

    Args:
        past: (P, X, Y, Z) labels, the current frame last.
        traj: (>= P, 3) x, y, yaw of each frame relative to the current one (row P - 1 = origin).

    Returns:
        the objects of the current frame and (N, 2) velocities in voxels per frame along x and y of
        the current ego frame (zero where untracked).
    """
    p = past.shape[0]
    dyn = np.asarray(config.dynamic, dtype=np.int64)
    # Each past frame's objects in its own grid (exact centroids; truncated at its own border),
    # centroids then moved into the current frame's voxel coordinates with the exact pose.
    frames: list[list[_Object]] = []
    vx, vy = float(grid.voxel_size[0]), float(grid.voxel_size[1])
    for src in range(p - 1):
        objs = _objects(past[src], dyn)
        x0, y0, yaw = traj[src]
        c, s = np.cos(yaw), np.sin(yaw)
        for o in objs:
            mx = grid.range_min[0] + (o.centroid[0] + 0.5) * vx
            my = grid.range_min[1] + (o.centroid[1] + 0.5) * vy
            gx, gy = c * mx - s * my + x0, s * mx + c * my + y0
            o.centroid = np.array([(gx - grid.range_min[0]) / vx - 0.5, (gy - grid.range_min[1]) / vy - 0.5])
        frames.append(objs)
    cur = _objects(past[-1], dyn)
    vel = np.zeros((len(cur), 2))
    if not cur or p < 2:
        return cur, vel
    voxel = float(grid.voxel_size[0])
    tracks = {i: [cur[i].centroid] for i in range(len(cur)) if not cur[i].truncated}
    step = {i: np.zeros(2) for i in tracks}
    for back, prev in enumerate(reversed(frames)):
        live = list(tracks) if back == 0 else [i for i in tracks if len(tracks[i]) == back + 1]
        if not live:
            break
        expect = np.stack([tracks[i][-1] - step[i] for i in live])
        gate = (config.gate if back == 0 else config.track_gate) / voxel
        hit = _match([cur[i] for i in live], expect, prev, gate)
        for i, j in zip(live, hit, strict=True):
            if j >= 0:
                step[i] = tracks[i][-1] - prev[j].centroid
                tracks[i].append(prev[j].centroid)
    for i, cents in tracks.items():
        if len(cents) < 2:
            continue
        c = np.stack(cents[::-1])  # oldest first
        v = np.polyfit(np.arange(len(c)), c, 1)[0] if len(c) > 2 else c[1] - c[0]
        if np.hypot(*v) * voxel >= config.min_speed:
            vel[i] = v
    return cur, vel


def _centres_in_current(pose: np.ndarray, grid: GridSpec) -> tuple[np.ndarray, np.ndarray]:
    """(X, Y) x and y of the voxel centres of the frame at ``pose`` (3,), in the current frame."""
    qx, qy = np.meshgrid(grid.axis_centres(0), grid.axis_centres(1), indexing="ij")
    c, s = np.cos(pose[2]), np.sin(pose[2])
    return c * qx - s * qy + pose[0], s * qx + c * qy + pose[1]


def _paste_moving(
    frame: np.ndarray,
    owner: np.ndarray,
    lifted: np.ndarray,
    shifts: np.ndarray,
    pose: np.ndarray,
    grid: GridSpec,
    free: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw the moving objects, each shifted by its ``shifts`` row (m, current frame), into ``frame``
    (X, Y, Z; the frame at ``pose``), sampling them at its own voxel centres.

    ``owner`` (X, Y) holds 1 + the object index of each current-frame column (0: none) and
    ``lifted`` (X, Y, Z) the objects' own voxels (``free`` elsewhere). Returns the frame and the
    (X, Y) mask of the columns an object was drawn into.
    """
    out, drawn = frame.copy(), np.zeros(owner.shape, dtype=bool)
    if not len(shifts):
        return out, drawn
    nx, ny = owner.shape
    vx, vy = float(grid.voxel_size[0]), float(grid.voxel_size[1])
    px, py = _centres_in_current(pose, grid)
    for j, (dx, dy) in enumerate(shifts, 1):
        ix = np.floor((px - dx - grid.range_min[0]) / vx).astype(np.int64)
        iy = np.floor((py - dy - grid.range_min[1]) / vy).astype(np.int64)
        hit = (ix >= 0) & (ix < nx) & (iy >= 0) & (iy < ny)
        hit[hit] = owner[ix[hit], iy[hit]] == j
        src = lifted[ix[hit], iy[hit]]  # (N, Z)
        out[hit] = np.where(src != free, src, out[hit])
        drawn |= hit
    return out, drawn


def motion_warp(
    past: np.ndarray,
    traj: np.ndarray,
    steps: np.ndarray,
    *,
    grid: GridSpec = OCC3D,
    free: int = OCC3D_VOCAB.free,
    config: MotionConfig = MotionConfig(),
) -> np.ndarray:
    """One window: past (P, X, Y, Z) labels, traj (P + F, 3), steps (K,) future indices -> (K, X, Y, Z)."""
    p = past.shape[0]
    objs, vel = track_velocities(past, traj, grid=grid, config=config)
    base = past[-1].copy()
    owner = np.zeros(base.shape[:2], dtype=np.int64)
    lifted = np.full_like(base, free)
    moving = [i for i in range(len(objs)) if vel[i].any()]
    for j, i in enumerate(moving, 1):
        x, y = objs[i].cols[:, 0], objs[i].cols[:, 1]
        column = base[x, y]  # (N, Z)
        own = column == objs[i].cls
        owner[x, y] = j
        lifted[x, y] = np.where(own, column, free)
        base[x, y] = np.where(own, free, column)
    speed = vel[moving].reshape(-1, 2) * np.asarray(grid.voxel_size[:2], dtype=np.float64)  # m per frame
    out = np.empty((len(steps), *base.shape), dtype=past.dtype)
    still = torch.from_numpy(base)[None]
    for n, k in enumerate(steps):
        pose = traj[p + k]
        target = torch.as_tensor(pose[None], dtype=torch.float64)
        static = warp_grid(still, target, grid=grid, fill=free, extrude=config.extrude)[0].numpy()
        out[n], drawn = _paste_moving(static, owner, lifted, speed * (k + 1), pose, grid, free)
        if config.fuse:
            out[n] = fuse_history(
                out[n], past, traj[:p], pose, grid=grid, dynamic=config.dynamic, moved=drawn
            )
    return out


def fuse_history(
    warped: np.ndarray,
    past: np.ndarray,
    past_traj: np.ndarray,
    pose: np.ndarray,
    *,
    grid: GridSpec = OCC3D,
    dynamic: tuple[int, ...] = MotionConfig.dynamic,
    moved: np.ndarray | None = None,
) -> np.ndarray:
    """Columns of ``warped`` (X, Y, Z; the frame at ``pose``) resampled from the history.

    ``past`` (P, X, Y, Z) frames at ``past_traj`` (P, 3) poses and ``pose`` (3,) are all in the
    current frame. ``moved`` (X, Y) marks the columns holding a moved object: they are kept. Each
    other column takes the history column whose voxel centre, in any history frame, lies nearest
    to its own centre, among those with no dynamic class, or with one within a column of a
    standing object (a dynamic class of ``warped`` outside ``moved``): a parked car is sampled
    as densely as a wall, while a moving object's earlier places leave no ghost. Columns that no
    frame sees are kept.
    """
    nx, ny = warped.shape[:2]
    moved = np.zeros((nx, ny), dtype=bool) if moved is None else moved
    vx, vy = float(grid.voxel_size[0]), float(grid.voxel_size[1])
    cx, cy = grid.axis_centres(0), grid.axis_centres(1)
    px, py = _centres_in_current(pose, grid)
    is_dyn = np.zeros(256, dtype=bool)
    is_dyn[list(dynamic)] = True
    standing = ndimage.binary_dilation(is_dyn[warped].any(-1) & ~moved, _EIGHT)
    out = warped.copy()
    best = np.full((nx, ny), np.inf)
    for frame, (x0, y0, yaw) in zip(past, past_traj, strict=True):
        c, s = np.cos(yaw), np.sin(yaw)
        fx, fy = c * (px - x0) + s * (py - y0), -s * (px - x0) + c * (py - y0)  # in that frame
        ix = np.floor((fx - grid.range_min[0]) / vx).astype(np.int64)
        iy = np.floor((fy - grid.range_min[1]) / vy).astype(np.int64)
        inside = (ix >= 0) & (ix < nx) & (iy >= 0) & (iy < ny)
        ix, iy = ix.clip(0, nx - 1), iy.clip(0, ny - 1)
        col = frame[ix, iy]  # (X, Y, Z)
        dist = np.hypot(fx - cx[ix], fy - cy[iy])
        take = inside & (dist < best) & (standing | ~is_dyn[col].any(-1))
        best = np.where(take, dist, best)
        out[take] = col[take]
    out[moved] = warped[moved]
    return out


class MotionWarp(nn.Module):
    """Ego-warp with constant-velocity moving objects (module docstring)."""

    def __init__(
        self,
        *,
        past: int = 4,
        future: int = 6,
        grid: GridSpec = OCC3D,
        vocab: Vocabulary = OCC3D_VOCAB,
        config: MotionConfig = MotionConfig(),
    ):
        super().__init__()
        self.past, self.future, self.grid, self.free, self.config = past, future, grid, vocab.free, config

    def forecast(self, past_occ: torch.Tensor, traj: torch.Tensor, **_) -> torch.Tensor:
        """past_occ (B, past, X, Y, Z); traj (B, past + future, 3) -> (B, future, X, Y, Z)."""
        return self.predict(past_occ, traj, torch.arange(self.future))

    def predict(self, past_occ: torch.Tensor, traj: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        """As :meth:`forecast`, for the future frame indices ``frames`` (K,) only: (B, K, X, Y, Z)."""
        if traj.shape[1] != self.past + self.future or past_occ.shape[1] != self.past:
            raise ValueError(
                f"need {self.past} past frames and {self.past + self.future} trajectory rows, "
                f"got {past_occ.shape[1]} and {traj.shape[1]}"
            )
        frames = torch.as_tensor(frames).cpu().numpy()
        occ = past_occ.detach().cpu().numpy()
        tr = traj.detach().cpu().double().numpy()
        out = [
            motion_warp(occ[b], tr[b], frames, grid=self.grid, free=self.free, config=self.config)
            for b in range(occ.shape[0])
        ]
        return torch.from_numpy(np.stack(out)).to(past_occ.device)
