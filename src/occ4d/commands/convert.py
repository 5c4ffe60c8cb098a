"""``occ4d convert SRC --to FORMAT --out DIR``: convert occupancy files between formats.

Same-grid conversions (Occ3D, OpenOcc v2, Occ3D-Waymo 0.4 m) are exact relabels through the one
mapping table; conversions between the ego grids and the LiDAR-frame grids (SurroundOcc,
OpenOccupancy, OpenOcc v1) resample through lidar2ego and are lossy (PROTOCOLS §1.2). LiDAR
calibration varies per log, so ``--info`` takes each frame's lidar2ego from its info entry. The
command prints how many voxels had no counterpart in the target vocabulary.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Literal

import tyro
from tyro.conf import Positional

FormatName = Literal["occ3d", "openocc", "openocc_v1", "surroundocc", "openoccupancy", "waymo"]
log = logging.getLogger(__name__)


def convert(
    src: Positional[Path],
    to: FormatName,
    out: Path,
    from_: Annotated[FormatName | None, tyro.conf.arg(name="from")] = None,
    lidar2ego: tuple[float, float, float, float, float, float, float] | None = None,
    info: Path | None = None,
    skip_bad: bool = False,
) -> None:
    """Convert one occupancy file, or every one under a folder, to another format.

    Args:
        src: a frame file, or a folder searched recursively (*.npz and *.npy).
        to: target format.
        out: output folder; a folder SRC's layout is mirrored under it, suffixes changed to the target's.
        from_: source format; guessed from each file's keys or table shape when omitted.
        lidar2ego: LiDAR pose in the ego frame, as x y z qw qx qy qz (metres, quaternion w first),
            used when converting between the LiDAR-frame and ego grids. Default: one real nuScenes
            LIDAR_TOP calibration; calibration varies per log.
        info: an info .pkl or data root (read as by ``occ4d info``); a file it lists as a frame's
            labels is converted with that frame's lidar2ego (frames whose info has none, i.e.
            identity, and files it does not list use --lidar2ego or the default).
        skip_bad: log and count unreadable files instead of stopping at the first.
    """
    import numpy as np

    from occ4d.core.errors import DataError
    from occ4d.core.pose import make_pose
    from occ4d.data.index import load_index
    from occ4d.io.convert import convert_frame
    from occ4d.io.formats import FORMATS, detect_format, read_frame, write_frame
    from occ4d.io.resample import NUSCENES_LIDAR2EGO

    src, out = Path(src), Path(out)
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
    l2e = NUSCENES_LIDAR2EGO if lidar2ego is None else make_pose(lidar2ego[:3], lidar2ego[3:])
    # An info entry without lidar2ego reads as identity (occ4d.data.index), which is never a real
    # roof LiDAR pose: such frames keep the fallback calibration.
    calibrated = {} if info is None else {
        r.path.resolve(): r.lidar2ego for r in load_index(info, skip_bad=skip_bad)
        if not np.array_equal(r.lidar2ego, np.eye(4))
    }
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

    v = max(totals["voxels"], 1)
    print(f"converted {totals['frames']} frame(s) to {to} under {out}")
    if resampled:
        fallback = "the default nuScenes LIDAR_TOP calibration" if lidar2ego is None else "--lidar2ego"
        if info is None:
            lidar_note = "" if lidar2ego is not None else f" ({fallback})"
        else:
            lidar_note = f" ({from_info} frame(s) with their own from {info}, the others {fallback})"
        print(f"grids differ: resampled through lidar2ego{lidar_note}, nearest voxel; this is lossy")
    else:
        print("same grid: exact relabel through the mapping table")
    if not exact:
        print("class mapping is name-level (Occ3D-Waymo), not defined by any official code")
    print(f"voxels with no counterpart in the {target.vocab.name} vocabulary: {totals['unmapped']} "
          f"({100 * totals['unmapped'] / v:.3f}% of target voxels)"
          + ("; kept as noise" if target.keeps_ignore else "; written as free"))
    if totals["ignored"]:
        print(f"source noise voxels (no label): {totals['ignored']}")
    if resampled:
        print(f"target voxels outside the source grid (written as free): {totals['uncovered']} "
              f"({100 * totals['uncovered'] / v:.2f}%)")
    if bad:
        print(f"skipped {len(bad)} bad file(s)")
