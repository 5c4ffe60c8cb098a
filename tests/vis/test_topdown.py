"""Top-down images: orientation, highest-voxel rule, masks, colours against voxel counts."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from occ4d.core.vocab import OCC3D_VOCAB, Occ3D
from occ4d.io.occ3d import load_labels
from occ4d.vis.topdown import BACKGROUND, image_to_grid_index, save_png, topdown_labels, topdown_rgb

FREE = OCC3D_VOCAB.free


def empty(shape=(20, 30, 8)) -> np.ndarray:
    return np.full(shape, FREE, np.uint8)


def colour(c) -> np.ndarray:
    return OCC3D_VOCAB.colours[int(c)]


def test_orientation_x_up_y_left():
    sem = empty()
    sem[19, 15, 0] = Occ3D.CAR  # far ahead (largest x): top of the image
    sem[0, 15, 0] = Occ3D.BUS  # behind: bottom
    sem[10, 29, 0] = Occ3D.TRUCK  # far left (largest y): image left
    sem[10, 0, 0] = Occ3D.PEDESTRIAN  # far right: image right
    rgb = topdown_rgb(sem)
    assert rgb.shape == (20, 30, 3) and rgb.dtype == np.uint8
    assert (rgb[0, 14] == colour(Occ3D.CAR)).all()
    assert (rgb[19, 14] == colour(Occ3D.BUS)).all()
    assert (rgb[9, 0] == colour(Occ3D.TRUCK)).all()
    assert (rgb[9, 29] == colour(Occ3D.PEDESTRIAN)).all()
    x, y = image_to_grid_index(0, 14, (20, 30))
    assert (int(x), int(y)) == (19, 15)


def test_highest_voxel_wins_and_empty_is_background():
    sem = empty()
    sem[5, 5, 0] = Occ3D.DRIVEABLE_SURFACE
    sem[5, 5, 3] = Occ3D.CAR
    sem[5, 5, 7] = FREE
    labels = topdown_labels(sem)
    r, c = 20 - 1 - 5, 30 - 1 - 5
    assert labels[r, c] == Occ3D.CAR
    assert (labels == FREE).sum() == labels.size - 1
    rgb = topdown_rgb(sem)
    assert (rgb[0, 0] == BACKGROUND).all()


def test_mask_hides_voxels_outside():
    sem = empty()
    sem[5, 5, 0] = Occ3D.DRIVEABLE_SURFACE
    sem[5, 5, 3] = Occ3D.CAR
    mask = np.ones(sem.shape, np.uint8)  # stored masks are uint8: must be treated as bool
    mask[5, 5, 3] = 0
    assert topdown_labels(sem, mask=mask)[14, 24] == Occ3D.DRIVEABLE_SURFACE
    col_mask = np.ones(sem.shape[:2], bool)
    col_mask[5, 5] = False
    assert topdown_labels(sem, mask=col_mask)[14, 24] == FREE
    with pytest.raises(ValueError, match="mask must have shape"):
        topdown_labels(sem, mask=np.ones((3, 3, 3), bool))


def test_shade_darkens_low_voxels_only():
    sem = empty()
    sem[1, 1, 0] = Occ3D.MANMADE
    sem[2, 2, 7] = Occ3D.MANMADE
    flat, shaded = topdown_rgb(sem), topdown_rgb(sem, shade=True)
    low, high = (18, 28), (17, 27)
    assert (shaded[high] == flat[high]).all()
    assert (shaded[low] < flat[low]).all()


def test_real_frame_colours_match_column_counts(occ3d_frame_path, tmp_path):
    frame = load_labels(occ3d_frame_path)
    rgb = topdown_rgb(frame.semantics)
    labels = topdown_labels(frame.semantics)
    # Every pixel has exactly its column's class colour, and each class's pixel count equals
    # the number of columns whose top voxel has that class (counted independently here).
    sem = frame.semantics
    occ = sem != FREE
    tops = np.full(sem.shape[:2], FREE, np.uint8)
    for z in range(sem.shape[2]):
        tops[occ[:, :, z]] = sem[:, :, z][occ[:, :, z]]
    for c in range(OCC3D_VOCAB.num_classes - 1):
        n_pix = int(np.all(rgb == colour(c), axis=-1).sum())
        assert n_pix == int((tops == c).sum()), OCC3D_VOCAB.names[c]
    assert (labels != FREE).mean() > 0.3  # a real street scene is far from blank
    out = tmp_path / "td.png"
    save_png(out, rgb)
    assert (np.asarray(Image.open(out).convert("RGB")) == rgb).all()
