"""Voxel semantic-occupancy metrics: Occ3D mIoU (official devkit), SurroundOcc and OpenOccupancy.

All three are one dataset-level confusion matrix (rows = ground truth, columns = prediction)
accumulated as int64 on the device of the inputs and summed across processes in ``compute()``.
The figures derived from it follow each protocol's float64 arithmetic exactly:

- Occ3D (PROTOCOLS §3.1, §3.3): IoU_c = diag / (row + col - diag), 0/0 = NaN; mIoU = NaN-mean over
  every class but free (``others`` included), x100, rounded half-to-even to 2 decimals as NumPy
  does. Geometry IoU (OccStudio/ALOcc) and mIoU_D (dynamic classes) come from the same matrix.
- SurroundOcc (§3.4): per-sample 17x3 tables averaged over samples; IoU of "occupied" and the plain
  mean of classes 1..16, as fractions.
- OpenOccupancy (§3.5): 17x17 SSC histogram and the 2x2 SC histogram; fractions rounded to 3.
"""

from __future__ import annotations

import numpy as np
import torch

from occ4d.core.errors import DataError
from occ4d.core.grid import OCC3D, SURROUNDOCC, GridSpec
from occ4d.core.vocab import OCC3D_DYNAMIC, OCC3D_VOCAB, SURROUNDOCC_VOCAB, Vocabulary
from occ4d.metrics.common import (
    check_label_tensor,
    check_mask_tensor,
    check_same_shape,
    devkit_round,
    nanmean,
    safe_ratio,
)
from occ4d.metrics.reduce import all_reduce_sum

OCC3D_MASKS = ("camera", "lidar", "none", "camera_lidar")


class ConfusionMatrix:
    """An n x n int64 confusion matrix; ground-truth values outside 0..n-1 (e.g. 255) are skipped."""

    def __init__(self, num_classes: int):
        self.n = num_classes
        self.hist: torch.Tensor | None = None
        self.samples = 0

    def reset(self) -> None:
        self.hist, self.samples = None, 0

    def add(self, pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor | None = None,
            samples: int = 1) -> None:
        """Add equal-shaped integer tensors of prediction and ground truth (predictions already
        checked to lie in 0..n-1), optionally only where the bool ``mask`` is True."""
        n = self.n
        if gt.device.type == "cpu":
            from occ4d.metrics.confusion_numba import confusion

            g = gt.contiguous().numpy()
            p = pred.contiguous().numpy()
            m = mask.contiguous().numpy() if mask is not None else np.ones(1, dtype=bool)
            counts_np = np.zeros(n * n, dtype=np.int64)
            confusion(g, p, m, mask is not None, n, counts_np)
            counts = torch.from_numpy(counts_np).reshape(n, n)
        else:
            # On accelerators: one bincount with a trash bin for skipped voxels (no boolean
            # indexing, so no host synchronisation).
            gt64, pred64 = gt.reshape(-1).to(torch.int64), pred.reshape(-1).to(torch.int64)
            keep = (gt64 >= 0) & (gt64 < n)
            if mask is not None:
                keep &= mask.reshape(-1)
            idx = torch.where(keep, gt64 * n + pred64, torch.full_like(gt64, n * n))
            counts = torch.bincount(idx, minlength=n * n + 1)[: n * n].reshape(n, n)
        self.hist = counts if self.hist is None else self.hist + counts.to(self.hist.device)
        self.samples += samples

    def reduced(self) -> tuple[np.ndarray, int]:
        """(matrix summed over processes as int64 NumPy, total sample count)."""
        hist = self.hist if self.hist is not None else torch.zeros(self.n, self.n, dtype=torch.int64)
        hist = all_reduce_sum(hist)
        count = torch.tensor([self.samples], dtype=torch.int64, device=hist.device)
        samples = int(all_reduce_sum(count).item())
        return hist.cpu().numpy().astype(np.int64), samples


def per_class_iou(hist: np.ndarray) -> np.ndarray:
    """diag / (row sum + column sum - diag) in float64; 0/0 is NaN (devkit ``per_class_iu``)."""
    h = hist.astype(np.float64)
    diag = np.diag(h)
    return safe_ratio(diag, h.sum(1) + h.sum(0) - diag)


