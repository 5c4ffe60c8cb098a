"""The occupancy feature extractor (v1): builds, trains, is named by its weights, feeds the metrics."""

from __future__ import annotations

import pytest
import torch

from occ4d.metrics.generation import GenerationMetric
from occ4d.models.features import (
    FeatureConfig,
    OccFeatureExtractor,
    clip_features,
    extractor_name,
    feature_loss,
    frame_features,
)

SMALL = FeatureConfig(grid=(32, 32, 4), channels=(8, 16, 16), dim=16)


def test_extractor_trains_and_reconstructs_shapes():
    torch.manual_seed(0)
    m = OccFeatureExtractor(SMALL)
    occ = torch.randint(0, 18, (4, 32, 32, 4), generator=torch.Generator().manual_seed(0))
    assert m(occ).shape == (4, 32, 32, 4, 18) and m.features(occ).shape == (4, 16)
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    losses = []
    for _ in range(10):
        loss, stats = feature_loss(m, occ, 18)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(stats["ce"])
    assert losses[-1] < losses[0]
    # Odd grid sizes: the decoder crops back to the input.
    odd = OccFeatureExtractor(FeatureConfig(grid=(25, 27, 4), channels=(8, 8), dim=8))
    assert odd(torch.zeros(1, 25, 27, 4, dtype=torch.long)).shape == (1, 25, 27, 4, 18)


def test_extractor_name_tracks_weights_and_version():
    torch.manual_seed(0)
    a = OccFeatureExtractor(SMALL)
    name = extractor_name(a)
    assert name.startswith("occ4d-feat-v1@") and extractor_name(a) == name
    with torch.no_grad():
        a.to_feature.bias.add_(1.0)
    assert extractor_name(a) != name
    with pytest.raises(ValueError, match="v1"):
        FeatureConfig(version="v0")


def test_features_feed_the_generation_metric():
    torch.manual_seed(0)
    m = OccFeatureExtractor(SMALL).eval()
    g = torch.Generator().manual_seed(1)
    real = torch.randint(0, 18, (2, 8, 32, 32, 4), generator=g)
    fake = torch.randint(0, 18, (2, 8, 32, 32, 4), generator=g)
    assert clip_features(m, real).shape == (16, 16)
    assert torch.allclose(frame_features(m, real[0], batch=3), frame_features(m, real[0], batch=8), atol=1e-5)
    metric = GenerationMetric(lambda x: clip_features(m, x), name=extractor_name(m))
    metric.update(real=real, fake=real)
    same = metric.compute()
    assert same["frechet_distance"] == pytest.approx(0.0, abs=1e-6)
    metric.reset()
    metric.update(real=real, fake=torch.full_like(fake, 17))
    assert metric.compute()["frechet_distance"] > 1e-3
