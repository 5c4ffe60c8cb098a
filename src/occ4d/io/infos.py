"""Info ``.pkl`` files, read through a restricted unpickler.

Info files come from other people's converters; full pickle would execute whatever a crafted
file asks. Only plain containers, scalars and NumPy arrays are allowed; every other global a
pickle names is refused with a DataError, so nothing in the file can run code.
"""

from __future__ import annotations

import _compat_pickle
import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from occ4d.core.errors import DataError
from occ4d.core.pose import check_pose, matrix_to_quat
from occ4d.io.atomic import write_bytes

# (module, name) pairs a pickle may reference: NumPy's array and scalar reconstruction, and
# builtin containers. Nothing here can execute code on load.
_ALLOWED = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    # Protocol-2 pickles written by Python 3 encode bytes as _codecs.encode(text, "latin1"),
    # a pure string-to-bytes function.
    ("_codecs", "encode"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "complex"),
    ("builtins", "slice"),
    ("builtins", "range"),
    ("collections", "OrderedDict"),
    ("collections", "defaultdict"),
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, fh, source: str):
        super().__init__(fh, encoding="latin1")
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        # Protocol < 3 pickles name Python 2 modules (__builtin__.set); map them to Python 3's
        # names first, exactly as pickle itself would, then check the allow-list.
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise DataError(
            self._source,
            f"refused to unpickle {module}.{name}: info files may hold only plain containers, "
            "numbers, strings and NumPy arrays",
        )


def safe_loads(data: bytes, source: str = "<bytes>") -> Any:
    """Unpickle ``data`` allowing only plain containers and NumPy arrays."""
    try:
        return _RestrictedUnpickler(io.BytesIO(data), source).load()
    except DataError:
        raise
    except Exception as e:  # truncated or corrupt pickles raise many types
        raise DataError(source, f"unreadable or truncated pickle ({type(e).__name__}: {e})") from e


def load_pkl(path: str | Path) -> Any:
    """Load an info ``.pkl`` through the restricted unpickler."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file not found")
    return safe_loads(path.read_bytes(), str(path))


def save_pkl(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as a pickle atomically; it is re-read with the restricted unpickler first,
    so occ4d never writes an info file it would refuse to load."""
    data = pickle.dumps(obj, protocol=4)
    safe_loads(data, str(path))
    write_bytes(path, data)


# --------------------------------------------------------------------------------------------
# Devkit-converter info files (PROTOCOLS §2.2)
#
# ``{prefix}_infos_temporal_{split}.pkl`` = {"infos": [info, ...], "metadata": {"version": str}}.
# Every info dict carries these keys (the devkit converter's names):
#
#   token                 str, the sample token (unique)
#   prev, next            str, tokens of the neighbouring keyframes in the scene ("" at the ends)
#   scene_token           str, the scene's token
#   frame_idx             int, position of the keyframe in its scene (0, 1, ...)
#   timestamp             int, microseconds
#   lidar2ego_translation [x, y, z] metres;   lidar2ego_rotation  [w, x, y, z] quaternion
#   ego2global_translation [x, y, z] metres;  ego2global_rotation [w, x, y, z] quaternion
#   occ_gt_path           str, labels path relative to the data root, INCLUDING labels.npz
#                         (e.g. "gts/scene-0001/<token>/labels.npz")
#   can_bus               (18,) float64 (zeros when unknown)
#   sweeps                list (may be empty)
#   cams                  dict CAM_* -> {data_path, type, sample_data_token, sensor2ego_translation,
#                         sensor2ego_rotation, ego2global_translation, ego2global_rotation, timestamp,
#                         sensor2lidar_rotation (3, 3), sensor2lidar_translation (3,), cam_intrinsic (3, 3)}
#                         ({} when there are no cameras)
#   lidar_path            str ("" when there is no point cloud)
#
# Optional keys occ4d reads when present: ``scene_name`` (BEVDet's key; preferred over the path
# for the scene name), ``behaviour`` (the synthetic world's ego behaviour label), and anything
# else, which ends up in ``FrameRecord.extras``.

DEVKIT_INFO_KEYS = (
    "token", "prev", "next", "scene_token", "frame_idx", "timestamp",
    "lidar2ego_translation", "lidar2ego_rotation", "ego2global_translation", "ego2global_rotation",
    "occ_gt_path", "can_bus", "sweeps", "cams", "lidar_path",
)


def devkit_info(token: str, scene_token: str, frame_idx: int, timestamp: int, ego2global, occ_gt_path: str,
                *, prev: str = "", next: str = "", lidar2ego=None, cams: dict | None = None,
                can_bus=None, lidar_path: str = "", **extras: Any) -> dict:
    """One info dict with every devkit key, from 4x4 poses (quaternions stored as w, x, y, z lists)."""
    e2g = check_pose(ego2global, occ_gt_path, "ego2global")
    l2e = check_pose(np.eye(4) if lidar2ego is None else lidar2ego, occ_gt_path, "lidar2ego")
    info = {
        "token": str(token), "prev": str(prev), "next": str(next), "scene_token": str(scene_token),
        "frame_idx": int(frame_idx), "timestamp": int(timestamp),
        "lidar2ego_translation": l2e[:3, 3].tolist(),
        "lidar2ego_rotation": matrix_to_quat(l2e[:3, :3]).tolist(),
        "ego2global_translation": e2g[:3, 3].tolist(),
        "ego2global_rotation": matrix_to_quat(e2g[:3, :3]).tolist(),
        "occ_gt_path": str(occ_gt_path),
        "can_bus": np.zeros(18) if can_bus is None else np.asarray(can_bus, dtype=np.float64),
        "sweeps": [], "cams": dict(cams or {}), "lidar_path": str(lidar_path),
    }
    info.update(extras)
    return info


def save_devkit_infos(path: str | Path, infos: list[dict], version: str) -> None:
    """Write ``{"infos": infos, "metadata": {"version": version}}`` atomically, after checking that
    every info has the devkit keys (:data:`DEVKIT_INFO_KEYS`), tokens are unique and prev/next
    name tokens of the same file."""
    if not isinstance(infos, list):
        raise DataError(path, f"infos must be a list of dicts, got {type(infos).__name__}")
    tokens = set()
    for i, info in enumerate(infos):
        if not isinstance(info, dict):
            raise DataError(path, f"info {i} is a {type(info).__name__}, expected a dict")
        missing = [k for k in DEVKIT_INFO_KEYS if k not in info]
        if missing:
            raise DataError(path, f"info {i} (token {info.get('token')}) lacks devkit key(s) {missing}")
        if info["token"] in tokens:
            raise DataError(path, f"token {info['token']} appears twice")
        tokens.add(info["token"])
    for info in infos:
        for link in ("prev", "next"):
            if info[link] and info[link] not in tokens:
                raise DataError(path, f"info {info['token']}: {link} {info[link]!r} "
                                      "is not a token of this file")
    save_pkl(path, {"infos": infos, "metadata": {"version": str(version)}})
