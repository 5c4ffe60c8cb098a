"""4D occupancy forecasting metrics: the OccWorld protocol and a strict variant (PROTOCOLS §3.9).

Inputs are predicted and ground-truth future label grids ``(B, T, X, Y, Z)`` (or ``(T, X, Y, Z)``),
T = future steps at the dataset rate (6 at 2 Hz for +0.5 .. +3.0 s). No visibility mask is used:
every voxel counts. For each step and each class c of the 17 non-free classes the protocol
counts seen = #(gt = c), positive = #(pred = c) and correct = #(both), and the same for the
binary "occupied" class (label != free). All of them are sums over one confusion matrix per step
(rows = ground truth), which is what the accumulator keeps: row sums, column sums, the diagonal,
and the non-free block.

Protocols (the result names the one used):

- ``"occworld"``: IoU_c = correct / (seen + positive - correct), but **IoU_c = 1 when seen = 0**;
  mIoU = plain mean over the 17 classes, x100; IoU = the "occupied" IoU x100. Reported at
  1 s / 2 s / 3 s (steps 2/4/6 at 2 Hz, i.e. indices 1/3/5) and "avg" = the mean of those three.
- ``"strict"``: the devkit's rules instead: a class with neither ground truth nor prediction is
  NaN, one with predictions only is 0, and mIoU is the NaN-mean.

Counters are int64, so results are exact and independent of the process count. OccWorld's own
counters are float32 GPU tensors (totals above 2^24 are rounded, order-dependent) and its
distributed sampler pads with duplicated windows, so published numbers can differ from these by
about 1e-3 points.
"""

from __future__ import annotations

import numpy as np
import torch

from occ4d.core.errors import DataError
from occ4d.core.grid import OCC3D, GridSpec
from occ4d.core.vocab import OCC3D_VOCAB, Vocabulary
from occ4d.metrics.common import check_label_tensor, check_same_shape, nanmean, safe_ratio
from occ4d.metrics.reduce import all_reduce_sum
from occ4d.metrics.semantic import ConfusionMatrix

FORECAST_PROTOCOLS = ("occworld", "strict")
REPORT_SECONDS = (1.0, 2.0, 3.0)


