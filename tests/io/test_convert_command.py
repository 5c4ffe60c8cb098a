"""``occ4d convert``: a single file, a folder tree, format guessing, the printed counts, bad files."""

from __future__ import annotations

import numpy as np
import pytest

from occ4d.cli import main
from occ4d.core import IGNORE, OCC3D, DataError, Frame, Occ3D, OpenOcc, SurroundOcc
from occ4d.io.formats import read_frame
from occ4d.io.occ3d import save_labels
from occ4d.io.openocc import save_npy


def test_real_openocc_frame_to_occ3d(tmp_path, openocc_frame_path, capsys):
    main(["convert", str(openocc_frame_path), "--to", "occ3d", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert "converted 1 frame(s) to occ3d" in out and "exact relabel" in out
    assert "no counterpart in the occ3d vocabulary: 0 (0.000%" in out
    src = read_frame(openocc_frame_path, "openocc")
    dst = read_frame(tmp_path / openocc_frame_path.name, "occ3d")
    for o, c in ((OpenOcc.CAR, Occ3D.CAR), (OpenOcc.BARRIER, Occ3D.BARRIER), (OpenOcc.FREE, Occ3D.FREE),
                 (OpenOcc.VEGETATION, Occ3D.VEGETATION)):
        assert (src.semantics == o).sum() == (dst.semantics == c).sum()


def test_folder_tree_with_lidar_resampling_and_unmapped_count(tmp_path, capsys):
    src = tmp_path / "src"
    rows = np.array([[100, 120, 8, SurroundOcc.CAR], [101, 120, 8, 0]])
    save_npy(src / "a" / "s1.npy", rows)
    save_npy(src / "b" / "s2.npy", rows[:1])
    main(["convert", str(src), "--to", "occ3d", "--out", str(tmp_path / "out"), "--from", "surroundocc",
          "--lidar2ego", "0", "0", "0", "1", "0", "0", "0"])
    out = capsys.readouterr().out
    assert "converted 2 frame(s)" in out and "lossy" in out and "source noise voxels (no label): 1" in out
    f = read_frame(tmp_path / "out" / "a" / "s1.npz", "occ3d")
    # identity lidar2ego: SurroundOcc voxel (100, 120, 8) spans x 0..0.5, y 10..10.5, z -1..-0.5
    assert (f.semantics == Occ3D.CAR).sum() > 0
    assert np.all(centres_within(np.argwhere(f.semantics == Occ3D.CAR), (0, 0.5), (10, 10.5), (-1, -0.5)))
    assert (tmp_path / "out" / "b" / "s2.npz").is_file()

    # Occ3D "others" has no SurroundOcc class: counted, and kept as noise in the target
    occ = np.full((200, 200, 16), Occ3D.FREE, np.uint8)
    occ[100:102, 100, 4] = Occ3D.OTHERS
    save_labels(tmp_path / "o" / "labels.npz", Frame(occ))
    main(["convert", str(tmp_path / "o" / "labels.npz"), "--to", "surroundocc",
          "--out", str(tmp_path / "so")])
    out = capsys.readouterr().out
    assert "no counterpart in the surroundocc vocabulary: 2 " in out and "kept as noise" in out
    s = read_frame(tmp_path / "so" / "labels.npy", "surroundocc")
    assert (s.semantics == IGNORE).sum() > 0 and (s.semantics == SurroundOcc.CAR).sum() == 0


def centres_within(cells, xr, yr, zr):
    c = OCC3D.voxel_centres(cells)
    return ((c[:, 0] >= xr[0]) & (c[:, 0] < xr[1]) & (c[:, 1] >= yr[0]) & (c[:, 1] < yr[1])
            & (c[:, 2] >= zr[0]) & (c[:, 2] < zr[1]))


def test_bad_files_stop_or_are_skipped(tmp_path, capsys):
    src = tmp_path / "src"
    save_npy(src / "ambiguous.npy", np.array([[1, 2, 3, 4]]))  # SurroundOcc or OpenOccupancy: cannot tell
    (src / "bad.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DataError, match="ambiguous.npy"):  # files are taken in sorted order
        main(["convert", str(src), "--to", "occ3d", "--out", str(tmp_path / "out")])
    main(["convert", str(src), "--to", "occ3d", "--out", str(tmp_path / "out"), "--skip-bad"])
    out = capsys.readouterr().out
    assert "skipped 2 bad file(s)" in out and "converted 0 frame(s)" in out
    with pytest.raises(DataError, match="no such file"):
        main(["convert", str(tmp_path / "none"), "--to", "occ3d", "--out", str(tmp_path / "out")])


def test_info_gives_each_frame_its_own_lidar2ego(tmp_path, capsys):
    from occ4d.core import SURROUNDOCC_VOCAB, make_pose
    from occ4d.core.grid import SURROUNDOCC
    from occ4d.io.infos import devkit_info, save_pkl
    from occ4d.io.resample import NUSCENES_LIDAR2EGO

    occ = np.full(OCC3D.shape, Occ3D.FREE, np.uint8)
    occ[149:152, 111:114, 3:6] = Occ3D.CAR  # ego x 19.6..20.8, y 4.4..5.6, z 0.2..1.4
    own = make_pose((10.0, 0.5, 1.9), (np.cos(-0.3), 0.0, 0.0, np.sin(-0.3)))  # not the default
    infos = []
    for i, tok in enumerate(("tokA", "tokB")):
        rel = f"gts/scene-1/{tok}/labels.npz"
        save_labels(tmp_path / "data" / rel, Frame(occ))
        info = devkit_info(tok, "sc1", i, 10**15 + i * 500_000, np.eye(4), rel, lidar2ego=own)
        if tok == "tokB":  # an info without calibration: lidar2ego reads as identity
            for key in ("lidar2ego_translation", "lidar2ego_rotation"):
                del info[key]
        infos.append(info)
    save_pkl(tmp_path / "data" / "x_infos_temporal_val.pkl", {"infos": infos, "metadata": {"version": "v"}})
    main(["convert", str(tmp_path / "data" / "gts"), "--to", "surroundocc", "--out", str(tmp_path / "so"),
          "--info", str(tmp_path / "data" / "x_infos_temporal_val.pkl")])
    out = capsys.readouterr().out
    assert "1 frame(s) with their own from" in out and "the others the default nuScenes" in out
    for tok, l2e in (("tokA", own), ("tokB", NUSCENES_LIDAR2EGO)):
        f = read_frame(tmp_path / "so" / "scene-1" / tok / "labels.npy", "surroundocc")
        assert f.vocab == SURROUNDOCC_VOCAB
        cells = np.argwhere(f.semantics == SurroundOcc.CAR)
        assert len(cells)
        # every car voxel of the LiDAR grid, taken back to the ego frame through the lidar2ego used,
        # lies inside the Occ3D car block
        ego = SURROUNDOCC.voxel_centres(cells) @ l2e[:3, :3].T + l2e[:3, 3]
        assert np.all((ego[:, 0] >= 19.6) & (ego[:, 0] < 20.8) & (ego[:, 1] >= 4.4) & (ego[:, 1] < 5.6)
                      & (ego[:, 2] >= 0.2) & (ego[:, 2] < 1.4))
