"""The hand-written tokenizer baseline: each block of columns keeps its most frequent class.

At a per-frame token grid of ``factor`` x ``factor`` columns (4: 16x, 8: 64x) every block keeps,
at each height, its most frequent class (ties to the lower id) and decodes by repeating it. No
training: the bar a learned tokenizer at that grid must clear on the same frames.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from occ4d.core.vocab import OCC3D_VOCAB


def block_mode(occ: torch.Tensor, factor: int) -> torch.Tensor:
    """(X, Y, Z) labels -> the block-mode reconstruction (X, Y, Z), int64."""
    onehot = F.one_hot(occ.long(), OCC3D_VOCAB.num_classes).permute(2, 3, 0, 1).float()  # (Z, C, X, Y)
    mode = F.avg_pool2d(onehot, factor).argmax(1)  # (Z, X / f, Y / f)
    return mode.repeat_interleave(factor, 1).repeat_interleave(factor, 2).permute(1, 2, 0)


def block_mode_scores(root, factor: int = 4, split: str = "val") -> dict:
    """The codec scored on every frame of ``split`` under ``root`` (no mask, as the tokenizers)."""
    from occ4d.data.index import load_index
    from occ4d.io.occ3d import load_labels
    from occ4d.metrics.semantic import Occ3DMIoU

    metric = Occ3DMIoU(mask="none")
    for rec in load_index(root, split):
        occ = torch.from_numpy(load_labels(rec.path).semantics)  # (X, Y, Z)
        metric.update(block_mode(occ, factor).to(torch.uint8), occ)
    out = metric.compute()
    return {"mIoU": out["mIoU"], "IoU": out["IoU_geometry"], "per_class": out["per_class"],
            "frames": out["samples"]}
