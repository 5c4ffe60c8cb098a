"""Converting one frame file, or every one under a folder, to another format (``occ4d convert``).

A folder is searched recursively for ``*.npz`` and ``*.npy`` files and its layout mirrored under
the output folder, suffixes changed to the target format's (files already under the output
folder, when it lies inside the source, are left out). Each file goes through
:func:`occ4d.io.convert.convert_frame`; between the ego and the LiDAR-frame grids it is resampled
through a lidar2ego pose (4x4 float64, metres), taken per file from ``calibrated`` (resolved
label path -> lidar2ego, e.g. from an info file) or else the fallback calibration. The counts
returned are summed over the files, in voxels.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from occ4d.core.errors import DataError
from occ4d.core.pose import make_pose
from occ4d.io.convert import convert_frame
from occ4d.io.formats import FORMATS, detect_format, read_frame, write_frame
from occ4d.io.resample import NUSCENES_LIDAR2EGO

log = logging.getLogger(__name__)


def frame_files(src: Path, out: Path) -> tuple[list[Path], Path]:
    """(the files to convert, the folder their layout is mirrored from) for a file or folder ``src``."""
    if src.is_file():
        files, base = [src], src.parent
    elif src.is_dir():
        files = sorted(p for p in src.rglob("*") if p.suffix in (".npz", ".npy") and p.is_file())
        base = src
        if out.resolve().is_relative_to(src.resolve()):
            files = [p for p in files if not p.resolve().is_relative_to(out.resolve())]
    else:
        raise DataError(src, "no such file or folder")
    if not files:
        raise DataError(src, "no .npz or .npy files to convert")
    return files, base


def convert_tree(
    src: Path,
    to: str,
    out: Path,
    *,
    from_: str | None = None,
    lidar2ego: tuple[float, ...] | None = None,
    calibrated: dict[Path, np.ndarray] | None = None,
    skip_bad: bool = False,
) -> dict:
    """Convert ``src`` (a file or a folder) to format ``to`` under ``out``.

    ``from_`` is the source format (guessed per file when None); ``lidar2ego`` the fallback LiDAR
    pose as x y z qw qx qy qz (default: one real nuScenes LIDAR_TOP calibration); ``calibrated``
    each listed file's own lidar2ego. With ``skip_bad`` an unreadable file is logged and counted
    instead of stopping the conversion. Returns the totals (``frames``, ``voxels``, ``unmapped``,
    ``ignored``, ``uncovered``), whether any frame was ``resampled``, whether every class mapping
    was ``exact``, the ``bad`` files' messages and how many resampled frames used their own
    calibration (``from_info``).
    """
    src, out = Path(src), Path(out)
    files, base = frame_files(src, out)
    l2e = NUSCENES_LIDAR2EGO if lidar2ego is None else make_pose(lidar2ego[:3], lidar2ego[3:])
    calibrated = calibrated or {}
    target = FORMATS[to]

    totals = {"frames": 0, "voxels": 0, "unmapped": 0, "ignored": 0, "uncovered": 0}
    resampled, exact, bad, from_info = False, True, [], 0
    for path in files:
        dest = out / path.relative_to(base).with_suffix(target.suffix)
        if dest.resolve() == path.resolve():
            raise DataError(path, "the output would overwrite the input; choose another --out")
        try:
            fmt = from_ or detect_format(path)
            frame = read_frame(path, fmt)
            frame_l2e = calibrated.get(path.resolve(), l2e)
            converted, stats = convert_frame(frame, to, lidar2ego=frame_l2e)
            write_frame(dest, converted, to)
        except DataError as e:
            if not skip_bad:
                raise
            log.warning("skipped: %s", e)
            bad.append(str(e))
            continue
        totals["frames"] += 1
        totals["voxels"] += stats.voxels
        totals["unmapped"] += stats.unmapped
        totals["ignored"] += stats.ignored
        totals["uncovered"] += stats.uncovered
        resampled |= stats.resampled
        exact &= stats.exact_mapping
        from_info += stats.resampled and frame_l2e is not l2e
    return {**totals, "resampled": resampled, "exact": exact, "bad": bad, "from_info": from_info}
