"""Occ3D-nuScenes ``labels.npz`` files: ``semantics``, ``mask_lidar``, ``mask_camera``.

All three are uint8 (200, 200, 16) indexed [x, y, z]; semantics hold 0..17 with 17 = free and
the masks {0, 1} (PROTOCOLS §2.1). Reading always validates; writing is atomic.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from occ4d.core.errors import DataError
from occ4d.core.frame import Frame
from occ4d.core.grid import OCC3D
from occ4d.core.vocab import OCC3D_VOCAB
from occ4d.io.atomic import save_npz

LABEL_KEYS = ("semantics", "mask_lidar", "mask_camera")


def read_npz(path: str | Path, keys: tuple[str, ...] = (),
             optional: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Read the named arrays of an ``.npz``; a missing file or key, or a truncated file, is a DataError."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file not found")
    try:
        with np.load(path, allow_pickle=False) as z:
            names = set(z.files)
            missing = [k for k in keys if k not in names]
            if missing:
                raise DataError(path, f"missing key(s) {missing}; the file has {sorted(names)}")
            return {k: z[k] for k in (*keys, *optional) if k in names}
    except DataError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as e:
        raise DataError(path, f"unreadable or truncated npz ({type(e).__name__}: {e})") from e


def load_labels(path: str | Path, scene: str = "", token: str = "", ego2global=None,
                timestamp: int = 0) -> Frame:
    """Load and validate one Occ3D ``labels.npz`` as a Frame (masks as bool)."""
    path = Path(path)
    arrays = read_npz(path, ("semantics",), ("mask_lidar", "mask_camera"))
    frame = Frame(
        semantics=arrays["semantics"],
        vocab=OCC3D_VOCAB,
        grid=OCC3D,
        mask_camera=arrays.get("mask_camera"),
        mask_lidar=arrays.get("mask_lidar"),
        ego2global=np.eye(4) if ego2global is None else ego2global,
        timestamp=timestamp,
        scene=scene,
        token=token or path.parent.name,
        source=str(path),
    )
    return frame.validate()


def save_labels(path: str | Path, frame: Frame) -> None:
    """Write a Frame in the Occ3D layout (uint8 arrays; absent masks are written as all-ones)."""
    frame.validate()
    ones = np.ones(frame.grid.shape, np.uint8)
    save_npz(
        path,
        True,
        semantics=frame.semantics.astype(np.uint8),
        mask_lidar=ones if frame.mask_lidar is None else frame.mask_lidar.astype(np.uint8),
        mask_camera=ones if frame.mask_camera is None else frame.mask_camera.astype(np.uint8),
    )
