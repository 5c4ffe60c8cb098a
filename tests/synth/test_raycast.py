"""Visibility masks on hand-built grids with known answers, and the fast transport against
explicit ray walks."""

import numpy as np
import pytest

from occ4d.core.grid import GridSpec
from occ4d.synth import raycast
from occ4d.synth.rig import LIDAR_FOV_DEG, camera_rig, lidar2ego
from occ4d.synth.sensing import Sensors

GRID = GridSpec("small", (40, 40, 16), (0.4, 0.4, 0.4), (-8.0, -8.0, -1.0))
ORIGIN = (0.1, 0.1, 1.84)  # a lidar-like sensor in voxel (20, 20, 7)


def everywhere(p):
    return np.ones(len(p), bool)


def fast(occ, origin=ORIGIN, view=everywhere):
    return raycast.mask(occ, [raycast.Visibility(origin, view, GRID)])


def exact(occ, origin=ORIGIN, view=everywhere):
    return raycast.exact_mask(occ, origin, view, GRID)


def scene_with_wall():
    occ = np.zeros(GRID.shape, bool)
    occ[:, :, 0] = True  # ground
    occ[30, 15:26, 0:12] = True  # a wall 4 m ahead, 4.4 m wide, up to 3.8 m
    occ[34, 20, 1:4] = True  # a post hidden behind the wall
    occ[10, 20, 1:4] = True  # a post in plain view behind the sensor
    return occ


@pytest.mark.parametrize("method", [fast, exact])
def test_wall_hides_what_is_behind_it(method):
    occ = scene_with_wall()
    seen = method(occ)
    assert seen[30, 20, 5]  # the wall's face is observed
    assert not seen[34, 20, 2]  # the post behind it is not
    assert not seen[32, 20, 3]  # nor the free space between wall and post
    assert not seen[36, 20, 0]  # nor the ground in the wall's shadow
    assert seen[10, 20, 2]  # the post in view is observed
    assert seen[25, 20, 4]  # free space between sensor and wall is observed
    assert seen[25, 20, 0]  # the ground in front of the wall is observed


@pytest.mark.parametrize("method", [fast, exact])
def test_open_sky_is_not_observed_and_occluded_interiors_stay_hidden(method):
    occ = np.zeros(GRID.shape, bool)
    occ[:, :, 0] = True
    occ[5:9, 5:9, 0:10] = True  # a solid block
    seen = method(occ)
    assert not seen[20, 20, 15]  # straight up: the ray leaves into the sky and returns nothing
    assert not seen[20, 30, 14]
    assert not seen[6, 6, 5]  # inside the block
    assert seen[8, 8, 5]  # its corner facing the sensor
    assert seen[30, 20, 0] and seen[30, 20, 1]  # ground ahead and the free voxel above it


def test_nothing_to_hit_means_nothing_observed():
    assert not fast(np.zeros(GRID.shape, bool)).any()
    assert not exact(np.zeros(GRID.shape, bool)).any()


def test_fast_masks_agree_with_explicit_rays():
    rng = np.random.default_rng(3)
    occ = np.zeros(GRID.shape, bool)
    occ[:, :, 0] = True
    for _ in range(25):  # random boxes standing on the ground
        i, j = rng.integers(0, 38, size=2)
        if abs(i - 20) < 3 and abs(j - 20) < 3:
            continue
        occ[i : i + rng.integers(1, 4), j : j + rng.integers(1, 4), 1 : rng.integers(2, 12)] = True
    a, b = fast(occ), exact(occ)
    iou = lambda x, y: (x & y).sum() / (x | y).sum()  # noqa: E731
    assert iou(a, b) > 0.6
    # Surfaces agree more closely; walks to voxel centres miss grazing ground the transport keeps.
    assert iou(a & occ, b & occ) > 0.7
    above = occ.copy()
    above[:, :, 0] = False
    assert iou(a & above, b & above) > 0.7


def test_lidar_field_of_view_leaves_a_blind_ring_around_the_car():
    origin = lidar2ego()[:3, 3]
    occ = np.zeros(GRID.shape, bool)
    occ[:, :, 0] = True
    seen = fast(occ, origin, raycast.lidar_view(origin, LIDAR_FOV_DEG))
    # The lowest beam is 30.67 deg down: ground within ~4 m of the lidar is not seen.
    assert not seen[21, 20, 0] and not seen[25, 20, 0]
    assert seen[35, 20, 0] and seen[5, 20, 0]


def test_front_camera_sees_only_ahead():
    cam = camera_rig()["CAM_FRONT"]
    occ = np.zeros(GRID.shape, bool)
    occ[:, :, 0] = True
    occ[:, 0, :] = occ[:, -1, :] = occ[0, :, :] = occ[-1, :, :] = True  # walls around
    seen = fast(occ, np.asarray(cam.sensor2ego)[:3, 3], raycast.camera_view(cam))
    assert seen[39, 20, 4]  # the wall ahead
    assert not seen[0, 20, 4]  # the wall behind
    assert not seen[30, 0, 4] and not seen[30, 39, 4]  # 90 deg to the sides: outside a 70 deg view


def test_sensors_on_the_occ3d_grid():
    sensors = Sensors()
    occ = np.zeros((200, 200, 16), bool)
    occ[:, :, 0] = True
    occ[125, 90:110, 1:12] = True  # a wall 10 m ahead
    lidar, camera = sensors.masks(occ)
    assert lidar.dtype == bool and lidar.shape == (200, 200, 16)
    assert lidar[125, 100, 5] and camera[125, 100, 5]
    assert not lidar[140, 100, 0] and not camera[140, 100, 0]
    assert camera[60, 100, 0]  # the back camera sees the road behind
    assert 0.0 < camera.mean() < lidar.mean() + 0.1
