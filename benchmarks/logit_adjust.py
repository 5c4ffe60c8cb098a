"""How much of the class-balanced loss's tilt a trained tokenizer should take back at decode.

    python benchmarks/logit_adjust.py --run RUN --data SYNTH [--shares 0 0.25 0.5 0.75 1]
        [--train-clips 10] [--threads 2]

A tokenizer trained with class-balanced cross-entropy learns logits tilted towards the ENet
weight w_c of each class, and decodes rare classes over free space. ``TokenizerConfig.logit_adjust``
subtracts ``share * log w_c`` (w_c from the training split's class frequencies) from the logits
at evaluation. This script scores every share on evenly spaced training clips (where the share is
chosen: the validation split is not looked at to choose it) and on the validation split, with
the run's EMA weights and the Occ3D protocol without mask, and prints one row per share.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True, type=Path)
    ap.add_argument("--data", required=True, type=Path)
    ap.add_argument("--shares", nargs="+", type=float, default=[0.0, 0.125, 0.25, 0.375, 0.5, 0.75, 1.0])
    ap.add_argument("--train-clips", type=int, default=10, help="evenly spaced training clips to choose on")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import numpy as np
    import torch

    from occ4d.data.dataset import collate_clips
    from occ4d.metrics.semantic import Occ3DMIoU
    from occ4d.models.tokenizers.recipe import dataset, split_class_counts
    from occ4d.models.tokenizers.tokenizer import enet_log_weights
    from occ4d.train.registry import load_model

    torch.set_num_threads(args.threads)
    model, cfg, _ = load_model(args.run, ema=True)
    if cfg.model_name != "tokenizer":
        raise SystemExit(f"{args.run}: a {cfg.model_name} run, not a tokenizer")
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, root=str(args.data)))
    counts = split_class_counts(args.data, cfg.data.train_split, cfg.model.num_classes).double()
    log_w = enet_log_weights(counts / counts.sum()).float()
    if cfg.model.logit_adjust:  # score the raw logits: undo the run's own adjustment
        log_w_run, share_run = model.class_log_weight.clone(), cfg.model.logit_adjust
    else:
        log_w_run, share_run = torch.zeros_like(log_w), 0.0

    def scores(split: str, clips: int) -> dict[float, tuple[float, float]]:
        data = dataset(cfg, split)
        picks = range(len(data)) if not clips else np.linspace(0, len(data) - 1, clips).round().astype(int)
        metrics = {s: Occ3DMIoU(mask="none", grid=model.grid) for s in args.shares}
        with torch.no_grad():
            for i in sorted(set(int(p) for p in picks)):
                batch = collate_clips([data[i]])
                occ, poses = batch["semantics"], batch["poses"] if cfg.model.align_poses else None
                latent = model.encode(occ, poses).latent
                raw = model.decode(latent, occ.shape[1], tuple(occ.shape[2:4]), poses) + share_run * log_w_run
                for s, m in metrics.items():
                    m.update((raw - s * log_w).argmax(-1).flatten(0, 1), occ.flatten(0, 1))
        out = {}
        for s, m in metrics.items():
            r = m.compute()
            out[s] = (r["mIoU"], r["IoU_geometry"])
        return out

    train = scores(cfg.data.train_split, args.train_clips)
    val = scores(cfg.data.val_split, 0)
    best = max(train, key=lambda s: train[s][0])
    print(f"run {args.run} ({cfg.preset}), data {args.data}; train: {args.train_clips} clips, val: all")
    print("| share of log w_c taken back | train mIoU | train IoU | val mIoU | val IoU |")
    print("|---|---|---|---|---|")
    for s in args.shares:
        mark = " (best on train)" if s == best else ""
        print(f"| {s:g}{mark} | {train[s][0]:.2f} | {train[s][1]:.2f} | {val[s][0]:.2f} | {val[s][1]:.2f} |")


if __name__ == "__main__":
    main()
