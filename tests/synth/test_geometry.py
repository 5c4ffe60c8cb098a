"""Paths, shapes, rasterisation and the town graph."""

import numpy as np
import pytest

from occ4d.core.vocab import OCC3D_VOCAB, Occ3D
from occ4d.synth.paths import STEP, bezier, resample, speed_limits
from occ4d.synth.shapes import boxes, layer_range
from occ4d.synth.town import CYCLE, TownConfig, build_town
from occ4d.synth.voxelize import fill_boxes, sample_static, to_ego

FREE = OCC3D_VOCAB.free


def test_bezier_quarter_turn_is_smooth_and_tangent():
    pts = bezier((0, 0), (1, 0), (10, 10), (0, 1))
    path = resample(pts)
    assert np.allclose(path.xy[0], (0, 0)) and np.allclose(path.xy[-1], (10, 10), atol=STEP)
    assert abs(path.yaw[1]) < 0.1 and abs(path.yaw[-2] - np.pi / 2) < 0.1
    # Close to a circle of radius 10: curvature about 0.1 1/m in the middle, no kinks anywhere.
    mid = path.curvature[len(path.curvature) // 4 : -len(path.curvature) // 4]
    assert 0.07 < mid.mean() < 0.13 and path.curvature.max() < 0.2
    assert np.allclose(np.linalg.norm(np.diff(path.xy, axis=0), axis=1), STEP, atol=0.02)


def test_speed_limits_brake_before_a_curve():
    straight = np.linspace((0, 0), (50, 0), 500)
    curve = bezier((50, 0), (1, 0), (60, 10), (0, 1))
    path = resample(np.concatenate([straight, curve]))
    cap = speed_limits(path, 15.0, 2.5, 2.0)
    assert cap[0] == pytest.approx(15.0)
    assert cap[-10] < 6.0  # about sqrt(2.5 * 10) in the curve
    assert np.all(cap[1:] ** 2 >= cap[:-1] ** 2 - 2 * 2.0 * STEP - 1e-6)  # reachable braking at 2 m/s^2


def test_layer_range_uses_voxel_centres():
    assert layer_range(-1.0, -0.6) == (0, 1)  # road layer
    assert layer_range(-0.6, 1.0) == (1, 5)  # a car: centres -0.4 .. 0.8
    assert layer_range(-5.0, 50.0) == (0, 16)


def test_fill_boxes_rotated_box_and_thin_objects():
    grid = np.full((50, 50, 16), FREE, np.uint8)
    # A 3.9 x 1.9 m box rotated 90 deg at the origin of a 0.4 m grid spanning -10..10 m:
    # column centres within 0.95 m in x (4 of them) and 1.95 m in y (10), layers 1..4.
    fill_boxes(
        grid, -10.0, -10.0, 0.4, np.array([[0.0, 0.0, np.pi / 2, 3.9, 1.9, -0.6, 1.0, Occ3D.CAR]]), False
    )
    cols = (grid == Occ3D.CAR).any(2)
    assert cols.sum() == 4 * 10 and cols[23:27, 20:30].all()
    assert (grid == Occ3D.CAR).sum() == 4 * 10 * 4
    # A 0.1 m wide object still marks the column under its centre.
    thin = np.full((50, 50, 16), FREE, np.uint8)
    fill_boxes(thin, -10.0, -10.0, 0.4, np.array([[0.1, 0.1, 0.0, 0.1, 0.1, -0.6, 1.0, Occ3D.BICYCLE]]), True)
    assert (thin == Occ3D.BICYCLE).sum() == 4


def test_sample_static_follows_the_ego_yaw():
    world = np.full((100, 100, 16), FREE, np.uint8)
    world[:, :, 0] = Occ3D.DRIVEABLE_SURFACE
    world[60:62, 40:60, 1:5] = Occ3D.MANMADE  # a wall 2 m east of the origin (world x = 2.0..2.4)
    out = np.empty((200, 200, 16), np.uint8)
    for yaw, cell in ((0.0, (105, 100)), (np.pi / 2, (100, 94))):
        sample_static(world, -10.0, -10.0, 0.2, 0.0, 0.0, yaw, -40.0, -40.0, 0.4, out, Occ3D.TERRAIN, FREE)
        assert out[cell[0], cell[1], 2] == Occ3D.MANMADE
        assert out[150, 150, 0] == Occ3D.TERRAIN  # beyond the world map: plain ground
        assert out[150, 150, 3] == FREE
    # Yaw +90 deg: the wall east of the ego is on its right (-y).
    bx = to_ego(np.array([[2.2, 0.0, 0.0, 1, 1, 0, 1, 4]]), 0.0, 0.0, np.pi / 2)
    assert np.allclose(bx[0, :3], (0.0, -2.2, -np.pi / 2))


def test_car_has_a_body_and_a_cabin():
    parts = boxes("car", 5.0, 2.0, 0.3, (4.5, 1.8, 1.6))
    assert parts.shape == (2, 8) and np.all(parts[:, 7] == Occ3D.CAR)
    assert parts[1, 3] < parts[0, 3] and parts[1, 6] == pytest.approx(-0.6 + 1.6)


def test_town_has_crossings_tees_and_curves_and_every_lane_goes_on():
    town = build_town(np.random.default_rng(7), TownConfig(nodes=(5, 5)))
    kinds = set(town.kind)
    assert {"cross", "tee", "curve"} <= kinds
    for t in town.tracks:
        assert town.out[t.id], f"track {t.id} is a dead end"
        for ci in town.out[t.id]:
            c = town.connectors[ci]
            assert np.allclose(c.points[0], t.end) and np.allclose(c.points[-1], town.tracks[c.dst].start)
    turns = {c.kind for c in town.connectors}
    assert {"straight", "left", "right", "curve"} <= turns


def test_signal_cycle_and_hold():
    town = build_town(np.random.default_rng(1), TownConfig(nodes=(3, 3)))
    node = town.kind.index("tee") if "tee" in town.kind else town.kind.index("cross")
    total = sum(d for _, d in CYCLE)
    seen = {town.phase_at(node, t) for t in np.arange(0.0, total, 0.5)}
    assert seen == {-1, 0, 1, 2, 3, 4}
    town.signal_hold[node] = (3, 10.0, 30.0)
    assert town.phase_at(node, 8.0) == -1  # all red before the held phase
    assert all(town.phase_at(node, t) == 3 for t in np.arange(10.0, 30.0, 0.5))
    assert town.phase_window(node, 20.0) == (3, pytest.approx(10.0))
