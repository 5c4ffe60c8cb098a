import numpy as np
import pytest
import torch
from scipy import linalg

from occ4d.metrics import GenerationMetric, frechet_distance, linear_mmd, precision_recall


def test_frechet_distance_closed_form(rng):
    x = rng.normal(0, 1, (4000, 3))
    y = rng.normal(0, 1, (4000, 3)) * [1, 2, 1] + [3, 0, 0]
    fd = frechet_distance(x, y)
    # Gaussians N(0, I) and N((3,0,0), diag(1,4,1)): 9 + (1 + 4 - 2*2) = 10
    assert fd == pytest.approx(10.0, rel=0.05)
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-8)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    d = x.mean(0) - y.mean(0)
    ref = d @ d + np.trace(s1 + s2 - 2 * np.real(linalg.sqrtm(s1 @ s2)))
    assert fd == pytest.approx(ref, rel=1e-12)


def test_linear_mmd_equals_kernel_form(rng):
    x, y = rng.normal(0, 1, (50, 4)), rng.normal(1, 1, (60, 4))
    kernel = (x @ x.T).mean() + (y @ y.T).mean() - 2 * (x @ y.T).mean()
    assert linear_mmd(x, y) == pytest.approx(kernel, rel=1e-10)


def test_precision_recall_extremes(rng):
    x = torch.from_numpy(rng.normal(0, 1, (200, 2)))
    assert precision_recall(x, x.clone()) == (1.0, 1.0)
    assert precision_recall(x, x + 100) == (0.0, 0.0)
    p, r = precision_recall(x, x[:100] * 0.1)  # collapsed generator: precise, low recall
    assert p > 0.95 and r < 0.5


def test_generation_metric_applies_the_extractor(rng):
    calls = []

    def extractor(batch):
        calls.append(batch.shape)
        return batch.float().mean(dim=(-1,))  # (B, 8, 4) -> (B, 8)

    m = GenerationMetric(extractor, name="toy")
    real = torch.from_numpy(rng.normal(0, 1, (64, 8, 4)))
    m.update(real=real, fake=real + 0.5)
    r = m.compute()
    assert len(calls) == 2 and r["real_samples"] == 64
    assert "not image FID" in r["protocol"]
    assert r["mmd_linear"] == pytest.approx(0.25 * 8, rel=1e-5)
