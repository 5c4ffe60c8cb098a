"""The tokenizer as a trainable model: named presets, data, loss step and evaluation.

Presets (plain data, DiT-style): ``tiny-*`` train on the synthetic world on two CPU cores in
about a quarter of an hour; ``occworld``, ``occsora`` and ``dome-vae`` are the paper-size designs
for GPUs; ``occ4d-512x`` is our design at OccSora's 512x compression. Evaluation reconstructs
the validation split and scores it with occ4d's Occ3D metric, with no mask (the tokenizer
protocol of PROTOCOLS §4a) and with the camera mask (§3.1) when the data has one.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from occ4d.core.errors import DataError
from occ4d.core.vocab import OCC3D_DYNAMIC, OCC3D_VOCAB
from occ4d.data.dataset import collate_clips
from occ4d.models.tokenizers import OccTokenizer, TokenizerConfig, tokenizer_loss
from occ4d.train.config import DataConfig, OptimConfig, Preset, TrainConfig
from occ4d.train.registry import ModelSpec

# CPU budgets, measured with one thread per run on the shared 2-core machine: the 16x presets
# (6000 samples) take 21-26 min with one other run beside them, tiny-vae (10400) about 30, the
# folded tiny-512x (1200 clips) about 20; the 3D tiny-vqvae4d took 36-56 min at load average ~10.
_TINY = dict(num_res_blocks=1, mid_attention=False)
_TINY_4D = OptimConfig(lr=2e-3, total_samples=1_200, warmup_samples=50, ema_decay=0.99)

# What makes our 512x presets differ from OccSora's (same token grid, clip, budget and EMA VQ
# with dead-code restart): each clip resampled into its middle ego frame before encoding
# and the logits warped back (align_poses: the tokens need not carry the ego's motion), each
# token 4 residual codes of a 512-code book (OccSora: one code of 256 at the tiny size, 512 in the
# paper), commitment 0.25 (VQ-VAE's value) instead of OccSora's 1.0, and the 16x recipe's losses.
# Measured at 1200 clips, seed 0 world, val mIoU / IoU: OccSora design 6.53 / 62.14; the earlier
# occ4d preset (one code of 512, commitment 0.25, plain CE) 8.38 / 62.21; + residual codes and the
# 16x recipe 10.05 / 31.08; + pose alignment 13.96 / 40.88; alignment alone on the
# earlier preset 9.13 / 59.89. Balanced CE paints rare
# classes over free space at this compression, which costs the geometry IoU; an earlier
# ablation: FSQ 6.40 with 8% code usage. The ceiling alignment opens: the middle frame alone,
# warped to every frame, scores 62.92 / 82.33 (benchmarks/tokenizers.py quality).
_OURS_512X = dict(bottleneck="rvq", rvq_depth=4, codebook_size=512, beta=0.25, align_poses=True,
                  class_balanced=True, lovasz_weight=1.0, lovasz_skip=1e-3)
# ... and, since the 64x work showed it, no 3D convolutions: the 8 aligned frames are folded into
# channels with the heights (fold_frames) and an 8x8 patch embedding maps each column block of
# the clip straight to its token (as tiny-vae does per frame), so the network runs at 25x25 only.
# At 400 clips (seed 0): the 3D preset 12.48 mIoU (8 residual codes: 12.56; 256-dim codes: 12.37);
# frames folded with the 3D preset's 2x2 patch and three levels 12.28; folded with 8x8 patches
# 15.90 (a 256-channel KL latent instead of the codes: 17.45). tiny-512x at its 1200 clips:
# 26.10 / 22.95 / 24.63 mIoU over run seeds 0 / 1 / 2 in 22.3-22.6 min (OccSora design 6.53 /
# 3.10 / 2.50); the seed-0 run scores 25.30 and 27.36 on the seed-1 and seed-2 towns.
_FOLD_512X = dict(backbone="2d", fold_frames=8, patch=(1, 8, 8), channel_mult=(1,), spatial_down=0)
# Class-balanced CE tilts the logits towards the ENet weight of each class, and at 512x the decoder
# paints rare classes over free space (predicted manmade: 1.75M val voxels, 84% of them free).
# Taking a quarter of the tilt back at evaluation (logit_adjust, the share chosen on training
# clips by benchmarks/logit_adjust.py) lifted the 1700-clip seed-0 run from 27.85 / 52.78 val
# mIoU / IoU to 28.45 / 61.30 (shares 0.125-0.5 all gain; 1.0 loses 2.8 mIoU).
_ADJUST_512X = dict(logit_adjust=0.25)

# The 16x per-frame presets' recipe: class-balanced CE + Lovász-softmax (OccWorld trains with
# both), half the training windows centred on an object voxel, lr 4e-3, 6000 samples (about 25
# min with one thread beside another job). At 600 samples each lever, one at a time (seed 0,
# benchmarks/tokenizers.py ablate): plain CE 8.29 val mIoU, + Lovász 10.55, balanced CE 18.54,
# both 19.86, lr 4e-3 21.03, focused crops 24.38. At 6000 samples: VQ 61.85 mIoU / 78.09 IoU;
# residual VQ with 4 codes per token 72.08 / 86.22, and with focused crops drawing their object
# class first (crop_focus_by="class", tiny-rvq) 75.00 / 86.85, traffic cone 17.59 -> 33.51 IoU.
# The paper-size occworld and
# dome-vae presets take the two losses too (both papers train with weighted CE + Lovász); the
# 512x presets keep plain CE until the losses are measured there (balanced CE alone cost IoU).
_RECON_16X = dict(class_balanced=True, lovasz_weight=1.0, crop_focus=0.5)
# The 64x KL-VAE with the same recipe and a 64-channel latent (DOME's width; 16 before): 14.62 ->
# 32.40 mIoU / 53.34 IoU at 6000 samples (19.37 / 26.79 at 2000 / 4000), level with the hand-
# written 8x8 block mode (32.56 / 70.67) and below it in IoU. Two residual blocks per level instead
# of one: 21.20 / 27.26 at 2000 / 4000, 1.3x the time per sample, so not kept.
_TINY_16X = OptimConfig(lr=4e-3, total_samples=6_000, warmup_samples=100, ema_decay=0.99)
# The 64x preset now spends its FLOPs on the 25x25 token grid: an 8x8 patch embedding of the
# folded (height, class embedding) channels straight to 192 channels at 25x25, one residual block
# there, and a 1x1 conv plus depth-to-space back (a ViT-style patchify; the earlier design ran
# three levels of convolutions at 100x100, 50x50 and 25x25 for the same token grid). Each lever
# at 2000 samples (seed 0 val mIoU): the earlier design 19.36; + log-variance offset -6 20.27;
# + 256-channel latent 25.20 (512: 23.10; no sampling noise at all: 21.37; widths 32/64/256 at
# the levels instead: 16.33); + 4x4 patch and two levels 33.81; 8x8 patch, one level 43.99.
# This design at 8000 samples: 62.94 mIoU / 90.01 IoU in 29.4 min (the earlier one at 6000:
# 32.40 / 53.34). Leaving the voxels Lovász already gets right out of its sort (lovasz_skip, as the
# 512x presets do) made a sample 1.3x cheaper: 9200 samples took 24.6 min (64.71 / 90.84), and the
# preset's 10400 take 29.4 min: 66.08 / 91.49, and 64.45 / 62.53 mIoU on the seed-1 / seed-2 towns.
_VAE_64X = dict(channels=192, channel_mult=(1,), spatial_down=0, patch=(1, 8, 8), latent_dim=256,
                kl_logvar_offset=-6.0, lovasz_skip=1e-3)

PRESETS: dict[str, Preset] = {
    # OccWorld's per-frame VQ-VAE, shrunk: 50x50 tokens (16x), codebook 256.
    "tiny-vqvae": Preset(
        TokenizerConfig(backbone="2d", bottleneck="vq", channels=32, channel_mult=(1, 2), spatial_down=1,
                        patch=(1, 2, 2), latent_dim=64, codebook_size=256, train_crop=96, **_RECON_16X,
                        **_TINY),
        DataConfig(frames=1, batch_size=4), _TINY_16X,
        note="OccWorld design at CPU size: 200x200 -> 50x50 tokens, 16x"),
    # Ours at 16x: the same network and token grid, each token 4 codes of a residual VQ (I²-World).
    "tiny-rvq": Preset(
        TokenizerConfig(backbone="2d", bottleneck="rvq", rvq_depth=4, channels=32, channel_mult=(1, 2),
                        spatial_down=1, patch=(1, 2, 2), latent_dim=64, codebook_size=256, train_crop=96,
                        **{**_RECON_16X, "crop_focus_by": "class"}, **_TINY),
        DataConfig(frames=1, batch_size=4), _TINY_16X,
        note="occ4d 16x at CPU size: 50x50 tokens of 4 residual codes (4 x 8 bits)"),
    # OccSora's 4D VQ-VAE, shrunk: 8x200x200 -> 1x25x25 tokens (512x).
    "tiny-vqvae4d": Preset(
        TokenizerConfig(backbone="3d", bottleneck="vq", channels=32, channel_mult=(1, 2, 4), spatial_down=2,
                        temporal_down=2, patch=(2, 2, 2), latent_dim=64, codebook_size=256, beta=1.0,
                        train_crop=64, **_TINY),
        DataConfig(frames=8, batch_size=1), _TINY_4D,
        note="OccSora design at CPU size: 8x200x200 -> 1x25x25 tokens, 512x"),
    # A continuous (KL) VAE: 8x8 patches to a 25x25 latent (64x), with the 16x recipe (see _VAE_64X).
    "tiny-vae": Preset(
        TokenizerConfig(backbone="2d", bottleneck="kl", kl_weight=1e-5, train_crop=96, **_VAE_64X,
                        **{**_RECON_16X, "crop_focus_by": "class"}, **_TINY),
        DataConfig(frames=1, batch_size=4), replace(_TINY_16X, total_samples=10_400),
        note="KL-VAE at CPU size: 8x8 patches of 200x200 -> 25x25 x 256 channels, 64x"),
    # Ours at the tiny OccSora's budget, clip and compression: see _OURS_512X and _FOLD_512X.
    "tiny-512x": Preset(
        TokenizerConfig(channels=192, latent_dim=64, train_crop=64, crop_focus=0.5, crop_focus_by="class",
                        **_FOLD_512X, **_OURS_512X, **_ADJUST_512X, **_TINY),
        DataConfig(frames=8, batch_size=1), replace(_TINY_4D, lr=4e-3),
        note="occ4d-512x at CPU size (pose-aligned, 8 frames folded, 8x8 patches, 4 residual codes per "
             "token), budget of tiny-vqvae4d"),
    # The same network with a continuous latent of 256 channels per position (the 512x analogue of
    # tiny-vae; 512x counts positions, PROTOCOLS §4) and the samples 30 minutes hold.
    "tiny-512x-kl": Preset(
        TokenizerConfig(channels=192, latent_dim=256, train_crop=64, crop_focus=0.5, crop_focus_by="class",
                        **_FOLD_512X, **{**_OURS_512X, "bottleneck": "kl"}, kl_weight=1e-5,
                        kl_logvar_offset=-6.0, **_ADJUST_512X, **_TINY),
        DataConfig(frames=8, batch_size=1), replace(_TINY_4D, lr=4e-3, total_samples=1_500),
        note="tiny-512x with a 256-channel KL latent per position instead of the residual codes, "
             "1500 clips"),
    # Paper sizes (GPU).
    "occworld": Preset(
        TokenizerConfig(backbone="2d", bottleneck="vq", channels=64, channel_mult=(1, 2, 4), spatial_down=2,
                        num_res_blocks=2, attn_levels=(2,), latent_dim=128, codebook_size=512,
                        class_balanced=True, lovasz_weight=1.0),
        DataConfig(frames=1, batch_size=8),
        OptimConfig(lr=1e-3, total_samples=28_130 * 200, warmup_samples=8 * 200, grad_clip=35.0),
        note="OccWorld VAE: class embedding x8, 16 heights folded, 200x200 -> 50x50x128, codebook 512"),
    "occsora": Preset(
        TokenizerConfig(backbone="3d", bottleneck="vq", channels=128, channel_mult=(1, 2, 4), spatial_down=2,
                        temporal_down=2, patch=(2, 2, 2), num_res_blocks=2, latent_dim=128, codebook_size=512,
                        beta=1.0),
        DataConfig(frames=32, batch_size=1),
        OptimConfig(lr=1e-3, total_samples=700 * 200, warmup_samples=200, grad_clip=35.0),
        note="OccSora 4D VQ-VAE: 32x200x200 -> 4x25x25x128, codebook 512, 512x"),
    "dome-vae": Preset(
        TokenizerConfig(backbone="2d", bottleneck="kl", channels=64, channel_mult=(1, 2, 4, 4),
                        spatial_down=3, num_res_blocks=2, attn_levels=(3,), latent_dim=64, kl_weight=1e-4,
                        class_balanced=True, lovasz_weight=1.0),
        DataConfig(frames=1, batch_size=8),
        OptimConfig(lr=1e-3, total_samples=28_130 * 200, warmup_samples=8 * 200, grad_clip=35.0),
        note="DOME-style continuous VAE: 200x200 -> 25x25x64, 64x"),
    "occ4d-512x": Preset(
        TokenizerConfig(channels=512, num_res_blocks=2, latent_dim=128, **_FOLD_512X, **_OURS_512X,
                        **_ADJUST_512X),
        DataConfig(frames=32, batch_size=1),
        OptimConfig(lr=1e-3, total_samples=700 * 200, warmup_samples=200, grad_clip=35.0),
        note="ours: OccSora's clip, token grid and budget, pose-aligned clips with each 8 frames folded "
             "into channels and 8x8 patches, 4 residual codes of 512 per token, commitment 0.25, "
             "class-balanced CE + Lovász, 512x"),
}


def build(cfg: TokenizerConfig) -> nn.Module:
    return OccTokenizer(cfg)


def dataset(cfg: TrainConfig, split: str) -> Dataset:
    """Clips of ``cfg.data.frames`` consecutive keyframes of ``split`` under ``cfg.data.root``.

    Training windows start every ``cfg.data.stride`` frames; validation windows do not overlap,
    so each frame is scored once (a scene's last frames that fill no window are left out).
    """
    from occ4d.data.dataset import ClipDataset
    from occ4d.data.index import load_index

    records = load_index(cfg.data.root, split)
    if not records:
        raise DataError(cfg.data.root, f"no frames in split {split!r}")
    val = split == cfg.data.val_split
    return ClipDataset(records, past=cfg.data.frames, future=0,
                       stride=cfg.data.frames if val else cfg.data.stride, with_masks=val, cache=not val)


def split_class_counts(root: str | Path, split: str, num_classes: int) -> torch.Tensor:
    """(num_classes,) voxel counts of each class over the frames of ``split`` under ``root``
    (each frame once; labels outside the vocabulary are not counted)."""
    import numpy as np

    from occ4d.data.index import load_frame, load_index

    counts = np.zeros(num_classes, np.int64)
    for r in load_index(root, split):
        labels = np.asarray(load_frame(r).semantics).reshape(-1)
        counts += np.bincount(labels[labels < num_classes], minlength=num_classes)
    return torch.from_numpy(counts)


def fit(model: nn.Module, data: Dataset, cfg: TrainConfig) -> None:
    """At a fresh run's start: the class frequencies of the training split's frames (each frame
    once), for the evaluation-time logit adjustment and the split-balanced loss, when the
    config uses either."""
    from occ4d.train import distributed as dist

    mcfg: TokenizerConfig = cfg.model
    if not mcfg.uses_split_frequencies:
        return
    net: OccTokenizer = model.module if hasattr(model, "module") else model  # type: ignore[assignment]
    net.set_class_frequencies(split_class_counts(cfg.data.root, cfg.data.train_split, mcfg.num_classes))
    dist.print0("class frequencies of the training frames (logit adjustment / balanced loss)")


def loss(model: nn.Module, batch: dict, cfg: TrainConfig) -> tuple[torch.Tensor, dict[str, float]]:
    poses = batch["poses"] if cfg.model.align_poses else None
    return tokenizer_loss(model, batch["semantics"], cfg.model, poses)


def evaluate(model: nn.Module, data: Dataset, cfg: TrainConfig, device: torch.device) -> dict[str, float]:
    """Reconstruction mIoU / IoU (no mask; camera mask when present), codebook use, throughput."""
    return reconstruction_scores(model, data, cfg, device)[0]


def reconstruction_scores(model: nn.Module, data: Dataset, cfg: TrainConfig, device: torch.device
                          ) -> tuple[dict[str, float], dict[str, dict]]:
    """(summary figures, full metric results by protocol) of reconstructing ``data``.

    Every process scores samples rank, rank + world, ... (each exactly once, no padding) and the
    metric accumulators sum over processes.
    """
    from occ4d.metrics.reduce import all_reduce_sum
    from occ4d.metrics.semantic import Occ3DMIoU
    from occ4d.train import distributed as dist

    net: OccTokenizer = model.module if hasattr(model, "module") else model  # type: ignore[assignment]
    mcfg: TokenizerConfig = net.config
    n = len(data) if not cfg.data.max_val_samples else min(len(data), cfg.data.max_val_samples)
    indices = list(range(dist.rank(), n, dist.world_size()))
    loader = DataLoader(torch.utils.data.Subset(data, indices), batch_size=cfg.data.batch_size,
                        num_workers=cfg.data.num_workers, collate_fn=collate_clips)
    grid = net.grid
    plain, camera = Occ3DMIoU(mask="none", grid=grid), Occ3DMIoU(mask="camera", grid=grid)
    has_camera = True
    counts = torch.zeros(max(mcfg.vocab_size, 1), dtype=torch.float64, device=device)
    seconds = torch.zeros(2, dtype=torch.float64, device=device)  # (model time, frames)
    for batch in loader:
        occ = batch["semantics"].to(device)  # (B, T, X, Y, Z)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        poses = batch["poses"].to(device) if mcfg.align_poses else None
        q = net.encode(occ, poses)
        pred = net.decode(q.latent, occ.shape[1], tuple(occ.shape[2:4]), poses).argmax(-1)  # (B, T, X, Y, Z)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds += torch.tensor([time.perf_counter() - t0, occ.shape[0] * occ.shape[1]], dtype=torch.float64,
                                device=device)
        if q.indices is not None:
            counts += torch.bincount(q.indices.reshape(-1), minlength=counts.numel()).to(counts)
        gt, pr = occ.flatten(0, 1), pred.flatten(0, 1)  # (B*T, X, Y, Z)
        plain.update(pr, gt)
        mask = batch.get("mask_camera")
        if mask is None:
            has_camera = False
        elif has_camera:
            camera.update(pr, gt, mask_camera=mask.to(device).flatten(0, 1))
    # every process must take part in every collective, in the same order
    flag = all_reduce_sum(torch.tensor([0 if has_camera else 1], device=device))
    out = plain.compute()
    full = {"none": out}
    results = {"mIoU": out["mIoU"], "IoU": out["IoU_geometry"], "frames": float(out["samples"]),
               "compression": net.compression_ratio(cfg.data.frames)}
    # the dynamic classes apart (NaN where neither truth nor reconstruction has them): the
    # objects are what a tokenizer at a CPU budget loses first
    for c in OCC3D_DYNAMIC:
        name = OCC3D_VOCAB.names[int(c)]
        results[f"IoU_{name}"] = float(out["per_class"].get(name, float("nan")))
    if int(flag.item()) == 0:
        cam = full["camera"] = camera.compute()
        results.update({"mIoU_camera": cam["mIoU"], "IoU_camera": cam["IoU_geometry"]})
    counts = all_reduce_sum(counts)
    seconds = all_reduce_sum(seconds)
    if mcfg.vocab_size:
        p = counts / counts.sum().clamp_min(1)
        results["codebook_usage"] = float((counts > 0).double().mean())
        results["perplexity"] = float(torch.exp(-(p * torch.log(p.clamp_min(1e-12))).sum()))
    results["frames_per_s"] = float(seconds[1] / seconds[0].clamp_min(1e-9))  # per process
    return results, full


def eval_command(ckpt: Path, data: Path, split: str | None = None, device: str = "cpu",
                 ema: bool = True, max_samples: int = 0) -> tuple[dict, list[list]]:
    """``occ4d eval tokenizer``: reconstruct a split with a trained tokenizer and score it.

    Returns (results with ``protocol``, per-class rows [class, IoU no mask, IoU camera mask]).
    """
    import dataclasses

    from occ4d.train.registry import load_model

    model, cfg, state = load_model(ckpt, ema=ema, device=device)
    if cfg.model_name != "tokenizer":
        raise DataError(ckpt, f"checkpoint is a {cfg.model_name!r} model, not a tokenizer")
    val_split = split or cfg.data.val_split
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, root=str(data), val_split=val_split,
                                                            max_val_samples=max_samples))
    summary, full = reconstruction_scores(model, dataset(cfg, val_split), cfg, torch.device(device))
    none, cam = full["none"], full.get("camera")
    rows = [[name, f"{iou:.2f}", f"{cam['per_class'][name]:.2f}" if cam else "-"]
            for name, iou in none["per_class"].items()]
    results = {"protocol": f"tokenizer-reconstruction/{none['protocol']}" + (" + mask=camera" if cam else ""),
               **summary, "preset": cfg.preset, "step": state["step"], "weights": "ema" if ema else "model",
               "split": val_split, "per_class": none["per_class"],
               "per_class_camera": cam["per_class"] if cam else None}
    return results, rows


SPEC = ModelSpec(name="tokenizer", config_type=TokenizerConfig, presets=PRESETS, build=build,
                 dataset=dataset, loss=loss, evaluate=evaluate, collate=collate_clips, fit=fit)
