"""The ``occ4d`` dispatcher: bad input from the console is one clear line, not a traceback."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from occ4d.cli import main
from occ4d.core import DataError
from occ4d.io.atomic import save_npz


def run_console(*args: str) -> subprocess.CompletedProcess:
    # ``python -m occ4d.cli`` calls main() without argv, exactly as the installed console script does.
    return subprocess.run([sys.executable, "-m", "occ4d.cli", *args], capture_output=True, text=True,
                          timeout=120)


def test_console_reports_bad_input_in_one_line(tmp_path):
    bad = tmp_path / "gts" / "scene-0001" / "tok" / "labels.npz"
    save_npz(bad, True, semantics=np.full((200, 200, 15), 17, np.uint8))
    done = run_console("info", str(tmp_path), "--no-progress")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("occ4d info: error: ") and str(bad) in last and "must have shape" in last

    missing = run_console("convert", str(tmp_path / "nothing"), "--to", "occ3d", "--out", str(tmp_path / "o"))
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert f"{tmp_path / 'nothing'}: no such file or folder" in missing.stderr


def test_called_with_argv_the_error_propagates(tmp_path):
    with pytest.raises(DataError, match="no such file or folder"):
        main(["info", str(tmp_path / "nothing"), "--no-progress"])
