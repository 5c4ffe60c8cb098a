"""The frame index: every keyframe of a dataset as a :class:`FrameRecord`, from an info file or a scan.

This is the contract the rest of occ4d codes against. ``load_index`` accepts a data root folder
or an info ``.pkl`` and understands the info flavours of PROTOCOLS §2.2:

- devkit converter (``{prefix}_infos_temporal_{split}.pkl``): ``{"infos": [...], "metadata": ...}``,
  ``occ_gt_path`` relative to the data root and **including** ``labels.npz``;
- BEVDet / FlashOcc: ``occ_path`` is a **folder**, the loader appends ``labels.npz``;
- OccWorld family: ``infos`` is a dict scene -> time-ordered list (or, as in the nuScenes-mini
  fixture, a flat list), ``occ_path`` may use a Windows backslash after ``data/nuscenes``;
- OpenOcc v2: no ``scene_token``; the scene is the path component after ``openocc_v2/``;
- mmdet3d v1.1 (``data_list``, ``ego2global`` as a 4x4 matrix, timestamp in seconds);
- SparseOcc / plain mmdet3d infos with no label path at all: as SparseOcc does, each token's labels
  are found in the GT tree ``<root>/{gts,occ3d,openocc_v2}/<scene>/<token>/labels.npz``.

A data root without an info file is indexed from Occ3D's own ``annotations.json`` (real poses and
timestamps, PROTOCOLS §2.1) when it has one, else by scanning ``gts/<scene>/<token>/labels.npz``.

Records are sorted by (scene, timestamp), as the devkit sorts its infos by timestamp before
pairing results with them (PROTOCOLS §2.2).
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath

import numpy as np

from occ4d.core.errors import DataError
from occ4d.core.frame import Frame
from occ4d.core.pose import check_pose, make_pose
from occ4d.io.annotations import ANNOTATIONS_NAME, annotation_infos, load_annotations, split_scenes
from occ4d.io.formats import FORMATS, read_frame
from occ4d.io.infos import load_pkl

log = logging.getLogger(__name__)

# Nominal keyframe spacing (2 Hz) used only when a folder scan has no timestamps at all.
SCAN_STEP_US = 500_000
# Folder names that hold ``<scene>/<token>/labels.npz`` (PROTOCOLS §2.1, §2.2).
_LABEL_ROOTS = ("gts", "occ3d", "openocc_v2")
# Info keys turned into record fields; everything else goes to ``extras``.
_CONSUMED = {
    "token", "timestamp", "occ_gt_path", "occ_path", "scene_name",
    "ego2global_translation", "ego2global_rotation", "lidar2ego_translation", "lidar2ego_rotation",
    "ego2global", "lidar2ego",
}


@dataclass(frozen=True, eq=False)
class FrameRecord:
    """One keyframe as listed by an info file or a folder scan (compared by identity: it holds arrays).

    ``path`` is the absolute path of the labels file; ``ego2global`` and ``lidar2ego`` are 4x4
    float64; ``timestamp`` is in microseconds. ``extras`` keeps every other info key (``cams``,
    ``gt_ego_fut_trajs``, ``behaviour``, ``prev``/``next``, ``split`` ...).
    """

    token: str
    scene: str
    timestamp: int
    path: Path
    ego2global: np.ndarray
    lidar2ego: np.ndarray
    fmt: str = "occ3d"
    extras: Mapping = field(default_factory=dict)


@dataclass
class IndexScan:
    """The result of :func:`scan_index`: the records and a message per skipped entry."""

    records: list[FrameRecord]
    skipped: list[str] = field(default_factory=list)
    source: str = ""


def load_index(source: str | Path, split: str | None = None, skip_bad: bool = False,
               data_root: str | Path | None = None) -> list[FrameRecord]:
    """All keyframes of ``source`` (a data root folder or an info ``.pkl``), sorted by (scene, timestamp).

    ``split`` picks ``*_infos_temporal_{split}.pkl`` in a folder (all splits when None); it is
    ignored for an explicit ``.pkl``. ``data_root`` resolves relative label paths (default: the
    folder holding the info file). With ``skip_bad`` a malformed entry is logged and skipped
    instead of raising a DataError; :func:`scan_index` also returns what was skipped.
    """
    return scan_index(source, split, skip_bad, data_root).records


def scan_index(source: str | Path, split: str | None = None, skip_bad: bool = False,
               data_root: str | Path | None = None) -> IndexScan:
    """Like :func:`load_index`, but also returns the messages of skipped entries."""
    source = Path(source)
    if source.is_file():
        root = Path(data_root) if data_root is not None else source.parent
        scan = _from_pkl(source, root, skip_bad, split_tag=None)
    elif source.is_dir():
        root = Path(data_root) if data_root is not None else source
        pkls = find_info_files(source, split)
        if pkls:
            scan = IndexScan([], [], str(source))
            for pkl, tag in pkls:
                part = _from_pkl(pkl, root, skip_bad, split_tag=tag)
                scan.records.extend(part.records)
                scan.skipped.extend(part.skipped)
        else:
            scan = _from_folder(source, split, skip_bad)
    else:
        raise DataError(source, "no such file or folder")
    scan.records = _sorted_unique(scan.records, str(source), skip_bad, scan.skipped)
    if not scan.records:
        raise DataError(source, "no frames found" + (f" for split {split!r}" if split else ""))
    for msg in scan.skipped:
        log.warning("skipped: %s", msg)
    return scan


def find_info_files(root: Path, split: str | None = None) -> list[tuple[Path, str]]:
    """Info files in ``root`` named ``*_infos_temporal_{split}.pkl``, with the split each holds."""
    pattern = re.compile(r"^(.+)_infos_temporal_([A-Za-z0-9]+)\.pkl$")
    found = []
    for p in sorted(root.glob("*_infos_temporal_*.pkl")):
        m = pattern.match(p.name)
        if m and (split is None or m.group(2) == split):
            found.append((p, m.group(2)))
    if split is not None and not found and any(root.glob("*_infos_temporal_*.pkl")):
        names = sorted(p.name for p in root.glob("*_infos_temporal_*.pkl"))
        raise DataError(root, f"no info file for split {split!r}; found {names}")
    return found


def group_by_scene(records: Iterable[FrameRecord]) -> dict[str, list[FrameRecord]]:
    """Records per scene, each list in time order; scenes in sorted order."""
    groups: dict[str, list[FrameRecord]] = {}
    for r in records:
        groups.setdefault(r.scene, []).append(r)
    return {s: sorted(groups[s], key=lambda r: r.timestamp) for s in sorted(groups)}


def load_frame(record: FrameRecord) -> Frame:
    """Read a record's labels file with its format's reader; pose, timestamp, scene and token filled in.

    The frame stays in its format's own grid and vocabulary (a SurroundOcc record gives a
    LiDAR-frame SurroundOcc grid); see ``occ4d.io.resample`` to move it onto the Occ3D grid.
    """
    frame = read_frame(record.path, record.fmt)  # the reader validates labels, masks and flow
    frame.ego2global = check_pose(record.ego2global, record.path, "ego2global")
    frame.timestamp = int(record.timestamp)
    frame.scene = record.scene
    frame.token = record.token
    return frame


# --------------------------------------------------------------------------------------------
# info files


def _entries(obj, pkl: Path) -> list[tuple[str | None, dict]]:
    """(scene key or None, info dict) pairs of any supported info layout."""
    if isinstance(obj, Mapping):
        if "infos" in obj:
            infos = obj["infos"]
        elif "data_list" in obj:
            infos = obj["data_list"]
        else:
            keys = sorted(map(str, obj))
            raise DataError(pkl, f"info file has neither 'infos' nor 'data_list' (keys {keys})")
    else:
        infos = obj
    if isinstance(infos, Mapping):  # OccWorld: scene -> ordered list
        out = []
        for scene, lst in infos.items():
            if not isinstance(lst, (list, tuple)):
                raise DataError(pkl, f"infos[{scene!r}] must be a list of frame dicts")
            out.extend((str(scene), x) for x in lst)
        return out
    if not isinstance(infos, (list, tuple)):
        raise DataError(pkl, f"infos must be a list or a dict of lists, got {type(infos).__name__}")
    return [(None, x) for x in infos]


def _from_pkl(pkl: Path, root: Path, skip_bad: bool, split_tag: str | None) -> IndexScan:
    return _from_entries(_entries(load_pkl(pkl), pkl), root, pkl, skip_bad, split_tag)


def _from_entries(entries: list[tuple[str | None, dict]], root: Path, source: Path, skip_bad: bool,
                  split_tag: str | None) -> IndexScan:
    """Records of (scene key, info dict) pairs read from ``source``; bad ones raise or are skipped."""
    scan = IndexScan([], [], str(source))
    tree = None
    if entries and not any(isinstance(x, Mapping) and ("occ_gt_path" in x or "occ_path" in x)
                           for _, x in entries):
        tree = labels_by_token(root)  # no entry names its labels: the SparseOcc flavour
    for i, (scene_key, info) in enumerate(entries):
        try:
            rec = record_from_info(info, root, source, i, scene_key, tree)
        except DataError as e:
            if not skip_bad:
                raise
            scan.skipped.append(str(e))
            continue
        if split_tag is not None:
            rec.extras["split"] = split_tag
        scan.records.append(rec)
    return scan


def _pose(info: Mapping, name: str, pkl: Path, where: str, required: bool) -> np.ndarray:
    t_key, r_key = f"{name}_translation", f"{name}_rotation"
    try:
        if name in info:
            pose = np.asarray(info[name], dtype=np.float64)
        elif t_key in info and r_key in info:
            pose = make_pose(info[t_key], info[r_key])
        elif required:
            raise DataError(pkl, f"{where}: missing key {t_key!r}/{r_key!r} (or a 4x4 {name!r})")
        else:
            return np.eye(4)
    except (ValueError, TypeError) as e:
        if isinstance(e, DataError):
            raise
        raise DataError(pkl, f"{where}: bad {name} pose ({e})") from e
    return check_pose(pose, pkl, f"{where}: {name}")


def _split_path(text: str) -> list[str]:
    """Path components of a stored path, accepting both '/' and '\\' separators."""
    parts = [p for p in PureWindowsPath(text.replace("/", "\\")).parts if p not in (".", "")]
    if parts and (parts[0].endswith("\\") or parts[0].endswith(":")):  # drive or root
        parts = parts[1:]
    return parts


def resolve_path(stored: str, root: Path) -> Path:
    """Absolute path of a label path stored in an info file.

    An existing absolute path is kept. Otherwise the path is tried relative to ``root`` with
    leading components dropped one at a time (``./data/nuscenes/gts/s/t`` under a root that
    holds ``gts/``); if nothing exists, the suffix starting at ``gts``/``occ3d``/``openocc_v2``
    is used, else the whole relative path.
    """
    if Path(stored).is_absolute() and Path(stored).exists():
        return Path(stored)
    parts = _split_path(stored)
    for i in range(len(parts)):
        cand = root.joinpath(*parts[i:])
        if cand.exists():
            return cand.resolve()
    for i, p in enumerate(parts):
        if p in _LABEL_ROOTS:
            return root.resolve().joinpath(*parts[i:])
    return root.resolve().joinpath(*parts)


def _scene_from_parts(parts: list[str], token: str) -> str | None:
    if parts and parts[-1].endswith(".npz"):
        parts = parts[:-1]
    for i, p in enumerate(parts[:-1]):
        if p == "openocc_v2":  # OpenOcc v2: the scene follows openocc_v2/ (PROTOCOLS §2.2)
            return parts[i + 1]
    if len(parts) >= 2 and parts[-1] == token and parts[-2] not in _LABEL_ROOTS:
        return parts[-2]
    return None


def labels_by_token(root: Path) -> dict[str, Path]:
    """Token -> labels file of every ``<label root>/<scene>/<token>/labels.npz`` under ``root``, for
    infos that name no label path (PROTOCOLS §2.2, SparseOcc). Label roots are searched in the
    order gts/, occ3d/, openocc_v2/; the first file found for a token wins."""
    found: dict[str, Path] = {}
    for name in _LABEL_ROOTS:
        for f in sorted((root / name).glob("*/*/labels.npz")):
            found.setdefault(f.parent.name, f.resolve())
    return found


def record_from_info(info: Mapping, root: Path, pkl: Path | str = "<info>", index: int = 0,
                     scene_key: str | None = None,
                     labels: Mapping[str, Path] | None = None) -> FrameRecord:
    """One FrameRecord from one info dict; a missing key or a bad pose is a DataError naming the file.

    ``labels`` (token -> labels file, :func:`labels_by_token`) locates the labels of an info that
    names no label path."""
    pkl = Path(pkl)
    if not isinstance(info, Mapping):
        raise DataError(pkl, f"info {index} is a {type(info).__name__}, expected a dict")
    token = info.get("token")
    where = f"info {index}" + (f" (token {token})" if token else "")
    if not token:
        raise DataError(pkl, f"{where}: missing key 'token'")
    if "timestamp" not in info:
        raise DataError(pkl, f"{where}: missing key 'timestamp'")
    ts = info["timestamp"]
    try:
        ts_f = float(ts)
    except (TypeError, ValueError) as e:
        raise DataError(pkl, f"{where}: timestamp {ts!r} is not a number") from e
    if not np.isfinite(ts_f):
        raise DataError(pkl, f"{where}: timestamp is NaN or infinite")
    # nuScenes stores µs integers; mmdet3d v1.1 stores float seconds.
    timestamp = int(ts) if isinstance(ts, (int, np.integer)) or ts_f > 1e11 else int(round(ts_f * 1e6))

    if "occ_gt_path" in info:  # devkit: includes labels.npz
        stored, folder = str(info["occ_gt_path"]), False
    elif "occ_path" in info:  # BEVDet / OccWorld / OpenOcc: usually a folder
        stored, folder = str(info["occ_path"]), True
    elif labels is not None and str(token) in labels:  # SparseOcc: found in the GT tree by token
        stored, folder = str(labels[str(token)]), False
    else:
        tree = (f"; no <scene>/{token}/labels.npz under {'/, '.join(_LABEL_ROOTS)}/ of {root} either"
                if labels is not None else "")
        raise DataError(pkl, f"{where}: missing key 'occ_gt_path' or 'occ_path' (no occupancy label path)"
                             + tree)
    parts = _split_path(stored)
    path = resolve_path(stored, root)
    if folder and not stored.lower().endswith(".npz"):
        path = path / "labels.npz"
    fmt = "openocc" if "openocc_v2" in parts else str(info.get("occ_format", "occ3d"))
    if fmt not in FORMATS:
        raise DataError(pkl, f"{where}: unknown occupancy format {fmt!r}; expected one of {sorted(FORMATS)}")

    scene = (info.get("scene_name") or scene_key or _scene_from_parts(parts, str(token))
             or info.get("scene_token"))
    if not scene:
        raise DataError(pkl, f"{where}: cannot tell the scene "
                             "(no scene_name, scene_token or <scene>/<token> path)")
    ego2global = _pose(info, "ego2global", pkl, where, required=True)
    lidar2ego = _pose(info, "lidar2ego", pkl, where, required=False)
    extras = {k: v for k, v in info.items() if k not in _CONSUMED}
    return FrameRecord(str(token), str(scene), timestamp, path, ego2global, lidar2ego, fmt, extras)


# --------------------------------------------------------------------------------------------
# folder scan


def _from_folder(root: Path, split: str | None, skip_bad: bool) -> IndexScan:
    """Index a root without an info file: from ``annotations.json`` when it lists the frames
    (``scene_infos``), else by scanning ``gts/<scene>/<token>/labels.npz`` (identity poses)."""
    ann = root / ANNOTATIONS_NAME
    data = load_annotations(ann) if ann.is_file() else {}
    if "scene_infos" in data:
        return _from_entries(annotation_infos(data, ann, split), root, ann, skip_bad, split_tag=None)
    base = root / "gts" if (root / "gts").is_dir() else root
    files = sorted(base.glob("*/*/labels.npz"))
    if files:
        pairs = [(f.parent.parent.name, f) for f in files]
    else:
        pairs = [(root.name, f) for f in sorted(base.glob("*/labels.npz"))]
    if not pairs:
        raise DataError(root, "no info file (*_infos_temporal_*.pkl) "
                              "and no gts/<scene>/<token>/labels.npz found")
    scenes = _split_scenes(root, split, data)
    if scenes is not None:
        pairs = [(s, f) for s, f in pairs if s in scenes]
    log.warning(
        "%s: no info file; scanned %d labels.npz files. Poses are identity, frames are ordered by "
        "token and timestamps are nominal 2 Hz steps, so trajectories are meaningless.", root, len(pairs),
    )
    records: list[FrameRecord] = []
    position: dict[str, int] = {}
    for scene, f in pairs:
        i = position.get(scene, 0)
        position[scene] = i + 1
        extras = {"scanned": True} | ({"split": split} if split else {})
        records.append(FrameRecord(f.parent.name, scene, i * SCAN_STEP_US, f.resolve(), np.eye(4), np.eye(4),
                                   "occ3d", extras))
    return IndexScan(records, [], str(root))


def _split_scenes(root: Path, split: str | None, annotations: dict) -> set[str] | None:
    """Scene names of ``split`` from the Occ3D ``annotations.json`` (PROTOCOLS §2.1), if there is one."""
    if split is None:
        return None
    if not annotations:
        log.warning("%s: no info file and no annotations.json, so split %r cannot be told apart; "
                    "using every frame", root, split)
        return None
    return split_scenes(annotations, split, root / ANNOTATIONS_NAME)


def _sorted_unique(records: list[FrameRecord], source: str, skip_bad: bool,
                   skipped: list[str]) -> list[FrameRecord]:
    """Sort by (scene, timestamp); a repeated token or timestamp within a scene is bad input."""
    out: list[FrameRecord] = []
    tokens: set[str] = set()
    last: tuple[str, int] | None = None
    for r in sorted(records, key=lambda r: (r.scene, r.timestamp, r.token)):
        problem = None
        if r.token in tokens:
            problem = f"token {r.token} appears twice"
        elif last is not None and last == (r.scene, r.timestamp):
            problem = f"scene {r.scene}: two frames share timestamp {r.timestamp} (token {r.token})"
        if problem:
            if not skip_bad:
                raise DataError(source, problem)
            skipped.append(f"{source}: {problem}")
            continue
        tokens.add(r.token)
        last = (r.scene, r.timestamp)
        out.append(r)
    return out


def openocc_twins(records: list[FrameRecord]) -> list[FrameRecord] | None:
    """The records moved onto the OpenOcc v2 labels of the same keyframes: ``<root>/gts/<scene>/
    <token>/labels.npz`` (or ``occ3d/``) becomes ``<root>/openocc_v2/<scene>/<token>/labels.npz``,
    poses and timestamps kept. None unless every record is Occ3D in that layout and every twin
    exists, so a partial tree is never mixed with another format."""
    twins = []
    for r in records:
        parts = Path(r.path).parts
        if r.fmt != "occ3d" or len(parts) < 4 or parts[-4] not in ("gts", "occ3d"):
            return None
        path = Path(r.path).parents[3] / "openocc_v2" / parts[-3] / parts[-2] / parts[-1]
        if not path.is_file():
            return None
        twins.append(dataclasses.replace(r, path=path, fmt="openocc"))
    return twins
