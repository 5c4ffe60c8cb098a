"""Synthetic cameras: ray-cast geometry on a hand-built scene, depth/semantics consistency with the
scene, determinism, and the files and info entries ``generate(camera_width=...)`` writes."""

from __future__ import annotations

import numpy as np
import pytest
from _camworld import FRAMES, SEED, WIDTH, camera_world

from occ4d.core.camera import NUSCENES_CAMERAS
from occ4d.core.grid import OCC3D
from occ4d.core.vocab import OCC3D_VOCAB, Occ3D
from occ4d.io.images import load_camera_targets, load_image
from occ4d.io.infos import load_pkl
from occ4d.synth import cameras
from occ4d.synth.rig import camera_rig
from occ4d.synth.scenery import RES, WorldMap

WALL_X = 10.0  # m ahead of the ego


def wall_world() -> WorldMap:
    """Road everywhere (layer 0), a manmade wall 0.4 m thick from x = 10 m, across the view."""
    n = int(100 / RES)
    grid = np.full((n, n, OCC3D.shape[2]), OCC3D_VOCAB.free, np.uint8)
    grid[:, :, 0] = Occ3D.DRIVEABLE_SURFACE
    a0 = int((WALL_X + 50) / RES)
    grid[a0:a0 + 2, :, 1:12] = Occ3D.MANMADE
    return WorldMap(grid, (-50.0, -50.0))


@pytest.fixture(scope="module")
def wall_views():
    rig = cameras.scaled_rig(camera_rig(), 160)
    return cameras.render_views(wall_world(), (0.0, 0.0, 0.0), [], rig, (0, 0, 0))


def test_front_centre_pixel_sees_the_wall_at_its_distance(wall_views):
    cam = wall_views.rig["CAM_FRONT"]
    n = NUSCENES_CAMERAS.index("CAM_FRONT")
    v, u = cam.height // 2, cam.width // 2
    # The principal ray is horizontal along ego +x from x = 1.70 m: z depth = 10 - 1.70.
    assert wall_views.semantics[n, v, u] == Occ3D.MANMADE
    expected = WALL_X - np.asarray(cam.sensor2ego)[0, 3]
    assert wall_views.depth[n, v, u] == pytest.approx(expected, abs=0.02)


def test_bottom_pixels_see_the_road_plane(wall_views):
    cam = wall_views.rig["CAM_BACK"]
    n = NUSCENES_CAMERAS.index("CAM_BACK")
    v, u = cam.height - 1, cam.width // 2
    dirs, forward = cameras.pixel_rays(cam)
    d = dirs[v * cam.width + u]
    origin = np.asarray(cam.sensor2ego)[:3, 3]
    t = (-0.6 - origin[2]) / d[2]  # the road's top face (layer 0 ends at z = -0.6 m)
    assert wall_views.semantics[n, v, u] == Occ3D.DRIVEABLE_SURFACE
    assert wall_views.depth[n, v, u] == pytest.approx(t * d @ forward, rel=1e-3)


def test_sky_has_no_depth_and_no_class(wall_views):
    n = NUSCENES_CAMERAS.index("CAM_BACK")
    assert wall_views.semantics[n, 0, 0] == cameras.IGNORE_PIXEL
    assert wall_views.depth[n, 0, 0] == 0
    sky = wall_views.rgb[n, 0, :].astype(float).mean(0)
    assert sky[2] > sky[0]  # bluish


def test_depth_and_semantics_agree_with_the_scene():
    """Back-project every pixel with its depth: just past the surface lies a cell of its class."""
    from occ4d.synth.world import simulate_scene

    captured = {}

    def grab(f, world, ego, agents):
        if f == 0:
            captured.update(world=world, ego=ego, agents=agents)

    for _ in simulate_scene(SEED, 0, 1, render=grab):
        pass
    rig = cameras.scaled_rig(camera_rig(), 80)
    views = cameras.render_views(captured["world"], captured["ego"], captured["agents"], rig, (1,))
    cls, _ = cameras.fine_scene(captured["world"], captured["ego"], captured["agents"])
    lo, size = np.asarray(OCC3D.range_min), np.asarray(cameras.FINE)
    agree = total = 0
    for n, cam in enumerate(rig.cameras):
        dirs, forward = cameras.pixel_rays(cam)
        depth = views.depth[n].ravel()
        sem = views.semantics[n].ravel()
        hit = depth > 0
        assert np.array_equal(hit, sem != cameras.IGNORE_PIXEL)
        t = depth[hit] / (dirs[hit] @ forward) + 1e-3
        pts = np.asarray(cam.sensor2ego)[:3, 3] + dirs[hit] * t[:, None]
        idx = np.floor((pts - lo) / size).astype(int)
        ok = np.all((idx >= 0) & (idx < np.asarray(cameras.FINE_SHAPE)), axis=1)
        agree += int((cls[tuple(idx[ok].T)] == sem[hit][ok]).sum())
        total += int(hit.sum())
    assert total > 0.5 * sum(c.width * c.height for c in rig.cameras)
    assert agree / total > 0.99


def test_render_is_deterministic_and_noise_depends_on_the_seed(wall_views):
    rig = wall_views.rig
    again = cameras.render_views(wall_world(), (0.0, 0.0, 0.0), [], rig, (0, 0, 0))
    other = cameras.render_views(wall_world(), (0.0, 0.0, 0.0), [], rig, (0, 0, 1))
    assert cameras.jpeg_bytes(again.rgb[0]) == cameras.jpeg_bytes(wall_views.rgb[0])
    assert not np.array_equal(other.rgb, wall_views.rgb)
    assert np.array_equal(other.depth, wall_views.depth)


def test_generate_writes_images_targets_and_info_entries():
    root = camera_world()
    infos = load_pkl(root / "occ4d_infos_temporal_train.pkl")["infos"]
    assert infos
    for info in infos:
        for name in NUSCENES_CAMERAS:
            c = info["cams"][name]
            assert c["data_path"] == f"samples/{name}/{info['token']}.jpg"
            img = load_image(root / c["data_path"])
            assert img.shape == (round(900 * WIDTH / 1600), WIDTH, 3)
            k = np.asarray(c["cam_intrinsic"])
            assert k[0, 2] == pytest.approx(WIDTH / 2)  # intrinsics of the written image
            depth, sem = load_camera_targets(root / f"samples/{name}/{info['token']}.npz", img.shape[:2])
            assert np.array_equal(depth > 0, sem != cameras.IGNORE_PIXEL)
    # Same seed, same bytes: scene 0's first keyframe simulated and rendered again.
    from occ4d.synth import writer
    from occ4d.synth.world import simulate_scene

    views = {}
    rig = cameras.scaled_rig(camera_rig(), WIDTH)

    def render(f, world, ego, agents):
        views[f] = cameras.render_views(world, ego, agents, rig, (SEED, 0, f))

    next(simulate_scene(SEED, 0, FRAMES, render=render))
    tok = writer.token(SEED, 0, 0)
    for n, name in enumerate(NUSCENES_CAMERAS):
        assert cameras.jpeg_bytes(views[0].rgb[n]) == (root / cameras.image_path(name, tok)).read_bytes()
