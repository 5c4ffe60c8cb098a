"""RayIoU (SparseOcc's protocol, PROTOCOLS §3.7): ray casting from up to 8 origins, then
class-and-depth matching pooled over the dataset.

Per sample, the same 14,040 rays from the same origins are cast through the ground-truth grid and
through the predicted grid (``occ4d.metrics.raycast``). Each ray takes the label of the voxel it
hit in *that* grid and the distance to that voxel's far face. Rays whose ground-truth label is
free are dropped (so a prediction is never penalised along them, and no camera mask is used);
on the others, for every class c and threshold (1, 2, 4 m)::

    gt_cnt[c]   += #(gt = c)
    pred_cnt[c] += #(pred = c)            (rays predicted free included)
    tp[j][c]    += #(gt = c and pred = c and |depth_pred - depth_gt| < thr_j)   (strict <)

IoU[j][c] = tp / (gt_cnt + pred_cnt - tp) for every class but free; RayIoU is the NaN-mean of
all of them, RayIoU@thr the NaN-mean of one row. Results are fractions (papers quote x100).
Counters are int64 on the inputs' device and summed across processes in ``compute()``.
"""

from __future__ import annotations

import numpy as np
import torch

from occ4d.core.errors import DataError
from occ4d.core.grid import OCC3D, GridSpec
from occ4d.core.vocab import OCC3D_VOCAB, Vocabulary
from occ4d.metrics.common import as_float_list, check_label_tensor, check_same_shape, nanmean, safe_ratio
from occ4d.metrics.origins import ray_directions
from occ4d.metrics.raycast import RayHits, cast, cast_numba, resolve_backend, voxel_space
from occ4d.metrics.reduce import all_reduce_sum

THRESHOLDS = (1.0, 2.0, 4.0)  # metres
_BINS = 256  # labels are uint8-valued; values above the vocabulary (e.g. 255) fall outside [:C]


def check_origins(origins, source: str | None = None) -> np.ndarray:
    """Origins as float64 (T, 3), 1 <= T, finite."""
    o = origins.detach().cpu().numpy() if isinstance(origins, torch.Tensor) else np.asarray(origins)
    o = o.astype(np.float64).reshape(-1, 3) if o.size % 3 == 0 else o
    if o.ndim != 2 or o.shape[1] != 3 or len(o) == 0:
        raise DataError(source, f"ray origins must have shape (T, 3) with T >= 1, got {np.shape(origins)}")
    if not np.all(np.isfinite(o)):
        raise DataError(source, "ray origins contain NaN or infinite values")
    return o


