"""Motion-warp: tracked objects move on at their velocity, everything else is ego-warp."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from occ4d.core.grid import GridSpec
from occ4d.core.vocab import Occ3D
from occ4d.models.world import EgoWarp, MotionConfig, MotionWarp, RefinerConfig, WarpRefiner, motion_warp
from occ4d.models.world.baselines import warp_grid
from occ4d.models.world.motion import GROUND, _paste_moving, fuse_history, track_velocities
from occ4d.models.world.rollout import compose_traj, rollout

FREE, CAR, PED = int(Occ3D.FREE), int(Occ3D.CAR), int(Occ3D.PEDESTRIAN)
ROAD, BUILDING = int(Occ3D.DRIVEABLE_SURFACE), int(Occ3D.MANMADE)
SHAPE = (60, 40, 4)
GRID = GridSpec("test", SHAPE, (0.4, 0.4, 0.4), (-12.0, -8.0, -1.0))
P, F = 4, 6


def scene(car_x: list[int], ego_x: list[float] | None = None, *, parked: bool = True):
    """Past frames (P, X, Y, Z) of a road with a moving car (world column ``car_x[t]``), a parked
    car and a building, seen from an ego at world x ``ego_x[t]`` m (yaw 0), and the (P + F, 3)
    trajectory relative to the current frame."""
    ego_x = ego_x or [0.0] * (P + F)
    frames = []
    for t in range(P):
        g = np.full(SHAPE, FREE, np.uint8)
        g[..., 0] = ROAD
        shift = int(round(ego_x[t] / 0.4))  # the ego's move in voxels
        def put(x0, x1, y0, y1, cls, z0=1, z1=3, g=g, shift=shift):
            xs = slice(max(x0 - shift, 0), max(min(x1 - shift, SHAPE[0]), 0))
            g[xs, y0:y1, z0:z1] = cls
        put(car_x[t], car_x[t] + 10, 18, 22, CAR)
        if parked:
            put(40, 50, 30, 34, CAR)
        put(0, 200, 0, 3, BUILDING, 0, 4)
        frames.append(g)
    traj = np.zeros((P + F, 3))
    traj[:, 0] = np.asarray(ego_x) - ego_x[P - 1]
    return np.stack(frames), traj


def car_columns(grid: np.ndarray) -> set[tuple[int, int]]:
    xs, ys = np.nonzero((grid == CAR).any(-1))
    return set(zip(xs.tolist(), ys.tolist(), strict=True))


def box(x0: int, x1: int, y0: int, y1: int) -> set[tuple[int, int]]:
    return {(x, y) for x in range(max(x0, 0), min(x1, SHAPE[0])) for y in range(y0, y1)}


def test_a_moving_car_moves_on_and_a_parked_one_stays():
    past, traj = scene([10, 12, 14, 16])  # 2 voxels (0.8 m) per frame, static ego
    out = motion_warp(past, traj, np.arange(F), grid=GRID)
    for k in range(F):
        x = 16 + 2 * (k + 1)
        assert car_columns(out[k]) == box(x, x + 10, 18, 22) | box(40, 50, 30, 34), k
        # the car's old place is free above the road, and the ground under it stays
        assert (out[k][16:x, 18:22, 1:3] == FREE).all()
        assert (out[k][:, 3:, 0] == ROAD).all()


def test_ego_motion_and_object_motion_compose():
    ego = [2.0 * t for t in range(P + F)]  # 5 voxels per frame
    past, traj = scene([30, 33, 36, 39], ego, parked=False)  # the car: 3 voxels per frame in the world
    out = motion_warp(past, traj, np.arange(F), grid=GRID)
    for k in range(F):
        x = 39 + 3 * (k + 1) - 5 * (P + k)  # its world column minus the ego's shift at frame P + k
        assert car_columns(out[k]) == box(x, x + 10, 18, 22), k


def test_no_dynamic_objects_is_exactly_ego_warp():
    g = torch.Generator().manual_seed(0)
    occ = torch.randint(11, 18, (2, P, *SHAPE), generator=g).to(torch.uint8)  # static classes only
    traj = torch.zeros(2, P + F, 3)
    traj[:, :, 0] = torch.arange(-3, 7) * 0.9
    traj[1, :, 2] = torch.arange(-3, 7) * 0.05
    want = EgoWarp(past=P, future=F, grid=GRID).forecast(occ, traj)
    assert torch.equal(MotionWarp(past=P, future=F, grid=GRID).forecast(occ, traj), want)


def test_untracked_objects_stand_still():
    # A car seen only in the current frame, and one cut by the grid border: neither is moved.
    past, traj = scene([-100, -100, -100, 20], parked=False)
    still = motion_warp(past, traj, np.arange(F), grid=GRID)
    assert all(car_columns(f) == box(20, 30, 18, 22) for f in still)
    past, traj = scene([-8, -6, -4, -2], parked=False)  # sticks out over x = 0 in every frame
    cut = motion_warp(past, traj, np.arange(F), grid=GRID)
    assert all(car_columns(f) == box(0, 8, 18, 22) for f in cut)


def test_slow_objects_and_class_changes_are_not_tracked():
    past, traj = scene([10, 10, 10, 11])  # 0.13 m per frame on average: below min_speed
    out = motion_warp(past, traj, np.arange(F), grid=GRID, config=MotionConfig(min_speed=0.25))
    assert car_columns(out[-1]) == box(11, 21, 18, 22) | box(40, 50, 30, 34)
    past[:3][past[:3] == CAR] = PED  # a different class in the history: no match, no motion
    out = motion_warp(past, traj, np.arange(F), grid=GRID)
    assert car_columns(out[-1]) == box(11, 21, 18, 22) | box(40, 50, 30, 34)


def test_steps_pick_future_frames_and_bad_input_is_refused():
    past, traj = scene([10, 12, 14, 16])
    mw = MotionWarp(past=P, future=F, grid=GRID)
    occ, tr = torch.from_numpy(past)[None], torch.from_numpy(traj)[None]
    full = mw.forecast(occ, tr)
    assert torch.equal(mw.predict(occ, tr, torch.tensor([1, 4])), full[:, [1, 4]])
    with pytest.raises(ValueError, match="trajectory rows"):
        mw.forecast(occ, tr[:, :5])
    with pytest.raises(ValueError, match="positive"):
        MotionConfig(gate=0)


def test_motion_extrude_continues_the_ground_and_moves_cars_as_motion_warp():
    ego = [2.0 * t for t in range(P + F)]  # 5 voxels per frame: the far rows enter the grid
    past, traj = scene([30, 33, 36, 39], ego, parked=False)
    plain = motion_warp(past, traj, np.arange(F), grid=GRID)
    ext = motion_warp(past, traj, np.arange(F), grid=GRID, config=MotionConfig(extrude=GROUND))
    for k in range(F):
        new = SHAPE[0] - 5 * (k + 1)  # first row the current frame did not cover
        assert (plain[k][new:] == FREE).all() and (ext[k][new:, 3:, 0] == ROAD).all(), k
        # the building beside the road (y < 3) is not extruded, nor anything above the ground
        assert (ext[k][new:, :3] == FREE).all() and (ext[k][new:, :, 1:] == FREE).all()
        assert np.array_equal(ext[k][:new], plain[k][:new])
        assert car_columns(ext[k]) == car_columns(plain[k])


def test_refiner_over_motion_warp_starts_as_motion_warp():
    torch.manual_seed(0)
    cfg = RefinerConfig(grid=GRID, channels=(8, 8), embed=4, mid_blocks=1, latent=False, base="motion-warp")
    ref = WarpRefiner(cfg)
    past, traj = scene([10, 12, 14, 16])
    occ, tr = torch.from_numpy(past)[None], torch.from_numpy(traj)[None].float()
    logits = ref(occ, tr)
    moved = MotionWarp(grid=GRID).forecast(occ, tr)
    assert torch.equal(logits.argmax(-1).to(torch.uint8), moved)
    # a prior the caller computed once (a frame-by-frame forecast) gives the same logits
    assert torch.equal(ref(occ, tr, torch.tensor([2]), prior=moved[:, [2]]), logits[:, [2]])
    with pytest.raises(ValueError, match="prior must be"):
        ref(occ, tr, torch.tensor([2]), prior=moved)
    # the net reads the prior: with a trained (here random) head, another prior changes the corrections
    torch.nn.init.normal_(ref.head.weight)
    warped = EgoWarp(grid=GRID).forecast(occ, tr)
    delta = ref(occ, tr) / cfg.prior_scale
    other = ref(occ, tr, prior=warped) / cfg.prior_scale
    onehot = torch.nn.functional.one_hot
    assert not torch.allclose(delta - onehot(moved.long(), 18), other - onehot(warped.long(), 18))
    from occ4d.models.world.forecasting import BASELINES
    from occ4d.models.world.motion import MOTION_BASELINES, motion_config

    assert BASELINES[2:] == MOTION_BASELINES and motion_config("motion-warp") == MotionConfig()
    with pytest.raises(ValueError, match="motion baseline"):
        motion_config("ego-warp")
    ext = WarpRefiner(dataclasses.replace(cfg, base="motion-extrude"))
    assert ext.motion.config.extrude == GROUND and not ext.motion.config.fuse
    assert WarpRefiner(dataclasses.replace(cfg, base="fused-warp")).motion.config.fuse
    assert torch.equal(ext(occ, tr).argmax(-1).to(torch.uint8), ext.prior(occ, tr, torch.arange(F)))
    with pytest.raises(ValueError, match="base"):
        RefinerConfig(base="flow")


def test_compose_traj_starts_the_path_at_the_openings_last_pose():
    opening = np.array([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [4.0, 1.0, np.pi / 2]])
    path = np.array([[5.0, 5.0, 0.0], [7.0, 5.0, 0.0], [9.0, 5.0, 0.1]])  # 2 m ahead per row
    out = compose_traj(opening, path)
    assert out.shape == (5, 3) and np.array_equal(out[:3], opening)
    # facing +y at the last opening pose, "ahead" is +y
    assert np.allclose(out[3:], [[4.0, 3.0, np.pi / 2], [4.0, 5.0, np.pi / 2 + 0.1]])
    with pytest.raises(ValueError, match="x, y, yaw"):
        compose_traj(opening[:, :2], path)


def test_rollout_continues_an_opening_window_by_window():
    # A static street and a 2-voxel step per frame: ego-warp's rollout is an exact shift.
    base = np.full(SHAPE, FREE, np.uint8)
    base[..., 0] = ROAD
    base[:, 0:3, :] = BUILDING
    base[25:28, 30:33, 1:3] = BUILDING
    opening = torch.from_numpy(np.stack([base] * P))[None]
    traj = torch.zeros(1, 3, 3)
    traj[0, :, 0] = torch.tensor([0.0, 0.8, 1.6])  # continued at 0.8 m per frame
    model = EgoWarp(past=P, future=F, grid=GRID)
    clip = rollout(model, opening, traj, 13, past=P, future=F)
    assert clip.shape == (1, 13, *SHAPE) and torch.equal(clip[0, :P], opening[0])
    for t in range(P, 13):
        shift = 2 * (t - (P - 1))  # voxels moved since the opening's last frame
        want = np.full(SHAPE, FREE, np.uint8)
        want[: SHAPE[0] - shift] = base[shift:]
        assert np.array_equal(clip[0, t].numpy(), want), t
    with pytest.raises(ValueError, match="opening"):
        rollout(model, opening[:, :2], traj, 13, past=P, future=F)
    with pytest.raises(ValueError, match="NaN"):
        rollout(model, opening, torch.full_like(traj, float("nan")), 13, past=P, future=F)
    with pytest.raises(ValueError, match="at least"):
        rollout(model, opening, traj, 2, past=P, future=F)


def pole_frame(
    ego_x: float, lo: float = 4.95, hi: float = 5.15, car_at: int | None = None, cls: int = BUILDING
) -> np.ndarray:
    """The road with a 0.2 m pole (of class ``cls``) at world x in [lo, hi), seen from an ego at
    world ``ego_x``: a column is labelled by what lies at its centre, as Occ3D and the synthetic
    world do."""
    g = np.full(SHAPE, FREE, np.uint8)
    g[..., 0] = ROAD
    centres = GRID.range_min[0] + 0.4 * (np.arange(SHAPE[0]) + 0.5) + ego_x
    g[(centres >= lo) & (centres < hi), 20, 1:4] = cls
    if car_at is not None:
        g[car_at : car_at + 5, 10:14, 1:3] = CAR
    return g


def test_fusing_the_history_recovers_what_the_current_frame_sampled_between():
    # The pole lies between two voxel centres of the current frame (ego at 0.2 m) but on one of the
    # previous frame's (ego at 0.0 m) and of the target frame's (ego at 0.4 m).
    past = np.stack([pole_frame(0.0), pole_frame(0.2)])
    assert (past[1] == BUILDING).sum() == 0 and (past[0] == BUILDING).sum() == 3
    traj = np.array([[-0.2, 0.0, 0.0], [0.0, 0.0, 0.0], [0.2, 0.0, 0.0]])
    want = pole_frame(0.4)
    plain = warp_grid(torch.from_numpy(past[1])[None], torch.tensor([[0.2, 0.0, 0.0]]), grid=GRID)[0].numpy()
    fused = fuse_history(plain, past, traj[:2], traj[2], grid=GRID)
    assert (plain == BUILDING).sum() == 0
    assert np.array_equal(fused[:59], want[:59])  # the last row entered the grid: nobody saw it
    # a car that stood in the older frame only is not fused in; a moved one in the output is kept
    past[0] = pole_frame(0.0, car_at=30)
    assert np.array_equal(fuse_history(plain, past, traj[:2], traj[2], grid=GRID)[:59], want[:59])
    with_car = plain.copy()
    with_car[5:8, 5:8, 1] = CAR
    moved = (with_car == CAR).any(-1)
    kept = fuse_history(with_car, past, traj[:2], traj[2], grid=GRID, moved=moved)
    assert (kept[5:8, 5:8, 1] == CAR).all()


def test_fusing_samples_a_standing_car_as_densely_as_a_wall():
    # A parked car from world x 3.05 to 5.15 m: the current frame (ego at 0.2 m) misses its front
    # between two voxel centres; the older frame (ego at 0.0 m) and the target (0.4 m) sample it.
    past = np.stack([pole_frame(0.0, 3.05, 5.15, cls=CAR), pole_frame(0.2, 3.05, 5.15, cls=CAR)])
    traj = np.array([[-0.2, 0.0, 0.0], [0.0, 0.0, 0.0], [0.2, 0.0, 0.0]])
    want = pole_frame(0.4, 3.05, 5.15, cls=CAR)
    plain = warp_grid(torch.from_numpy(past[1])[None], torch.tensor([[0.2, 0.0, 0.0]]), grid=GRID)[0].numpy()
    assert not np.array_equal(plain[:59], want[:59])  # nearest-neighbour warping: one voxel behind
    assert np.array_equal(fuse_history(plain, past, traj[:2], traj[2], grid=GRID)[:59], want[:59])
    # had the car moved, the older frame's copy of it would be a ghost: nothing is taken from it
    moved = (plain == CAR).any(-1)
    assert np.array_equal(fuse_history(plain, past, traj[:2], traj[2], grid=GRID, moved=moved), plain)


def test_moved_objects_are_drawn_at_the_target_frames_own_voxel_centres():
    # A 4.0 x 1.6 m car whose edges lie on the current frame's voxel boundaries moves 0.8 m per
    # frame along x while the ego drives and turns 7 degrees per frame: each future frame must
    # sample the moved box at its own voxel centres, with no second rounding.
    def render(pose, car_x):
        g = np.full(SHAPE, FREE, np.uint8)
        g[..., 0] = ROAD
        qx, qy = np.meshgrid(GRID.axis_centres(0), GRID.axis_centres(1), indexing="ij")
        c, s = np.cos(pose[2]), np.sin(pose[2])
        wx, wy = c * qx - s * qy + pose[0], s * qx + c * qy + pose[1]
        g[(np.abs(wx - car_x) < 2.0) & (np.abs(wy) < 0.8), 1:3] = CAR
        return g

    cur = render((0.0, 0.0, 0.0), 0.0)
    owner = (cur == CAR).any(-1).astype(np.int64)
    lifted = np.where(cur == CAR, cur, FREE).astype(np.uint8)
    rounded_misses = 0
    for k in range(F):
        pose = np.array([0.3 * (k + 1), 0.1 * (k + 1), np.radians(7.0) * (k + 1)])
        shift = 0.8 * (k + 1)
        want = render(pose, shift)
        empty = render(pose, 1e3)  # the road alone
        got, drawn = _paste_moving(empty, owner, lifted, np.array([[shift, 0.0]]), pose, GRID, FREE)
        assert np.array_equal(got, want), k
        assert np.array_equal(drawn, (want == CAR).any(-1)), k
        # shifting in the current grid by whole voxels, then warping, rounds twice
        moved = np.roll(cur, int(np.rint(shift / 0.4)), axis=0)
        twice = warp_grid(torch.from_numpy(moved)[None], torch.from_numpy(pose[None]), grid=GRID)[0].numpy()
        rounded_misses += not np.array_equal(twice, want)
    assert rounded_misses > 0


def test_fused_warp_equals_motion_extrude_on_a_history_of_one_pose():
    g = torch.Generator().manual_seed(1)
    occ = torch.randint(11, 18, (1, 1, *SHAPE), generator=g).to(torch.uint8).expand(1, P, *SHAPE)
    traj = torch.zeros(1, P + F, 3)
    traj[:, P:, 0] = torch.arange(1, F + 1) * 0.9
    ext = MotionWarp(past=P, future=F, grid=GRID, config=MotionConfig(extrude=GROUND))
    fused = MotionWarp(past=P, future=F, grid=GRID, config=MotionConfig(extrude=GROUND, fuse=True))
    assert torch.equal(fused.forecast(occ, traj), ext.forecast(occ, traj))


def test_velocities_are_estimated_in_each_frames_own_grid_under_ego_rotation():
    # A car driving 1 m per frame along world x, seen by an ego that drives and turns (3 deg per
    # frame); each frame labels its own voxel centres, as the synthetic world does.
    ego = [(0.5 * t, 0.0, np.radians(3.0) * t) for t in range(P)]
    frames = []
    for t, (ex, ey, yaw) in enumerate(ego):
        g = np.full(SHAPE, FREE, np.uint8)
        g[..., 0] = ROAD
        cx = GRID.range_min[0] + 0.4 * (np.arange(SHAPE[0]) + 0.5)
        cy = GRID.range_min[1] + 0.4 * (np.arange(SHAPE[1]) + 0.5)
        qx, qy = np.meshgrid(cx, cy, indexing="ij")
        wx = np.cos(yaw) * qx - np.sin(yaw) * qy + ex - (2.0 + 1.0 * t)  # relative to the car's centre
        wy = np.sin(yaw) * qx + np.cos(yaw) * qy + ey - 1.0
        g[(np.abs(wx) < 2.2) & (np.abs(wy) < 0.9), 1:3] = CAR
        frames.append(g)
    cur = ego[-1]
    traj = np.zeros((P + F, 3))
    for t, (ex, ey, yaw) in enumerate(ego):  # each frame's pose in the current frame
        c, s = np.cos(cur[2]), np.sin(cur[2])
        dx, dy = ex - cur[0], ey - cur[1]
        traj[t] = (c * dx + s * dy, -s * dx + c * dy, yaw - cur[2])
    objs, vel = track_velocities(np.stack(frames), traj, grid=GRID)
    assert len(objs) == 1
    want = np.array([np.cos(cur[2]), -np.sin(cur[2])]) * 1.0 / 0.4  # world +x, in voxels of the current frame
    assert np.abs(vel[0] - want).max() < 0.15, (vel[0], want)