class ForecastMetric:
    """Per-horizon mIoU and occupied IoU of forecast occupancy.

    Args:
        protocol: "occworld" or "strict".
        steps: number of future steps per window (6 for OccWorld).
        hz: frame rate of the steps (2 Hz for Occ3D-nuScenes keyframes).
        report_seconds: horizons to report; each maps to step index round(s * hz) - 1.
    """

    def __init__(self, protocol: str = "occworld", vocab: Vocabulary = OCC3D_VOCAB, grid: GridSpec = OCC3D,
                 steps: int = 6, hz: float = 2.0, report_seconds: tuple[float, ...] = REPORT_SECONDS):
        if protocol not in FORECAST_PROTOCOLS:
            raise ValueError(f"protocol must be one of {FORECAST_PROTOCOLS}, got {protocol!r}")
        self.protocol_name, self.vocab, self.grid, self.steps, self.hz = protocol, vocab, grid, steps, hz
        self.report = {}
        for s in report_seconds:
            idx = int(round(s * hz)) - 1
            if not 0 <= idx < steps:
                raise ValueError(f"horizon {s} s is step {idx + 1}, outside the {steps} forecast steps")
            self.report[f"{s:g}s"] = idx
        self.classes = vocab.semantic_ids
        self.reset()

    @property
    def protocol(self) -> str:
        return f"forecast/{self.protocol_name}"

    def reset(self) -> None:
        # One int64 confusion matrix per future step (numba on CPU, bincount on accelerators).
        self.cms = [ConfusionMatrix(self.vocab.num_classes) for _ in range(self.steps)]
        self.windows = 0

    def update(self, pred, gt, source: str | None = None, region=None) -> None:
        """Add windows of future grids ``(B, T, X, Y, Z)`` or one window ``(T, X, Y, Z)``.

        ``region``: optional bool mask of the columns ``(B, T, X, Y)`` (or ``(T, X, Y)``) or
        voxels to score; voxels outside it are not counted (e.g. the area no history frame saw,
        :func:`occ4d.models.world.unseen_columns`, or the rest).
        """
        n = self.vocab.num_classes
        gt_t = check_label_tensor(gt, n, self.grid.shape, source, "ground truth")
        pred_t = check_label_tensor(pred, n, self.grid.shape, source, "prediction", device=gt_t.device)
        check_same_shape(pred_t, gt_t, source)
        if gt_t.dim() == 4:
            if region is not None and torch.as_tensor(region).shape in (gt_t.shape, gt_t.shape[:-1]):
                region = torch.as_tensor(region)[None]  # one window's voxels or columns
            gt_t, pred_t = gt_t[None], pred_t[None]
        if gt_t.dim() != 5 or gt_t.shape[1] != self.steps:
            raise DataError(
                source, f"forecast grids must be (B, {self.steps}, X, Y, Z), got {tuple(gt_t.shape)}"
            )
        keep = None if region is None else self._region(region, gt_t, source)
        for t in range(self.steps):
            self.cms[t].add(pred_t[:, t], gt_t[:, t], None if keep is None else keep[:, t])
        self.windows += gt_t.shape[0]

    @staticmethod
    def _region(region, gt: torch.Tensor, source: str | None) -> torch.Tensor:
        r = torch.as_tensor(region, device=gt.device)
        if r.dtype != torch.bool:
            raise DataError(source, f"region must be a bool mask, got {r.dtype}")
        if tuple(r.shape) == tuple(gt.shape[:-1]):
            r = r[..., None]
        elif tuple(r.shape) != tuple(gt.shape):
            raise DataError(
                source, f"region must be columns {tuple(gt.shape[:-1])} or voxels {tuple(gt.shape)}, "
                f"got {tuple(r.shape)}"
            )
        return r.expand(gt.shape)

    def _counts(self, hist: np.ndarray) -> np.ndarray:
        """(steps, classes + 1, 3) [seen, positive, correct] from (steps, n, n) confusion matrices;
        the last class row is "occupied" (label != free on each side)."""
        occ = np.array(self.classes)
        seen, positive = hist.sum(axis=2), hist.sum(axis=1)
        correct = np.diagonal(hist, axis1=1, axis2=2)
        per_class = np.stack([seen[:, occ], positive[:, occ], correct[:, occ]], axis=2)
        both = hist[:, occ][:, :, occ].sum(axis=(1, 2))
        occupied = np.stack([seen[:, occ].sum(1), positive[:, occ].sum(1), both], axis=1)
        return np.concatenate([per_class, occupied[:, None]], axis=1)

    def _iou(self, counts: np.ndarray) -> np.ndarray:
        seen, positive, correct = (counts[..., k].astype(np.float64) for k in range(3))
        iou = safe_ratio(correct, seen + positive - correct)
        if self.protocol_name == "occworld":
            iou = np.where(counts[..., 0] == 0, 1.0, iou)  # OccWorld's rule for classes without GT
        return iou

    def compute(self) -> dict:
        n = self.vocab.num_classes
        dev = next((cm.hist.device for cm in self.cms if cm.hist is not None), torch.device("cpu"))
        hist = torch.stack([cm.hist.to(dev) if cm.hist is not None
                            else torch.zeros(n, n, dtype=torch.int64, device=dev) for cm in self.cms])
        hist = all_reduce_sum(hist).cpu().numpy()
        windows = int(all_reduce_sum(torch.tensor([self.windows], device=dev)).item())
        iou = self._iou(self._counts(hist))  # (steps, classes + 1)
        if self.protocol_name == "occworld":
            miou = iou[:, :-1].mean(axis=1) * 100
        else:
            miou = np.array([nanmean(row) for row in iou[:, :-1]]) * 100
        occ_iou = iou[:, -1] * 100
        names = [self.vocab.names[c] for c in self.classes]
        out = {
            "protocol": self.protocol,
            "description": (
                f"{len(self.classes)} classes (free excluded), no visibility mask, "
                + ("IoU = 1 for classes without ground truth, plain mean" if self.protocol_name == "occworld"
                   else "NaN for classes in neither grid, NaN-mean")
                + f"; horizons {', '.join(self.report)} at {self.hz:g} Hz; avg = mean of those; int64 "
                "counters (OccWorld's float32 counters can differ by ~1e-3 points)"
            ),
            "windows": windows,
            "mIoU_per_step": [float(v) for v in miou],
            "IoU_per_step": [float(v) for v in occ_iou],
        }
        for label, idx in self.report.items():
            out[f"mIoU@{label}"] = float(miou[idx])
            out[f"IoU@{label}"] = float(occ_iou[idx])
        sel = list(self.report.values())
        out["mIoU_avg"] = float(np.mean(miou[sel]))
        out["IoU_avg"] = float(np.mean(occ_iou[sel]))
        out["per_class"] = {
            label: {names[i]: float(iou[idx, i] * 100) for i in range(len(names))}
            for label, idx in self.report.items()
        }
        return out
