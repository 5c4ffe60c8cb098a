"""Prediction files of the official submission layouts: finding them in a folder and reading one.

A prediction folder holds either ``<pred>/<token>.npz`` with key ``arr_0`` (CVPR 2023 challenge)
or ``pred`` (SparseOcc), or an Occ3D-style tree ``<pred>/[gts/]<scene>/<token>/labels.npz``
(key ``semantics``). Labels are uint8 ``(X, Y, Z)`` on the ground truth's grid (a flattened
array of the same size is reshaped, as the devkit does); the flow evaluation also needs a
``flow`` array ``(X, Y, Z, 2)`` float32 in m/s, and also finds it in an OpenOcc v2 tree
``<pred>/openocc_v2/<scene>/<token>/labels.npz`` (PROTOCOLS §2.4), before a ``gts/`` one.
Here because ``occ4d eval`` and the renders (:mod:`occ4d.vis.inputs`) both read them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from occ4d.core.errors import DataError
from occ4d.io.occ3d import read_npz

# The keys a prediction's labels may be stored under, in the order they are looked for.
PRED_KEYS = ("pred", "arr_0", "semantics")


def index_predictions(pred_dir: Path, flow: bool = False) -> dict[str, Path]:
    """token -> prediction file, over every supported layout in ``pred_dir``.

    With ``flow`` (the flow evaluation) an ``openocc_v2/`` tree is searched first: a data root
    holding both (a nuScenes root, an ``occ4d synth`` world) keeps its flow only there, and a
    folder ``occ4d eval perception`` saved holds Occ3D ``<token>.npz`` beside OpenOcc v2 flow."""
    if not pred_dir.is_dir():
        raise DataError(pred_dir, "prediction folder not found")
    found: dict[str, Path] = {}
    if flow:
        for p in sorted(pred_dir.glob("openocc_v2/*/*/labels.npz")):
            found.setdefault(p.parent.name, p)
    for p in sorted(pred_dir.glob("*.npz")):
        found.setdefault(p.stem, p)
    for pattern in ("*/*/labels.npz", "gts/*/*/labels.npz"):
        for p in sorted(pred_dir.glob(pattern)):
            found.setdefault(p.parent.name, p)
    return found


def read_prediction(path: Path, shape: tuple[int, ...], with_flow: bool = False):
    """(labels, flow or None) from one prediction file; a missing key is a DataError naming it."""
    arrays = read_npz(path, (), (*PRED_KEYS, "flow"))
    key = next((k for k in PRED_KEYS if k in arrays), None)
    if key is None:
        raise DataError(path, f"no prediction array: expected one of the keys {list(PRED_KEYS)}")
    labels = arrays[key]
    if tuple(labels.shape) != tuple(shape):
        if labels.size == int(np.prod(shape)) and labels.ndim == 1:
            labels = labels.reshape(shape)  # flattened submissions (the devkit reshapes them too)
        else:
            raise DataError(path, f"{key} must have shape {tuple(shape)}, got {tuple(labels.shape)}")
    flow = None
    if with_flow:
        if "flow" not in arrays:
            raise DataError(path, "the flow evaluation needs a 'flow' array (X, Y, Z, 2) in every prediction")
        flow = arrays["flow"]
    return labels, flow
