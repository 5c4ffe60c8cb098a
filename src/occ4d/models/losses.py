"""Segmentation losses shared by the voxel decoders (tokenizers, perception).

- :func:`lovasz_softmax`: the Lovász-softmax loss (Berman et al., CVPR 2018), a convex surrogate
  of 1 - IoU per class, averaged over the classes present. OccWorld and DOME train their
  tokenizers with it beside cross-entropy: it weighs a class by its IoU, not by its voxel count,
  so a pedestrian of twenty voxels counts as much as the road.

On one-hot probabilities the Lovász extension is exact: the loss of class c equals 1 - IoU_c
(tested), which is what makes it a faithful surrogate of the metric.
"""

from __future__ import annotations

import torch


def _lovasz_grad(gt_sorted: torch.Tensor, gts: torch.Tensor) -> torch.Tensor:
    """Gradient of the Lovász extension of the Jaccard loss at errors sorted in decreasing order.

    ``gt_sorted`` (K, N) float 0/1 ground truth of K classes, each row in its own error order
    (Berman et al., Alg. 1, one row per class); ``gts`` (K, 1) each class's voxel count, which
    may include voxels left out of ``gt_sorted`` at the end of the order.
    """
    intersection = gts - gt_sorted.cumsum(1)
    union = gts + (1.0 - gt_sorted).cumsum(1)
    jaccard = 1.0 - intersection / union
    return torch.cat([jaccard[:, :1], jaccard[:, 1:] - jaccard[:, :-1]], dim=1)


def lovasz_softmax(probs: torch.Tensor, target: torch.Tensor, classes: str = "present",
                   ignore: int | None = None, skip_below: float = 0.0) -> torch.Tensor:
    """Mean over classes of the Lovász hinge of 1 - IoU.

    probs (N, C) softmax probabilities, target (N,) int class ids; ``classes="present"`` averages
    over the classes in ``target`` (classes absent from the target add nothing, as in the paper's
    default), ``"all"`` over every class. ``ignore`` drops voxels with that target id. All classes
    are sorted in one batched call.

    ``skip_below`` > 0 leaves out of the sort the voxels whose error is at most that for every
    class (a trained decoder gets most free space right to 1e-3). They sit at the end of every
    class's order, and each class's voxel count still includes them, so the loss moves by at
    most ``skip_below`` and the gradients of the voxels above it are unchanged; the sort, which
    dominates the cost, shrinks to the voxels still wrong.
    """
    if probs.ndim != 2 or target.shape != probs.shape[:1]:
        raise ValueError(f"expected probs (N, C) and target (N,), got {tuple(probs.shape)} and "
                         f"{tuple(target.shape)}")
    if classes not in ("present", "all"):
        raise ValueError(f"classes must be 'present' or 'all', got {classes!r}")
    if ignore is not None:
        keep = target != ignore
        probs, target = probs[keep], target[keep]
    if target.numel() == 0:
        return probs.sum() * 0.0
    num_classes = probs.shape[1]
    ids = torch.arange(num_classes, device=target.device)
    if classes == "present":
        ids = ids[torch.bincount(target, minlength=num_classes) > 0]
    fg = (target[None, :] == ids[:, None]).to(probs.dtype)  # (K, N)
    errors = (fg - probs[:, ids].t()).abs()  # (K, N)
    gts = fg.sum(1, keepdim=True)
    if skip_below > 0:
        wrong = errors.detach().amax(0) > skip_below  # (N,)
        fg, errors = fg[:, wrong], errors[:, wrong]
    errors_sorted, order = torch.sort(errors, dim=1, descending=True)
    grad = _lovasz_grad(torch.gather(fg, 1, order), gts)
    return (errors_sorted * grad).sum(1).mean()
