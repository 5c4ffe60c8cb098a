"""``occ4d convert SRC --to FORMAT --out DIR``: convert occupancy files between formats.

Same-grid conversions (Occ3D, OpenOcc v2, Occ3D-Waymo 0.4 m) are exact relabels through the one
mapping table; conversions between the ego grids and the LiDAR-frame grids (SurroundOcc,
OpenOccupancy, OpenOcc v1) resample through lidar2ego and are lossy (PROTOCOLS §1.2). LiDAR
calibration varies per log, so ``--info`` takes each frame's lidar2ego from its info entry. The
command prints how many voxels had no counterpart in the target vocabulary.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import tyro
from tyro.conf import Positional

FormatName = Literal["occ3d", "openocc", "openocc_v1", "surroundocc", "openoccupancy", "waymo"]


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

    from occ4d.data.index import load_index
    from occ4d.io.convert_tree import convert_tree
    from occ4d.io.formats import FORMATS

    # An info entry without lidar2ego reads as identity (occ4d.data.index), which is never a real
    # roof LiDAR pose: such frames keep the fallback calibration.
    calibrated = None if info is None else {
        r.path.resolve(): r.lidar2ego for r in load_index(info, skip_bad=skip_bad)
        if not np.array_equal(r.lidar2ego, np.eye(4))
    }
    totals = convert_tree(src, to, out, from_=from_, lidar2ego=lidar2ego, calibrated=calibrated,
                          skip_bad=skip_bad)
    target = FORMATS[to]
    resampled, exact = totals["resampled"], totals["exact"]
    bad, from_info = totals["bad"], totals["from_info"]

    v = max(totals["voxels"], 1)
    print(f"converted {totals['frames']} frame(s) to {to} under {Path(out)}")
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
