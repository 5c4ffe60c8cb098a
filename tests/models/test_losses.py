"""Segmentation losses on hand-built cases with known answers."""

import pytest
import torch

from occ4d.models.losses import lovasz_softmax


def _iou(pred: torch.Tensor, target: torch.Tensor, c: int) -> float:
    inter = ((pred == c) & (target == c)).sum().item()
    union = ((pred == c) | (target == c)).sum().item()
    return inter / union


def test_lovasz_on_one_hot_is_one_minus_iou():
    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, 4, (200,), generator=g)
    pred = target.clone()
    flip = torch.rand(200, generator=g) < 0.3
    pred[flip] = torch.randint(0, 4, (int(flip.sum()),), generator=g)
    probs = torch.nn.functional.one_hot(pred, 4).float()
    expected = sum(1.0 - _iou(pred, target, c) for c in range(4)) / 4
    assert lovasz_softmax(probs, target).item() == pytest.approx(expected, abs=1e-6)


def test_lovasz_perfect_is_zero_and_absent_classes_do_not_count():
    target = torch.tensor([0, 0, 1, 1, 1])
    probs = torch.nn.functional.one_hot(target, 3).float()  # class 2 absent from the target
    assert lovasz_softmax(probs, target).item() == 0.0
    # predicting the absent class everywhere: classes 0 and 1 each lose their whole IoU
    wrong = torch.nn.functional.one_hot(torch.full((5,), 2), 3).float()
    assert lovasz_softmax(wrong, target).item() == pytest.approx(1.0)
    assert lovasz_softmax(wrong, target, classes="all").item() == pytest.approx(1.0)


def test_lovasz_ignore_and_gradient():
    target = torch.tensor([0, 1, 2, 2])
    logits = torch.zeros(4, 3, requires_grad=True)
    loss = lovasz_softmax(logits.softmax(-1), target, ignore=2)
    loss.backward()
    assert logits.grad is not None and logits.grad[2:].abs().sum() == 0  # ignored voxels get none
    assert logits.grad[0, 0] < 0 and logits.grad[1, 1] < 0  # raising the true class lowers the loss
    with pytest.raises(ValueError):
        lovasz_softmax(torch.zeros(4, 3), torch.zeros(3, dtype=torch.long))


def test_lovasz_skipping_confident_voxels_keeps_the_loss_and_the_gradients_of_the_rest():
    g = torch.Generator().manual_seed(1)
    n, c = 4000, 5
    target = torch.randint(0, c, (n,), generator=g)
    logits = torch.randn(n, c, generator=g)
    confident = torch.rand(n, generator=g) < 0.8  # most voxels right to ~1e-6, as free space is
    logits[confident] = -8.0
    logits[confident, target[confident]] = 8.0
    logits.requires_grad_(True)
    full = lovasz_softmax(logits.softmax(-1), target)
    (full_grad,) = torch.autograd.grad(full, logits)
    skipped = lovasz_softmax(logits.softmax(-1), target, skip_below=1e-3)
    (skip_grad,) = torch.autograd.grad(skipped, logits)
    assert abs(full.item() - skipped.item()) <= 1e-3
    assert torch.allclose(full_grad[~confident], skip_grad[~confident], atol=1e-6)
    assert skip_grad[confident].abs().max() == 0  # the skipped voxels get no gradient
    # on one-hot probabilities every correct voxel is skipped and the loss is still 1 - IoU
    pred = target.clone()
    pred[:500] = (pred[:500] + 1) % c
    probs = torch.nn.functional.one_hot(pred, c).float()
    expected = sum(1.0 - _iou(pred, target, k) for k in range(c)) / c
    assert lovasz_softmax(probs, target, skip_below=1e-3).item() == pytest.approx(expected, abs=1e-6)