class RayIoU:
    """Dataset-level RayIoU accumulator.

    Args:
        vocab: Occ3D (free = 17, 17 scored classes) or OpenOcc v2 (free = 16, 16 classes).
        grid: the voxel grid (isotropic; Occ3D's 0.4 m by default).
        thresholds: depth thresholds in metres.
        backend: "numba" (CPU), "torch" (the grid's device, CUDA or CPU) or "auto" (torch for
            CUDA tensors, numba otherwise). Both give identical rays.
    """

    protocol = "rayiou"

    def __init__(self, vocab: Vocabulary = OCC3D_VOCAB, grid: GridSpec = OCC3D,
                 thresholds: tuple[float, ...] = THRESHOLDS, backend: str = "auto"):
        if backend not in ("auto", "numba", "torch"):
            raise ValueError(f"backend must be 'auto', 'numba' or 'torch', got {backend!r}")
        if vocab.free != vocab.num_classes - 1:
            raise ValueError(f"RayIoU needs free as the last class; {vocab.name} has free = {vocab.free}")
        self.vocab, self.grid, self.thresholds, self.backend = vocab, grid, tuple(thresholds), backend
        self.reset()

    def reset(self) -> None:
        self.gt_cnt: torch.Tensor | None = None
        self.pred_cnt: torch.Tensor | None = None
        self.tp: torch.Tensor | None = None
        self.samples = 0

    # -- casting ---------------------------------------------------------------------------------
    def cast_grid(self, labels: torch.Tensor, origins: np.ndarray,
                  space: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[torch.Tensor, RayHits]:
        """Cast all rays through one label grid: (ray labels (N,) int64, hits). Labels above
        free (e.g. 255) count as occupied (§3.7c step 2). ``space`` is ``voxel_space(origins)``."""
        space = space if space is not None else voxel_space(origins, ray_directions(), self.grid)
        if labels.device.type == "cpu" and resolve_backend(self.backend, labels) == "numba":
            # CPU: stay in NumPy (torch's small CPU ops are slow on shared cores).
            lab = labels.contiguous().numpy()
            hits = cast_numba(lab != self.vocab.free, origins, ray_directions(), self.grid, space)
            v = hits.voxel.numpy()
            _, sy, sz = lab.shape
            ray_labels = lab.reshape(-1)[(v[:, 0] * sy + v[:, 1]) * sz + v[:, 2]].astype(np.int64)
            return torch.from_numpy(ray_labels), hits
        hits = cast(labels != self.vocab.free, origins, ray_directions(), self.grid, self.backend, space)
        v = hits.voxel.to(labels.device)
        ray_labels = labels[v[:, 0], v[:, 1], v[:, 2]].to(torch.int64)
        return ray_labels, RayHits(hits.depth.to(labels.device), v)

    def _checked(self, pred, gt, origins, source):
        n = self.vocab.num_classes
        gt_t = check_label_tensor(gt, n, self.grid.shape, source, "ground truth", allow_ignore=True)
        pred_t = check_label_tensor(pred, n, self.grid.shape, source, "prediction", device=gt_t.device)
        check_same_shape(pred_t, gt_t, source)
        if gt_t.dim() != 3:
            raise DataError(source, f"RayIoU takes one grid per update, got shape {tuple(gt_t.shape)}")
        return pred_t, gt_t, check_origins(origins, source)

    def update(self, pred, gt, origins, source: str | None = None) -> None:
        """Add one sample: predicted and ground-truth label grids ``[x, y, z]`` and its ray
        origins (T, 3) in metres (``occ4d.metrics.origins.ray_origins``)."""
        pred_t, gt_t, o = self._checked(pred, gt, origins, source)
        space = voxel_space(o, ray_directions(), self.grid)
        gl, gh = self.cast_grid(gt_t, o, space)
        pl, ph = self.cast_grid(pred_t, o, space)
        self.score(pl, ph.depth, gl, gh.depth)

    # -- scoring ---------------------------------------------------------------------------------
    def score(self, pred_labels: torch.Tensor, pred_depth: torch.Tensor,
              gt_labels: torch.Tensor, gt_depth: torch.Tensor) -> torch.Tensor:
        """Add one sample's cast rays; returns the valid-ray mask (GT label not free)."""
        n = self.vocab.num_classes
        # CPU tensors are scored with NumPy (same integers; torch's small CPU ops are slow on
        # shared cores), others with torch on their device.
        xp_np = gt_labels.device.type == "cpu"
        gl_all, pl_all = (gt_labels.numpy(), pred_labels.numpy()) if xp_np else (gt_labels, pred_labels)
        gd_all, pd_all = (gt_depth.numpy(), pred_depth.numpy()) if xp_np else (gt_depth, pred_depth)
        valid = gl_all != self.vocab.free
        gl, pl = gl_all[valid], pl_all[valid]
        err = abs(pd_all[valid] - gd_all[valid])  # float32, as the reference
        same = gl == pl

        def count(x):
            if xp_np:
                return torch.from_numpy(np.bincount(x, minlength=_BINS)[:n].astype(np.int64))
            return torch.bincount(x, minlength=_BINS)[:n]

        gt_cnt, pred_cnt = count(gl), count(pl)
        tp = torch.stack([count(gl[same & (err < thr)]) for thr in self.thresholds])
        if self.gt_cnt is None:
            self.gt_cnt, self.pred_cnt, self.tp = gt_cnt, pred_cnt, tp
        else:
            self.gt_cnt += gt_cnt
            self.pred_cnt += pred_cnt
            self.tp += tp
        self.samples += 1
        return torch.from_numpy(valid) if xp_np else valid

    def _reduced(self) -> dict[str, np.ndarray]:
        n, k = self.vocab.num_classes, len(self.thresholds)
        dev = self.gt_cnt.device if self.gt_cnt is not None else torch.device("cpu")
        zero = torch.zeros(n, dtype=torch.int64, device=dev)
        counts = torch.tensor([self.samples], dtype=torch.int64, device=dev)
        parts = {
            "gt_cnt": self.gt_cnt if self.gt_cnt is not None else zero,
            "pred_cnt": self.pred_cnt if self.pred_cnt is not None else zero,
            "tp": self.tp if self.tp is not None else torch.zeros(k, n, dtype=torch.int64, device=dev),
            "counts": counts,
        }
        return {name: all_reduce_sum(t).cpu().numpy() for name, t in parts.items()}

    def _iou(self, r: dict[str, np.ndarray]) -> np.ndarray:
        """IoU (K thresholds, C-1 classes) in float64; the free class is dropped."""
        gt, pred, tp = (r[k].astype(np.float64) for k in ("gt_cnt", "pred_cnt", "tp"))
        return safe_ratio(tp, gt[None] + pred[None] - tp)[:, : self.vocab.num_classes - 1]

    def compute(self) -> dict:
        r = self._reduced()
        iou = self._iou(r)
        names = self.vocab.names[: self.vocab.num_classes - 1]
        out = {
            "protocol": self.protocol,
            "description": "SparseOcc RayIoU: fractions; 14,040 rays from up to 8 origins per sample, "
                           "rays with free ground truth dropped, thresholds "
                           + "/".join(f"{t:g}" for t in self.thresholds) + " m, dataset pooling",
            "samples": int(r["counts"][0]),
            "RayIoU": nanmean(iou),
        }
        for j, thr in enumerate(self.thresholds):
            out[f"RayIoU@{thr:g}"] = nanmean(iou[j])
        out["per_class"] = {
            name: {f"@{thr:g}": float(iou[j, c]) for j, thr in enumerate(self.thresholds)}
            for c, name in enumerate(names)
        }
        out["gt_rays"] = {name: int(v) for name, v in zip(names, r["gt_cnt"][: len(names)], strict=True)}
        out["iou_matrix"] = [as_float_list(row) for row in iou]
        return out
