"""3D voxel renders: visible-face extraction, masks, cameras, and real frames rendered off screen."""

from __future__ import annotations

import numpy as np
import pytest

from occ4d.core.grid import OCC3D, GridSpec
from occ4d.core.vocab import OCC3D_VOCAB, Occ3D
from occ4d.io.occ3d import load_labels
from occ4d.vis.topdown import topdown_labels
from occ4d.vis.voxels import (
    BACKGROUND_3D,
    FACE_SHADE,
    VoxelRenderer,
    camera_view,
    exposed_faces,
    voxel_face_arrays,
)

FREE = OCC3D_VOCAB.free
SMALL = GridSpec("small", (6, 5, 4), (0.5, 0.5, 0.5), (-1.5, -1.25, -1.0))


def empty(grid=SMALL) -> np.ndarray:
    return np.full(grid.shape, FREE, np.uint8)


def test_single_voxel_has_six_faces_at_its_bounds():
    sem = empty()
    sem[2, 1, 3] = Occ3D.CAR
    points, colours = voxel_face_arrays(sem, grid=SMALL)
    assert points.shape == (24, 3) and colours.shape == (6, 3)
    lo = np.array(SMALL.range_min) + np.array([2, 1, 3]) * 0.5
    assert np.allclose(points.min(0), lo) and np.allclose(points.max(0), lo + 0.5)
    # Top face keeps the exact palette colour; the others are darker by the fixed sun.
    expected = sorted(tuple(np.round(OCC3D_VOCAB.colours[Occ3D.CAR] * s).astype(int)) for s in FACE_SHADE)
    assert sorted(tuple(int(v) for v in c) for c in colours) == expected


def test_shared_faces_are_not_drawn():
    occ = np.zeros(SMALL.shape, bool)
    occ[1, 1, 1] = occ[2, 1, 1] = True
    assert sum(len(f) for f in exposed_faces(occ)) == 10
    occ[:] = True  # a solid block shows only its outer surface
    x, y, z = SMALL.shape
    assert sum(len(f) for f in exposed_faces(occ)) == 2 * (x * y + y * z + x * z)


def test_mask_hides_or_dims():
    sem = empty()
    sem[1, 1, 1] = sem[4, 3, 2] = Occ3D.TRUCK
    mask = np.zeros(SMALL.shape, np.uint8)
    mask[1, 1, 1] = 1
    _, hidden = voxel_face_arrays(sem, grid=SMALL, mask=mask, mask_mode="hide")
    _, dimmed = voxel_face_arrays(sem, grid=SMALL, mask=mask, mask_mode="dim")
    _, plain = voxel_face_arrays(sem, grid=SMALL)
    assert len(hidden) == 6 and len(dimmed) == len(plain) == 12
    changed = np.any(dimmed != plain, axis=1)
    assert changed.sum() == 6  # exactly the faces of the voxel outside the mask
    with pytest.raises(ValueError, match="mask_mode"):
        voxel_face_arrays(sem, grid=SMALL, mask=mask, mask_mode="blur")


def test_camera_presets():
    bev = camera_view("bev")
    assert bev.position[2] > 100 and bev.up == (1.0, 0.0, 0.0)
    chase = camera_view("chase")
    assert chase.position[0] < 0 < chase.focal_point[0]  # behind the ego, looking ahead
    a, b = camera_view("orbit", azimuth=0), camera_view("orbit", azimuth=90)
    assert a.position[0] > 0 and abs(a.position[1]) < 1e-6 and b.position[1] > 0
    with pytest.raises(ValueError, match="view must be"):
        camera_view("fisheye")


@pytest.fixture(scope="module")
def renderer():
    with VoxelRenderer(400, 400) as r:
        yield r


def _palette_pixels(img: np.ndarray) -> dict[int, int]:
    return {c: int(np.all(img == OCC3D_VOCAB.colours[c], axis=-1).sum()) for c in OCC3D_VOCAB.semantic_ids}


def test_real_frame_bev_colours_follow_voxel_counts(occ3d_frame_paths, renderer):
    for path in occ3d_frame_paths:
        sem = load_labels(path).semantics
        img = renderer.render(sem, view="bev")
        assert img.shape == (400, 400, 3) and img.dtype == np.uint8
        background = np.all(img == BACKGROUND_3D, axis=-1)
        assert 0.2 < (~background).mean() < 0.95  # neither blank nor a flood
        tops = topdown_labels(sem)  # what a camera straight above sees, column by column
        col_frac = {c: float((tops == c).mean() / (tops != FREE).mean()) for c in OCC3D_VOCAB.semantic_ids}
        pix = _palette_pixels(img)
        total = sum(pix.values())
        for c, frac in col_frac.items():
            share = pix[c] / total
            if frac > 0.02:  # a common class: its colour covers a similar share of the picture
                assert frac / 1.6 < share < frac * 1.6, (OCC3D_VOCAB.names[c], frac, share)
            if frac == 0 and not (sem == c).any():
                assert share < 1e-3, OCC3D_VOCAB.names[c]
        assert max(pix, key=pix.get) == max(col_frac, key=col_frac.get)


def test_ego_marker_camera_views_and_path(occ3d_frame_path, renderer):
    sem = load_labels(occ3d_frame_path).semantics
    nothing = np.full(OCC3D.shape, FREE, np.uint8)
    img = renderer.render(nothing, view="bev")
    white = np.all(img == (255, 255, 255), axis=-1)
    rows, cols = np.nonzero(white)
    assert white.sum() > 10 and abs(cols.mean() - 200) < 5 and abs(rows.mean() - 200) < 10  # ego centred
    views = [renderer.render(sem, view=v) for v in ("bev", "chase", "orbit")]
    pairs = zip(views, views[1:] + views[:1], strict=True)
    assert all(np.abs(a.astype(int) - b).mean() > 5 for a, b in pairs)
    turned = renderer.render(sem, view="orbit", azimuth=45)
    assert np.abs(turned.astype(int) - views[2]).mean() > 5
    path = renderer.render(nothing, view="bev", path_xy=np.array([[0.0, 0.0], [10.0, 0.0], [20.0, 5.0]]))
    red = np.all(path == (255, 60, 60), axis=-1) & ~np.all(img == (255, 60, 60), axis=-1)
    assert red.sum() > 20
    assert rows.mean() > np.nonzero(red)[0].mean()  # the path ahead (+x) is above the ego in the picture


def test_offscreen_backend_choice(monkeypatch):
    from occ4d.vis import voxels

    monkeypatch.setenv("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
    assert voxels.configure_offscreen() == "vtkEGLRenderWindow"  # a user's choice is kept
    monkeypatch.delenv("VTK_DEFAULT_OPENGL_WINDOW")
    monkeypatch.setenv("DISPLAY", ":0")
    assert voxels.configure_offscreen() == "display"
    monkeypatch.delenv("DISPLAY")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(voxels.ctypes.util, "find_library", lambda name: None)
    assert voxels.configure_offscreen() == "vtkEGLRenderWindow"  # no OSMesa: EGL
    monkeypatch.delenv("VTK_DEFAULT_OPENGL_WINDOW")
    monkeypatch.setattr(voxels.ctypes.util, "find_library", lambda name: "libOSMesa.so.8")
    assert voxels.configure_offscreen() == "vtkOSOpenGLRenderWindow"
