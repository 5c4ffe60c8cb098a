"""Real Occ3D-nuScenes frames go through the tokenizers unchanged (no resampling, no relabelling)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from occ4d.io.occ3d import load_labels
from occ4d.metrics.semantic import Occ3DMIoU
from occ4d.models.tokenizers import OccTokenizer
from occ4d.models.tokenizers.recipe import PRESETS


def test_real_frames_encode_decode_and_score(occ3d_frame_paths):
    threads = torch.get_num_threads()
    frames = [load_labels(p) for p in occ3d_frame_paths]
    occ = torch.from_numpy(np.stack([f.semantics for f in frames]))[None]  # (1, 2, 200, 200, 16) as stored
    assert occ.dtype == torch.uint8 and occ.shape == (1, 2, 200, 200, 16)
    torch.set_num_threads(1)  # restored below; tiny models on a shared CPU
    for name in ("tiny-vqvae", "tiny-512x"):
        cfg = replace(PRESETS[name].model, channels=8, latent_dim=8)
        torch.manual_seed(0)
        model = OccTokenizer(cfg).eval()
        # the aligned 4D preset takes the clip's poses: here the ego standing still (a format check)
        poses = torch.eye(4, dtype=torch.float64).repeat(1, 2, 1, 1) if cfg.align_poses else None
        q = model.encode(occ, poses)
        assert tuple(q.latent.shape[2:]) == model.latent_shape(2)
        recon = model.reconstruct(occ, poses)
        assert recon.shape == occ.shape and recon.dtype == torch.uint8 and int(recon.max()) <= 17
        metric = Occ3DMIoU(mask="camera")
        for f, pred in zip(frames, recon[0], strict=True):
            metric.update(pred, f.semantics, mask_camera=f.mask_camera)
        res = metric.compute()
        assert res["samples"] == 2 and 0.0 <= res["mIoU"] <= 100.0
    # the input tensor was not modified by the round trip
    assert torch.equal(occ[0, 0], torch.from_numpy(frames[0].semantics))
    torch.set_num_threads(threads)
