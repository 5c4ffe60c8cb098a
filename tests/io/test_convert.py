"""Conversion between formats: exact same-grid relabels, lossy lidar<->ego resampling, what is lost."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from occ4d.core import IGNORE, OCC3D, OCC3D_VOCAB, Frame, Occ3D, OpenOcc, SurroundOcc, Waymo, make_pose
from occ4d.core.grid import OPENOCCUPANCY, SURROUNDOCC
from occ4d.core.vocab import SURROUNDOCC_VOCAB
from occ4d.io.convert import convert_frame
from occ4d.io.resample import NUSCENES_LIDAR2EGO, grid_transform, source_index


def occ3d_frame(rng):
    sem = rng.integers(0, OCC3D_VOCAB.num_classes, OCC3D.shape, dtype=np.uint8)
    return Frame(sem, mask_camera=rng.random(OCC3D.shape) < 0.5, mask_lidar=rng.random(OCC3D.shape) < 0.5)


def test_same_grid_relabel_is_exact_and_counts_unmapped(rng):
    f = occ3d_frame(rng)
    out, stats = convert_frame(f, "openocc")
    assert not stats.resampled and stats.exact_mapping and stats.uncovered == 0
    others = int((f.semantics == Occ3D.OTHERS).sum())
    assert stats.unmapped == others > 0
    assert (out.semantics == OpenOcc.CAR).sum() == (f.semantics == Occ3D.CAR).sum()
    assert (out.semantics == OpenOcc.FREE).sum() == others + (f.semantics == Occ3D.FREE).sum()
    np.testing.assert_array_equal(out.mask_camera, f.mask_camera)
    back, stats2 = convert_frame(out, "occ3d")
    keep = f.semantics != Occ3D.OTHERS
    np.testing.assert_array_equal(back.semantics[keep], f.semantics[keep])
    assert stats2.unmapped == 0


def test_waymo_mapping_warns_and_keeps_grid_geometry(rng):
    f = occ3d_frame(rng)
    with pytest.warns(UserWarning, match="name-level"):
        out, stats = convert_frame(f, "waymo")
    assert out.grid.name.startswith("occ3d_waymo") and not stats.resampled and not stats.exact_mapping
    assert (out.semantics == Waymo.VEHICLE).sum() == (f.semantics == Occ3D.CAR).sum()
    # bus, trailer, truck ... have no Waymo counterpart
    lost = np.isin(f.semantics, [Occ3D.BARRIER, Occ3D.BUS, Occ3D.CONSTRUCTION_VEHICLE, Occ3D.TRAILER,
                                 Occ3D.TRUCK, Occ3D.OTHER_FLAT, Occ3D.TERRAIN]).sum()
    assert stats.unmapped == lost


def test_lidar_to_ego_resampling_moves_objects_through_lidar2ego():
    # A 2 m car cube in the SurroundOcc LiDAR grid centred 10 m along LiDAR +y (= ego forward).
    sem = np.zeros(SURROUNDOCC.shape, np.uint8)
    centre_l = np.array([0.0, 10.0, -1.0])
    lo, _ = SURROUNDOCC.point_to_index((centre_l - 1.0)[None])
    hi, _ = SURROUNDOCC.point_to_index((centre_l + 0.999)[None])
    (x0, y0, z0), (x1, y1, z1) = lo[0], hi[0]
    sem[x0:x1 + 1, y0:y1 + 1, z0:z1 + 1] = SurroundOcc.CAR
    sem[0, 0, 0] = IGNORE  # noise far outside the Occ3D grid
    f = Frame(sem, vocab=SURROUNDOCC_VOCAB, grid=SURROUNDOCC).validate(allow_ignore=True)
    out, stats = convert_frame(f, "occ3d", lidar2ego=NUSCENES_LIDAR2EGO)
    assert stats.resampled and stats.unmapped == 0 and stats.ignored == 1
    centre_e = (NUSCENES_LIDAR2EGO @ np.append(centre_l, 1.0))[:3]
    # LiDAR +y is ego +x: 10 m ahead plus the 0.99 m mounting offset, less a small tilt
    assert centre_e[0] == pytest.approx(10.93, abs=0.05) and abs(centre_e[1]) < 0.2
    idx, _ = OCC3D.point_to_index(centre_e[None])
    assert out.semantics[tuple(idx[0])] == Occ3D.CAR
    cars = np.argwhere(out.semantics == Occ3D.CAR)
    # 8 m^3 of car in 0.064 m^3 voxels: ~125, nearest sampling and a tilted LiDAR give a little slack
    assert 100 <= len(cars) <= 160
    centres = OCC3D.voxel_centres(cars).mean(axis=0)
    np.testing.assert_allclose(centres, centre_e, atol=0.25)
    # the top of the Occ3D grid (ego z > ~4.8 m) is above the SurroundOcc range: uncovered, free, unobserved
    assert stats.uncovered > 0 and (out.semantics == Occ3D.FREE).sum() == OCC3D.num_voxels - len(cars)


def test_ego_lidar_round_trip_keeps_most_voxels(rng):
    f = occ3d_frame(rng)
    f.semantics[:] = Occ3D.FREE
    f.semantics[90:130, 80:120, 2:10] = Occ3D.MANMADE  # a 16 x 16 x 3.2 m block near the ego
    lidar, s1 = convert_frame(f, "surroundocc", lidar2ego=NUSCENES_LIDAR2EGO)
    assert lidar.grid == SURROUNDOCC and s1.resampled
    back, _ = convert_frame(lidar, "occ3d", lidar2ego=NUSCENES_LIDAR2EGO)
    a, b = f.semantics == Occ3D.MANMADE, back.semantics == Occ3D.MANMADE
    iou = (a & b).sum() / (a | b).sum()
    assert 0.6 < iou < 1.0  # lossy (0.4 m -> 0.5 m -> 0.4 m), but the block stays where it was


def test_same_frame_different_grid_and_transform_rules():
    assert np.array_equal(grid_transform(SURROUNDOCC, OPENOCCUPANCY, None), np.eye(4))
    with pytest.raises(ValueError, match="needs lidar2ego"):
        grid_transform(SURROUNDOCC, OCC3D, None)
    l2e = make_pose([1.0, 2.0, 3.0], [1.0, 0.0, 0.0, 0.0])
    np.testing.assert_allclose(grid_transform(SURROUNDOCC, OCC3D, l2e)[:3, 3], [-1, -2, -3])
    np.testing.assert_allclose(grid_transform(OCC3D, SURROUNDOCC, l2e)[:3, 3], [1, 2, 3])
    # OpenOccupancy (+-51.2 m, 0.2 m) from SurroundOcc (+-50 m, 0.5 m), same LiDAR frame: target
    # centres beyond 50 m (6 voxels each side) have no source; inside, the mapping is monotone.
    index, covered = source_index(SURROUNDOCC, OPENOCCUPANCY, np.eye(4))
    assert covered.sum() == 500 * 500 * 40 and covered[6:506, 6:506].all()
    sx = np.unravel_index(index[6:506, 6, 0], SURROUNDOCC.shape)[0]
    assert sx[0] == 0 and sx[-1] == 199 and np.all(np.diff(sx) >= 0)
    # 0.5 m / 0.2 m: 2.5 target centres per source voxel; the centre at -49.5 m lies on a boundary
    # and goes up (floor), so the pattern starts 2, 3.
    assert np.bincount(sx).tolist() == [2, 3] * 100


def test_translation_fast_path_matches_point_lookup():
    shift = make_pose([0.3, -1.1, 0.25], [1.0, 0.0, 0.0, 0.0])
    index, covered = source_index(SURROUNDOCC, OCC3D, shift)
    cells = np.argwhere(np.ones(OCC3D.shape, bool))
    idx, inside = SURROUNDOCC.point_to_index(OCC3D.voxel_centres(cells) + shift[:3, 3])
    np.testing.assert_array_equal(covered.reshape(-1), inside)
    flat = np.ravel_multi_index(tuple(idx[inside].T), SURROUNDOCC.shape)
    np.testing.assert_array_equal(index.reshape(-1)[inside], flat)


def test_openoccupancy_target_keeps_noise(rng):
    sem = np.zeros(SURROUNDOCC.shape, np.uint8)
    sem[100:110, 100:110, 5:8] = IGNORE
    sem[120:125, 100:110, 5:8] = SurroundOcc.TERRAIN
    f = Frame(sem, vocab=SURROUNDOCC_VOCAB, grid=SURROUNDOCC).validate(allow_ignore=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out, stats = convert_frame(f, "openoccupancy")
    assert out.grid == OPENOCCUPANCY and stats.resampled and stats.uncovered == (
        OPENOCCUPANCY.num_voxels - 500 * 500 * 40)
    # reference: look every target centre up in the source grid directly
    cells = np.argwhere(out.semantics != SurroundOcc.EMPTY)
    idx, inside = SURROUNDOCC.point_to_index(OPENOCCUPANCY.voxel_centres(cells))
    assert inside.all()
    np.testing.assert_array_equal(out.semantics[tuple(cells.T)], sem[tuple(idx.T)])
    assert (out.semantics == IGNORE).sum() > 0 and (out.semantics == SurroundOcc.TERRAIN).sum() > 0
    # 10 x 10 x 3 source voxels of noise: 25 x 25 target columns, 7 or 8 target layers
    assert (out.semantics == IGNORE).sum() in (25 * 25 * 7, 25 * 25 * 8)
    to_occ, s2 = convert_frame(f, "occ3d", lidar2ego=NUSCENES_LIDAR2EGO)
    assert s2.ignored == 300 and not (to_occ.semantics == IGNORE).any()  # Occ3D cannot store noise
