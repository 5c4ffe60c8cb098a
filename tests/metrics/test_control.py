"""Control metrics: ego-motion registration on grids moved by known poses, and planning scores."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from occ4d.core.grid import OCC3D, GridSpec
from occ4d.core.vocab import Occ3D
from occ4d.metrics.control import ControlMetric, PlanningMetric, estimate_motion, step_motions

FREE = int(Occ3D.FREE)
WORLD_RES, WORLD_N = 0.2, 800  # a 160 m static world map at 0.2 m, centred on the origin


def make_world(seed: int = 0) -> np.ndarray:
    """A static bird's-eye world: terrain, a road along x, sidewalks, buildings and trees."""
    rng = np.random.default_rng(seed)
    world = np.full((WORLD_N, WORLD_N), int(Occ3D.TERRAIN), np.uint8)
    world[:, 370:430] = int(Occ3D.DRIVEABLE_SURFACE)
    world[:, 345:370] = int(Occ3D.SIDEWALK)
    world[:, 430:455] = int(Occ3D.SIDEWALK)
    for _ in range(120):
        x, y = rng.integers(0, WORLD_N - 40, 2)
        w, h = rng.integers(5, 40, 2)
        if abs(y + h / 2 - 400) > 70:
            world[x : x + w, y : y + h] = rng.choice([int(Occ3D.MANMADE), int(Occ3D.VEGETATION)])
    return world


def view(world: np.ndarray, pose, grid: GridSpec = OCC3D) -> torch.Tensor:
    """The (X, Y, Z) frame an ego at world pose (x, y, yaw) sees (ground layer at z index 2)."""
    qx, qy = np.meshgrid(grid.axis_centres(0), grid.axis_centres(1), indexing="ij")
    c, s = math.cos(pose[2]), math.sin(pose[2])
    px, py = c * qx - s * qy + pose[0], s * qx + c * qy + pose[1]
    half = WORLD_N * WORLD_RES / 2
    ix, iy = np.floor((px + half) / WORLD_RES).astype(int), np.floor((py + half) / WORLD_RES).astype(int)
    ok = (ix >= 0) & (ix < WORLD_N) & (iy >= 0) & (iy < WORLD_N)
    occ = np.full(grid.shape, FREE, np.uint8)
    occ[..., 2] = np.where(ok, world[ix.clip(0, WORLD_N - 1), iy.clip(0, WORLD_N - 1)], FREE)
    return torch.from_numpy(occ)


def compose(a, b):
    """World pose of b given the world pose a and b's pose in a's frame."""
    c, s = math.cos(a[2]), math.sin(a[2])
    return (a[0] + c * b[0] - s * b[1], a[1] + s * b[0] + c * b[1], a[2] + b[2])


@pytest.fixture(scope="module")
def world() -> np.ndarray:
    return make_world()


@pytest.mark.parametrize("rel", [(3.3, 0.4, 0.05), (6.0, -1.1, -0.2), (0.0, 0.0, 0.0)])
def test_registration_recovers_a_known_pose(world, rel):
    start = (1.0, -2.0, 0.1)
    est = estimate_motion(view(world, start), view(world, compose(start, rel)))
    assert abs(est[0] - rel[0]) < 0.2 and abs(est[1] - rel[1]) < 0.2
    assert abs(est[2] - rel[2]) < math.radians(0.5)


def test_registration_ignores_moving_objects_and_reports_empty_frames(world):
    a = view(world, (0, 0, 0))
    b = view(world, (2.0, 0, 0)).clone()
    b[90:110, 95:105, 3] = int(Occ3D.CAR)  # a car appears: not a static class
    est = estimate_motion(a, b)
    assert abs(est[0] - 2.0) < 0.2 and abs(est[1]) < 0.2
    empty = torch.full(OCC3D.shape, FREE, dtype=torch.uint8)
    assert np.isnan(estimate_motion(a, empty)).all()


def test_control_metric_against_conditioning_trajectory(world):
    world_poses = [(0.0, 0.0, 0.0), (3.0, 0.0, 0.0), (6.0, 0.2, 0.05)]
    clip = torch.stack([view(world, p) for p in world_poses])
    traj = np.array(world_poses)
    m = ControlMetric()
    got = m.update(clip, traj)
    assert np.allclose(got, step_motions(traj), atol=0.2)
    good = m.compute()
    assert good["steps"] == 2 and good["failed_share"] == 0 and good["trans_err_m"] < 0.2
    # Told to stand still while the clip moves 3 m per step: the error is about 3 m.
    m2 = ControlMetric()
    m2.update(clip, np.zeros((3, 3)))
    assert 2.7 < m2.compute()["trans_err_m"] < 3.3
    with pytest.raises(ValueError, match="frames"):
        m2.update(clip, np.zeros((2, 3)))


def test_step_motions_in_each_previous_frame():
    traj = np.array([[0, 0, 0], [1, 0, math.pi / 2], [1, 2, math.pi / 2]])
    assert np.allclose(step_motions(traj), [[1, 0, math.pi / 2], [2, 0, 0]], atol=1e-9)


def test_planning_metric_l2_and_collisions():
    f = 6
    gt = np.stack([np.arange(1, f + 1) * 2.0, np.zeros(f), np.zeros(f)], axis=1)[None]  # 2 m per step
    future = torch.full((1, f, *OCC3D.shape), FREE, dtype=torch.uint8)
    future[..., 2] = int(Occ3D.DRIVEABLE_SURFACE)  # ground never counts as an obstacle
    # A wall 3 m to the left of the ego in every future frame (its own frame).
    wall_y = int((3.0 - OCC3D.range_min[1]) / OCC3D.voxel_size[1])
    future[:, :, :, wall_y, 3] = int(Occ3D.MANMADE)
    m = PlanningMetric()
    m.update(gt, gt, future)
    perfect = m.compute()
    assert perfect["l2_1s"] == 0 and perfect["l2_3s"] == 0 and perfect["collision_3s"] == 0
    pred = gt.copy()
    pred[0, 3:, 1] = 3.0  # from step 4 on the plan swerves 3 m left, into the wall
    m = PlanningMetric()
    m.update(pred, gt, future)
    r = m.compute()
    assert r["l2_1s"] == 0 and r["collision_1s"] == 0
    assert r["l2_2s"] == pytest.approx(3.0 / 4) and r["collision_2s"] == pytest.approx(100 / 4)
    assert r["l2_3s"] == pytest.approx(9.0 / 6) and r["collision_3s"] == pytest.approx(300 / 6)
    assert r["samples"] == 1
