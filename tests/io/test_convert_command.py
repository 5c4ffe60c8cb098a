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
