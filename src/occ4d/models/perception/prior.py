"""A per-voxel class prior from a training split: what a camera model refines.

On a fixed ego-frame grid most voxels hold the same class in most frames (free sky, the road
under the ego car, the ground plane at a fixed height). The per-voxel most-frequent class of the
training split is the baseline a camera model must beat, and it already gets the ground height
exactly, which RayIoU (PROTOCOLS §3.7) is sensitive to: a ray's depth on the road is decided by
which z-layer holds the road. So the model predicts a residual over the prior's logits,

    logits[k, x, y, z] = net[k, x, y, z] + log p(k | x, y, z),

with ``p`` the Laplace-smoothed per-voxel class frequencies. With the net's last layer
initialised to zero an untrained model predicts exactly the baseline, and training spends its
capacity on what the cameras show that the prior does not know.

:func:`class_counts` counts labels over label grids; :func:`log_prior` smooths and normalises
the counts; the argmax of either is the most-frequent-class grid (ties to the lowest class id,
as ``argmax`` resolves them in numpy and torch).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch


def class_counts(grids: Iterable[np.ndarray], num_classes: int) -> np.ndarray:
    """(K, X, Y, Z) int32: how often each voxel holds each class over ``grids`` ((X, Y, Z) ints).

    Raises ValueError when there are no grids, when shapes differ, or a label is outside
    [0, num_classes)."""
    counts: np.ndarray | None = None
    for grid in grids:
        g = np.asarray(grid)
        if counts is None:
            counts = np.zeros((num_classes, *g.shape), np.int32)
        if g.shape != counts.shape[1:]:
            raise ValueError(f"label grid of shape {g.shape}, expected {counts.shape[1:]}")
        if g.size and (g.min() < 0 or g.max() >= num_classes):
            raise ValueError(f"labels outside [0, {num_classes}): {g.min()}..{g.max()}")
        for k in range(num_classes):  # K boolean passes beat one bincount over K x V bins
            counts[k] += g == k
    if counts is None:
        raise ValueError("no label grids to count")
    return counts


def log_prior(counts: np.ndarray, smoothing: float = 1.0) -> torch.Tensor:
    """(K, X, Y, Z) float32 log p(k | voxel) = log((n_k + a) / (n + K a)) with ``a = smoothing`` > 0."""
    if smoothing <= 0:
        raise ValueError(f"smoothing must be positive, got {smoothing}")
    c = torch.from_numpy(np.asarray(counts, dtype=np.float64)) + smoothing
    return (c.log() - c.sum(dim=0, keepdim=True).log()).float()


def most_frequent(counts: np.ndarray) -> np.ndarray:
    """(X, Y, Z) uint8: the per-voxel most frequent class (lowest id on ties)."""
    return np.asarray(counts).argmax(0).astype(np.uint8)
