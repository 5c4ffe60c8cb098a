"""Occupancy flow on rays: mAVE and the Occ Score of the OpenOcc v2 challenge (PROTOCOLS §3.8).

Each cast ray carries the flow (vx, vy) of the voxel it hit in its own grid. The absolute
velocity error of a ray is ||gt_flow - pred_flow||_2 (float32). Two official definitions exist,
and they disagree; the result always names the one used:

- ``"tp@2m"`` (the in-repo evaluation, also ALOcc/OccStudio's "mAVE_TP"): for every flow class,
  the errors of the *true-positive rays at the 2 m threshold* of that class are summed.
- ``"all-valid-rays"`` (the challenge server's ``tools/ray_iou/metric.py``): for every flow class
  with at least one 2 m true positive in a sample, the errors of *all valid rays of that sample*
  are added. The server also reads float16 depths and flows; ``fp16=True`` reproduces that.

AVE_c = sum / count; mAVE = NaN-mean over the non-free classes (non-flow classes are NaN, as
are flow classes without a true positive). Occ Score = 0.9 RayIoU + 0.1 max(1 - mAVE, 0), with
RayIoU a fraction and mAVE in m/s. The per-ray errors are summed in float64 (the reference sums
each sample's float32 errors with NumPy's pairwise float32 sum, so it can differ in the 7th
significant digit).
"""

from __future__ import annotations

import numpy as np
import torch

from occ4d.core.errors import DataError
from occ4d.core.grid import OCC3D, GridSpec
from occ4d.core.vocab import OPENOCC_VOCAB, OpenOcc, Vocabulary
from occ4d.metrics.common import nanmean, safe_ratio
from occ4d.metrics.origins import ray_directions
from occ4d.metrics.raycast import voxel_space
from occ4d.metrics.rayiou import THRESHOLDS, RayIoU
from occ4d.metrics.reduce import all_reduce_sum

MAVE_VARIANTS = ("tp@2m", "all-valid-rays")
# OpenOcc v2 flow classes: the eight vehicle and person classes (§3.8).
OPENOCC_FLOW_CLASSES = (
    OpenOcc.CAR, OpenOcc.TRUCK, OpenOcc.TRAILER, OpenOcc.BUS, OpenOcc.CONSTRUCTION_VEHICLE,
    OpenOcc.BICYCLE, OpenOcc.MOTORCYCLE, OpenOcc.PEDESTRIAN,
)


def occ_score(rayiou: float, mave: float) -> float:
    """0.9 RayIoU + 0.1 max(1 - mAVE, 0); NaN when mAVE is NaN (Python ``max`` keeps it)."""
    return float(rayiou * 0.9 + max(1 - mave, 0.0) * 0.1)


def check_flow(flow, shape, source: str | None, name: str, device) -> torch.Tensor:
    t = flow if isinstance(flow, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(flow))
    if tuple(t.shape) != (*shape, 2):
        raise DataError(source, f"{name} must have shape {(*shape, 2)}, got {tuple(t.shape)}")
    if not t.dtype.is_floating_point:
        raise DataError(source, f"{name} must be floating point, got dtype {t.dtype}")
    t = t.to(device=device, dtype=torch.float32)
    if not bool(torch.isfinite(t).all()):
        raise DataError(source, f"{name} contains NaN or infinite values")
    return t