class Occ3DMIoU:
    """Occ3D-nuScenes voxel mIoU exactly as the official devkit's ``Metric_mIoU``.

    Args:
        mask: "camera" (the official protocol), "lidar", "none", or "camera_lidar" (a variant
            some papers use; not the official one).
        vocab: the label vocabulary (Occ3D: 18 classes, 17 = free).
        grid: the grid every input must have (leading batch axes are allowed).
        absent_gt_nan: also set IoU to NaN for classes with no ground truth (SparseOcc's
            ``old_metrics`` variant; differs from the devkit only on subsets).
    """

    def __init__(self, mask: str = "camera", vocab: Vocabulary = OCC3D_VOCAB, grid: GridSpec = OCC3D,
                 absent_gt_nan: bool = False):
        if mask not in OCC3D_MASKS:
            raise ValueError(f"mask must be one of {OCC3D_MASKS}, got {mask!r}")
        self.mask, self.vocab, self.grid, self.absent_gt_nan = mask, vocab, grid, absent_gt_nan
        self.cm = ConfusionMatrix(vocab.num_classes)

    @property
    def protocol(self) -> str:
        name = f"occ3d-miou/mask={self.mask}"
        return name + ("/absent-gt-nan" if self.absent_gt_nan else "")

    def reset(self) -> None:
        self.cm.reset()

    def update(self, pred, gt, mask_camera=None, mask_lidar=None, source: str | None = None) -> None:
        """Add one sample (or a batch ``(B, X, Y, Z)``) of predicted and ground-truth labels."""
        n = self.vocab.num_classes
        gt_t = check_label_tensor(gt, n, self.grid.shape, source, "ground truth", allow_ignore=True)
        pred_t = check_label_tensor(pred, n, self.grid.shape, source, "prediction", device=gt_t.device)
        check_same_shape(pred_t, gt_t, source)
        batch = int(np.prod(tuple(gt_t.shape[:-3])))
        keep = None
        for use, m, name in (("camera", mask_camera, "mask_camera"), ("lidar", mask_lidar, "mask_lidar")):
            if self.mask in (use, "camera_lidar"):
                if m is None:
                    raise DataError(source, f"the {self.mask!r} protocol needs {name}, which is absent")
                mt = check_mask_tensor(m, gt_t.shape, source, name, device=gt_t.device)
                keep = mt if keep is None else keep & mt
        self.cm.add(pred_t, gt_t, keep, samples=batch)

    def compute(self) -> dict:
        hist, samples = self.cm.reduced()
        iou = per_class_iou(hist)
        if self.absent_gt_nan:
            iou[hist.sum(1) == 0] = np.nan
        sem = self.vocab.semantic_ids
        names = self.vocab.names
        miou = nanmean(iou[sem]) * 100
        free = self.vocab.free
        # Geometry IoU (OccStudio/ALOcc): occupied = not free, from the same pooled counts.
        occ = np.array(sem)
        tp = hist[np.ix_(occ, occ)].sum()
        fn = hist[occ, free].sum()
        fp = hist[free, occ].sum()
        geo = float(safe_ratio(tp, tp + fn + fp)) * 100
        dyn = [int(c) for c in OCC3D_DYNAMIC] if self.vocab is OCC3D_VOCAB else []
        out = {
            "protocol": self.protocol,
            "description": f"Occ3D devkit mIoU over {len(sem)} classes (free excluded), mask {self.mask}, "
                           "one dataset confusion matrix, percent rounded half-to-even",
            "samples": samples,
            "mIoU": devkit_round(miou),
            "mIoU_unrounded": float(miou),
            "IoU_geometry": devkit_round(geo),
            "per_class": {names[c]: devkit_round(iou[c] * 100) for c in sem},
            "per_class_fraction": {names[c]: float(iou[c]) for c in sem},
            "gt_voxels": {names[c]: int(hist[c].sum()) for c in range(len(names))},
        }
        if dyn:
            out["mIoU_D"] = devkit_round(nanmean(iou[dyn]) * 100)
        return out


