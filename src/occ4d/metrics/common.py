"""Input checks and number conventions shared by every metric.

Metrics take torch tensors or NumPy arrays on any device. Label grids are validated here:
a shape mismatch, a non-integer dtype or a class id outside the vocabulary is a DataError that
names the file or token (PROTOCOLS §5: the devkit itself never range-checks predictions).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch

from occ4d.core.errors import DataError
from occ4d.core.vocab import IGNORE

_INT_DTYPES = {torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64}


def to_tensor(x, device: torch.device | str | None = None) -> torch.Tensor:
    """A torch view of ``x`` (NumPy arrays are wrapped without a copy where possible)."""
    if isinstance(x, torch.Tensor):
        t = x
    else:
        a = np.asarray(x)
        if a.dtype == np.uint16 or a.dtype == np.uint32 or a.dtype == np.uint64:
            a = a.astype(np.int64)
        t = torch.from_numpy(np.ascontiguousarray(a))
    return t if device is None else t.to(device)


def check_label_tensor(
    x,
    num_classes: int,
    shape: tuple[int, ...] | None = None,
    source: str | None = None,
    name: str = "prediction",
    allow_ignore: bool = False,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Return ``x`` as an integer tensor after checking shape, dtype and the class-id range.

    ``shape`` is the expected trailing shape (a grid); leading batch axes are allowed.
    ``allow_ignore`` lets :data:`IGNORE` (255) through, as ground truth may carry it.
    """
    t = to_tensor(x, device)
    if t.dtype == torch.bool or t.dtype not in _INT_DTYPES:
        dtype = str(t.dtype).removeprefix("torch.")
        raise DataError(source, f"{name} must be an integer label array, got dtype {dtype}")
    if shape is not None and tuple(t.shape[t.dim() - len(shape):]) != tuple(shape):
        want = ", ".join(map(str, shape))
        raise DataError(source, f"{name} must have shape (..., {want}), got {tuple(t.shape)}")
    if t.numel():
        # NumPy reductions on CPU tensors: far cheaper than torch's on small shared machines.
        a = t.numpy() if t.device.type == "cpu" else None
        lo, hi = (int(a.min()), int(a.max())) if a is not None else (int(t.min()), int(t.max()))
        top = num_classes - 1
        if lo < 0 or hi > top:
            bad = (t < 0) | (t > top)
            if allow_ignore:
                bad &= t != IGNORE
            if bool(bad.any()):
                first = int(t[bad].flatten()[0])
                raise DataError(
                    source, f"{name} has class id {first} outside 0..{top} ({int(bad.sum())} voxels)"
                )
    return t


def check_same_shape(pred: torch.Tensor, gt: torch.Tensor, source: str | None = None) -> None:
    if tuple(pred.shape) != tuple(gt.shape):
        raise DataError(
            source, f"prediction shape {tuple(pred.shape)} does not match ground truth {tuple(gt.shape)}"
        )


def check_mask_tensor(mask, shape, source: str | None = None, name: str = "mask",
                      device: torch.device | str | None = None) -> torch.Tensor:
    """A visibility mask as a bool tensor. Stored masks are uint8: indexing with them would do
    integer (fancy) indexing, so they are cast to bool first (PROTOCOLS §5)."""
    m = to_tensor(mask, device)
    if tuple(m.shape) != tuple(shape):
        raise DataError(source, f"{name} must have shape {tuple(shape)}, got {tuple(m.shape)}")
    if m.dtype != torch.bool:
        a = m.numpy() if m.device.type == "cpu" else m
        if m.dtype not in _INT_DTYPES or (m.numel() and (int(a.min()) < 0 or int(a.max()) > 1)):
            raise DataError(source, f"{name} must hold only 0 and 1 (dtype {m.dtype})")
        m = m.bool()
    return m


def devkit_round(x: float, decimals: int = 2) -> float:
    """Round as the Occ3D devkit does: NumPy float64 rounding (scale, round half to even,
    unscale), so 39.915 -> 39.92 where Python's ``round`` gives 39.91 (PROTOCOLS §3.1)."""
    return float(np.round(np.float64(x), decimals))


def nanmean(values) -> float:
    """NumPy's NaN-mean of float64 values, NaN (without a warning) when all are NaN."""
    a = np.asarray(values, dtype=np.float64)
    if a.size == 0 or np.all(np.isnan(a)):
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(np.nanmean(a))


def safe_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Elementwise float64 num / den with 0/0 -> NaN and no warnings (the devkit's errstate)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(num, dtype=np.float64) / np.asarray(den, dtype=np.float64)


def as_float_list(a: np.ndarray) -> list[float]:
    """A plain list of Python floats (NaN kept) for JSON-friendly result dicts."""
    return [float(v) for v in np.asarray(a, dtype=np.float64).ravel()]
