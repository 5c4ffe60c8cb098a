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