class _IgnoreLabelMetric:
    """Shared accumulation of the SurroundOcc and OpenOccupancy protocols: one confusion matrix
    over every voxel whose ground truth is not the ignore value 255 (no visibility mask)."""

    def __init__(self, vocab: Vocabulary, grid: GridSpec):
        self.vocab, self.grid = vocab, grid
        self.cm = ConfusionMatrix(vocab.num_classes)

    def reset(self) -> None:
        self.cm.reset()

    def update(self, pred, gt, source: str | None = None) -> None:
        n = self.vocab.num_classes
        gt_t = check_label_tensor(gt, n, self.grid.shape, source, "ground truth", allow_ignore=True)
        pred_t = check_label_tensor(pred, n, self.grid.shape, source, "prediction", device=gt_t.device)
        check_same_shape(pred_t, gt_t, source)
        self.cm.add(pred_t, gt_t, samples=int(np.prod(tuple(gt_t.shape[:-3]))))


class SurroundOccMetric(_IgnoreLabelMetric):
    """SurroundOcc's semantic evaluation (``evaluation_semantic`` + dataset ``evaluate``).

    Predictions are label grids (the argmax of the 17 logits, 0 = empty); the ground truth is the
    dense grid with noise already 255. No visibility mask: every voxel with gt != 255 counts.
    """

    protocol = "surroundocc"

    def __init__(self, vocab: Vocabulary = SURROUNDOCC_VOCAB, grid: GridSpec = SURROUNDOCC):
        super().__init__(vocab, grid)


    def compute(self) -> dict:
        hist, samples = self.cm.reduced()
        empty = self.vocab.free
        occ = [c for c in range(self.vocab.num_classes) if c != empty]
        # The per-sample 17x3 table: [tp, #gt, #pred]; row 0 is geometry (not-empty vs not-empty).
        table = np.zeros((self.vocab.num_classes, 3), dtype=np.int64)
        table[0] = hist[np.ix_(occ, occ)].sum(), hist[occ].sum(), hist[:, occ].sum()
        for c in occ:
            table[c] = hist[c, c], hist[c].sum(), hist[:, c].sum()
        # The protocol averages the per-sample tables; integer sums are exact in float64, so the
        # average is sum / N exactly as NumPy's mean computes it.
        avg = table.astype(np.float64) / max(samples, 1)
        tp, g, p = avg[:, 0], avg[:, 1], avg[:, 2]
        iou = safe_ratio(tp, g + p - tp)
        names = self.vocab.names
        return {
            "protocol": self.protocol,
            "samples": samples,
            "IoU": float(iou[0]),
            "mIoU": float(np.mean(iou[1:])),
            "per_class_fraction": {names[c]: float(iou[c]) for c in occ},
        }


class OpenOccupancyMetric(_IgnoreLabelMetric):
    """OpenOccupancy's SSC mIoU and SC IoU (``evaluation_semantic`` / ``fast_hist``), no visibility
    mask by default. Predictions must already be on the ground truth's 512x512x40 grid."""

    protocol = "openoccupancy"

    def __init__(self, vocab: Vocabulary = SURROUNDOCC_VOCAB, grid: GridSpec | None = None):
        from occ4d.core.grid import OPENOCCUPANCY

        super().__init__(vocab, grid or OPENOCCUPANCY)


    def compute(self) -> dict:
        hist, samples = self.cm.reduced()
        empty = self.vocab.free
        occ = [c for c in range(self.vocab.num_classes) if c != empty]
        iou = per_class_iou(hist)
        ssc = float(np.sum(iou[occ]) / len(occ))  # plain mean: a NaN propagates
        tp = hist[np.ix_(occ, occ)].sum()
        sc_hist = np.array([[hist[empty, empty], hist[empty, occ].sum()], [hist[occ, empty].sum(), tp]])
        sc = float(per_class_iou(sc_hist)[1])
        names = self.vocab.names
        return {
            "protocol": self.protocol,
            "samples": samples,
            "SC_IoU": devkit_round(sc, 3),
            "SSC_mIoU": devkit_round(ssc, 3),
            "SC_IoU_unrounded": sc,
            "SSC_mIoU_unrounded": ssc,
            "per_class_fraction": {names[c]: float(iou[c]) for c in occ},
        }
