import numpy as np
import pytest

from occ4d.io.atomic import atomic_path, remove_temps, save_npz


def test_save_npz_is_reproducible_and_loadable(tmp_path):
    a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    save_npz(tmp_path / "x.npz", True, a, extra=np.ones(3))
    first = (tmp_path / "x.npz").read_bytes()
    save_npz(tmp_path / "x.npz", True, a, extra=np.ones(3))
    assert (tmp_path / "x.npz").read_bytes() == first
    with np.load(tmp_path / "x.npz") as z:
        np.testing.assert_array_equal(z["arr_0"], a)
        assert z["extra"].tolist() == [1.0, 1.0, 1.0]


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("crash mid-write")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_written_files_get_the_default_mode(tmp_path):
    import os
    import stat

    mask = os.umask(0)
    os.umask(mask)
    save_npz(tmp_path / "m.npz", True, np.zeros(2))
    assert stat.S_IMODE((tmp_path / "m.npz").stat().st_mode) == 0o666 & ~mask


def test_remove_temps_takes_only_the_writers_temporaries(tmp_path):
    (tmp_path / "sub").mkdir()
    stale = [tmp_path / ".a.npz.abc_1234.tmp", tmp_path / "sub" / ".labels.npz.zz99yy88.tmp"]
    kept = [tmp_path / "a.npz", tmp_path / ".hidden", tmp_path / "notes.tmp", tmp_path / ".x.short.tmp"]
    for p in stale + kept:
        p.write_bytes(b"x")
    assert remove_temps(tmp_path) == [stale[0]]
    assert remove_temps(tmp_path, recursive=True) == [stale[1]]
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == sorted(p.name for p in kept)
