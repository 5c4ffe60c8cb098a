"""Runs every metric over a fixed synthetic dataset in one process of a gloo group (for test_ddp).

RayIoU and the flow metric are fed synthetic cast rays through ``score`` (the casting itself is
per-sample and tested elsewhere); what is under test here is the cross-process reduction.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from occ4d.core import OCC3D, Occ3D, OpenOcc
from occ4d.core.grid import SURROUNDOCC
from occ4d.data.sampler import ExactDistributedSampler
from occ4d.metrics import (
    ForecastMetric,
    GenerationMetric,
    Occ3DMIoU,
    OpenOccupancyMetric,
    RayFlowMetric,
    RayIoU,
    SurroundOccMetric,
)

N = 5
FREE = int(Occ3D.FREE)


def sample(i: int):
    rng = np.random.default_rng(100 + i)
    gt = np.full(OCC3D.shape, FREE, np.uint8)
    occ = rng.random(OCC3D.shape) < 0.04
    gt[occ] = rng.integers(0, FREE, int(occ.sum()))
    pred = gt.copy()
    flip = rng.random(OCC3D.shape) < 0.05
    pred[flip] = rng.integers(0, FREE + 1, int(flip.sum()))
    mask = rng.random(OCC3D.shape) < 0.5
    rays = 3000
    ray_gt = torch.from_numpy(rng.integers(0, FREE + 1, rays))
    ray_pred = torch.where(torch.from_numpy(rng.random(rays) < 0.7), ray_gt,
                           torch.from_numpy(rng.integers(0, FREE + 1, rays)))
    depth_gt = torch.from_numpy(rng.uniform(0, 40, rays).astype(np.float32))
    depth_pred = depth_gt + torch.from_numpy(rng.normal(0, 2, rays).astype(np.float32))
    flow_gt = torch.from_numpy(rng.normal(0, 1, (rays, 2)).astype(np.float32))
    feats = rng.normal(0, 1, (4, 6))
    return gt, pred, mask, (ray_pred, depth_pred, ray_gt, depth_gt, flow_gt), feats


def run(rank: int = 0, world: int = 1) -> dict:
    occ, ray = Occ3DMIoU("camera"), RayIoU()
    flows = {v: RayFlowMetric(mave=v) for v in ("tp@2m", "all-valid-rays")}
    fc, gen = ForecastMetric(steps=2, report_seconds=(0.5, 1.0)), GenerationMetric()
    # SurroundOcc averages per-sample tables, so its figures also depend on the reduced sample count.
    sur, oocc = SurroundOccMetric(), OpenOccupancyMetric(grid=SURROUNDOCC)
    for i in ExactDistributedSampler(N, rank, world):
        gt, pred, mask, (pl, pd, gl, gd, gf), feats = sample(i)
        occ.update(pred, gt, mask_camera=mask)
        ray.score(pl, pd, gl, gd)
        ol, og = pl.clamp(max=int(OpenOcc.FREE)), gl.clamp(max=int(OpenOcc.FREE))
        for m in flows.values():
            valid = m.score(ol, pd, og, gd)
            m._score_flow(ol[valid], pd[valid], gf[valid] * 0.5, og[valid], gd[valid], gf[valid])
        fc.update(np.stack([pred, gt]), np.stack([gt, gt]))
        # The same grids in the 17-class SurroundOcc vocabulary (0 = empty, 255 = noise).
        s_gt, s_pred = np.where(gt == FREE, 0, gt), np.where(pred == FREE, 0, pred)
        s_gt[:, :, 0] = np.where(mask[:, :, 0], 255, s_gt[:, :, 0])
        sur.update(s_pred, s_gt)
        oocc.update(s_pred, s_gt)
        gen.update(real=torch.from_numpy(feats), fake=torch.from_numpy(feats + 0.1 * i))
    return {"occ": occ.compute(), "ray": ray.compute(), "forecast": fc.compute(), "generation": gen.compute(),
            "surroundocc": sur.compute(), "openoccupancy": oocc.compute(),
            **{f"flow-{k}": m.compute() for k, m in flows.items()}}


def worker(rank: int, folder: str) -> None:
    """Spawned with 3 processes: all three score the data, then ranks 0 and 1 score it again as a
    2-process group (one spawn serves both world sizes, keeping the test lean)."""
    for world in (3, 2):
        if rank >= world:
            return
        torch.distributed.init_process_group("gloo", init_method=f"file://{folder}/store{world}", rank=rank,
                                             world_size=world)
        try:
            out = run(rank, world)
            if rank == 0:
                Path(folder, f"result{world}.pkl").write_bytes(pickle.dumps(out))
        finally:
            torch.distributed.destroy_process_group()
