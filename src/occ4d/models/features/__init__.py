"""occ4d's occupancy feature extractor (``model``) and its training recipe (``recipe``).

:mod:`occ4d.models.features.model` documents what the extractor is and how its figures are named.
"""

from occ4d.models.features.model import (
    FEATURE_VERSION,
    FeatureConfig,
    OccFeatureExtractor,
    clip_features,
    extractor_name,
    feature_loss,
    frame_features,
)

__all__ = [
    "FEATURE_VERSION",
    "FeatureConfig",
    "OccFeatureExtractor",
    "clip_features",
    "extractor_name",
    "feature_loss",
    "frame_features",
]