class RayFlowMetric(RayIoU):
    """RayIoU plus mAVE and Occ Score (OpenOcc v2 by default).

    Args:
        mave: "tp@2m" or "all-valid-rays" (see the module docstring).
        fp16: quantise depths and flows to float16 before scoring, as submission files are.
        flow_classes: class ids that carry flow.
        mave_threshold: index into ``thresholds`` of the threshold mAVE uses (1 = 2 m).
    """

    def __init__(self, vocab: Vocabulary = OPENOCC_VOCAB, grid: GridSpec = OCC3D,
                 thresholds: tuple[float, ...] = THRESHOLDS, backend: str = "auto",
                 mave: str = "tp@2m", fp16: bool = False,
                 flow_classes: tuple[int, ...] = tuple(int(c) for c in OPENOCC_FLOW_CLASSES),
                 mave_threshold: int = 1):
        if mave not in MAVE_VARIANTS:
            raise ValueError(f"mave must be one of {MAVE_VARIANTS}, got {mave!r}")
        self.mave, self.fp16 = mave, fp16
        self.flow_classes = tuple(int(c) for c in flow_classes)
        self.mave_threshold = mave_threshold
        super().__init__(vocab, grid, thresholds, backend)

    @property
    def protocol(self) -> str:  # type: ignore[override]
        return f"rayiou+mave[{self.mave}{',fp16' if self.fp16 else ''}]"

    def reset(self) -> None:
        super().reset()
        self.ave_sum: torch.Tensor | None = None
        self.ave_cnt: torch.Tensor | None = None

    def update(self, pred, gt, origins, pred_flow=None, gt_flow=None,  # type: ignore[override]
               source: str | None = None) -> None:
        """Add one sample: label grids, flows (X, Y, Z, 2) m/s of both, and its ray origins."""
        pred_t, gt_t, o = self._checked(pred, gt, origins, source)
        if pred_flow is None or gt_flow is None:
            raise DataError(source, "flow evaluation needs both the predicted and the ground-truth flow")
        pf = check_flow(pred_flow, self.grid.shape, source, "predicted flow", gt_t.device)
        gf = check_flow(gt_flow, self.grid.shape, source, "ground-truth flow", gt_t.device)
        space = voxel_space(o, ray_directions(), self.grid)
        gl, gh = self.cast_grid(gt_t, o, space)
        pl, ph = self.cast_grid(pred_t, o, space)
        gv, pv = gh.voxel.to(gf.device), ph.voxel.to(gf.device)
        g_flow = gf[gv[:, 0], gv[:, 1], gv[:, 2]]
        p_flow = pf[pv[:, 0], pv[:, 1], pv[:, 2]]
        gl, pl = gl.to(gf.device), pl.to(gf.device)
        g_depth, p_depth = gh.depth.to(gf.device), ph.depth.to(gf.device)
        if self.fp16:
            g_depth, p_depth = g_depth.half().float(), p_depth.half().float()
            g_flow, p_flow = g_flow.half().float(), p_flow.half().float()
        valid = self.score(pl, p_depth, gl, g_depth)
        self._score_flow(pl[valid], p_depth[valid], p_flow[valid], gl[valid], g_depth[valid], g_flow[valid])

    def _score_flow(self, pl, pd, pf, gl, gd, gf) -> None:
        n = self.vocab.num_classes
        diff = gf - pf
        err = torch.sqrt(diff[:, 0] * diff[:, 0] + diff[:, 1] * diff[:, 1])  # float32, as np.linalg.norm
        thr = self.thresholds[self.mave_threshold]
        tp = (gl == pl) & ((pd - gd).abs() < thr)
        is_flow = torch.zeros(n, dtype=torch.bool, device=gl.device)
        is_flow[list(self.flow_classes)] = True
        ave_sum = torch.zeros(n, dtype=torch.float64, device=gl.device)
        if self.mave == "tp@2m":
            sel = tp & (gl < n)
            sel &= is_flow[gl.clamp(max=n - 1)]
            ave_sum.index_add_(0, gl[sel], err[sel].to(torch.float64))
            ave_cnt = torch.bincount(gl[sel], minlength=n)[:n]
        else:
            tp_per_class = torch.bincount(gl[tp], minlength=256)[:n]
            present = (tp_per_class > 0) & is_flow
            ave_sum = torch.where(present, err.to(torch.float64).sum(), ave_sum)
            ave_cnt = torch.where(present, torch.tensor(err.numel(), device=gl.device), 0).to(torch.int64)
        if self.ave_sum is None:
            self.ave_sum, self.ave_cnt = ave_sum, ave_cnt
        else:
            self.ave_sum += ave_sum
            self.ave_cnt += ave_cnt

    def compute(self) -> dict:
        out = super().compute()
        n = self.vocab.num_classes
        dev = self.ave_sum.device if self.ave_sum is not None else torch.device("cpu")
        s = self.ave_sum if self.ave_sum is not None else torch.zeros(n, dtype=torch.float64, device=dev)
        c = self.ave_cnt if self.ave_cnt is not None else torch.zeros(n, dtype=torch.int64, device=dev)
        s = all_reduce_sum(s).cpu().numpy()
        c = all_reduce_sum(c).cpu().numpy()
        ave = safe_ratio(s, c)
        non_flow = np.ones(n, dtype=bool)
        non_flow[list(self.flow_classes)] = False
        ave[non_flow] = np.nan
        ave = ave[: n - 1]
        mave = nanmean(ave)
        names = self.vocab.names[: n - 1]
        out["protocol"] = self.protocol
        out["description"] += (
            f"; mAVE over {'2 m true-positive rays' if self.mave == 'tp@2m' else 'all valid rays'} "
            "in m/s; Occ Score = 0.9 RayIoU + 0.1 max(1 - mAVE, 0)"
        )
        out["mAVE_variant"] = self.mave
        out["mAVE"] = mave
        out["per_class_AVE"] = {names[i]: float(ave[i]) for i in self.flow_classes if i < n - 1}
        out["OccScore"] = occ_score(out["RayIoU"], mave)
        return out
