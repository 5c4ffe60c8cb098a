"""Each tiny tokenizer preset must be able to learn one scene: it overfits a fixed frame (a fixed
8-frame clip for the 4D presets) to >= 95 mIoU in a bounded number of steps. This fails when the
loss, the decoder or the quantizer is broken."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from occ4d.core.grid import OCC3D, GridSpec
from occ4d.core.vocab import Occ3D
from occ4d.metrics.semantic import Occ3DMIoU
from occ4d.models.tokenizers import OccTokenizer, tokenizer_loss
from occ4d.models.tokenizers.recipe import PRESETS

S = 48  # a 48 x 48 window of the 200 x 200 grid, all 16 heights


def scene() -> torch.Tensor:
    """(1, 1, S, S, 16): road, sidewalk, terrain, a building, a tree, a car and a pedestrian."""
    occ = torch.full((1, 1, S, S, 16), int(Occ3D.FREE))
    occ[..., 1] = int(Occ3D.DRIVEABLE_SURFACE)
    occ[:, :, :, 30:38, 1] = int(Occ3D.SIDEWALK)
    occ[:, :, :, 38:, 1] = int(Occ3D.TERRAIN)
    occ[:, :, 5:20, 40:47, 2:12] = int(Occ3D.MANMADE)
    occ[:, :, 30:34, 41:45, 2:9] = int(Occ3D.VEGETATION)
    occ[:, :, 10:21, 12:17, 2:6] = int(Occ3D.CAR)
    occ[:, :, 28:29, 33:34, 2:6] = int(Occ3D.PEDESTRIAN)  # one column of four voxels
    return occ


def clip(frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(1, frames, S, S, 16) and (1, frames, 4, 4) ego-to-global poses: the ego backs up one voxel
    (0.4 m) per frame, so the scene slides one voxel along +x and free space enters at x = 0."""
    occ = scene()
    frames_ = [torch.cat([torch.full_like(occ[:, :, :i], int(Occ3D.FREE)), occ[:, :, :S - i]], dim=2)
               for i in range(frames)]
    poses = torch.eye(4, dtype=torch.float64).repeat(1, frames, 1, 1)
    poses[0, :, 0, 3] = -OCC3D.voxel_size[0] * torch.arange(frames, dtype=torch.float64)
    return torch.cat(frames_, dim=1), poses


# preset: optimiser steps on the fixed frame (2D presets) or clip (4D presets). The OccSora-design
# tiny-vqvae4d (plain cross-entropy) is not here: after 300 steps on the clip it stands at 64.55
# mIoU with the bus and the pedestrian at 0 IoU, the rare-class blindness its loss has.
STEPS = {"tiny-vqvae": 300, "tiny-rvq": 300, "tiny-vae": 400, "tiny-512x": 200, "tiny-512x-kl": 200}
# The patch-8 tiny-vae at its preset's lr of 4e-3 overshoots on one full-batch frame (62.71 mIoU
# after 300 steps, stray voxels of absent classes); at 1e-3 it reaches 100.0 in 400.
LR = {"tiny-vae": 1e-3}


@pytest.mark.slow  # about half a minute on one core per 2D preset, two for tiny-512x
@pytest.mark.parametrize("name", sorted(STEPS))
def test_tiny_preset_overfits_one_clip(name, one_thread):
    preset = PRESETS[name]
    cfg = replace(preset.model, grid=(S, S, 16), train_crop=0, crop_focus=0.0)
    torch.manual_seed(0)
    model = OccTokenizer(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=LR.get(name, preset.optim.lr))
    occ, poses = clip(preset.data.frames) if preset.data.frames > 1 else (scene(), None)
    poses = poses if cfg.align_poses else None
    for _ in range(STEPS[name]):
        loss, _ = tokenizer_loss(model.train(), occ, cfg, poses)
        opt.zero_grad()
        loss.backward()
        opt.step()
    metric = Occ3DMIoU(mask="none", grid=GridSpec("window", (S, S, 16), OCC3D.voxel_size, OCC3D.range_min))
    metric.update(model.eval().reconstruct(occ, poses)[0], occ[0])
    result = metric.compute()
    assert result["mIoU"] >= 95.0, result["per_class"]
    assert result["per_class"]["pedestrian"] >= 95.0 and result["per_class"]["car"] >= 95.0
