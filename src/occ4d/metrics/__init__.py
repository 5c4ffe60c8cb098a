"""Metrics as accumulators: ``update()`` on the inputs' device, ``compute()`` safe under DDP.

- :class:`Occ3DMIoU`, :class:`SurroundOccMetric`, :class:`OpenOccupancyMetric`: voxel mIoU/IoU.
- :class:`RayIoU` and :class:`RayFlowMetric` (mAVE, Occ Score): ray-based metrics.
- :class:`ForecastMetric`: the OccWorld forecasting protocol and a strict variant.
- :class:`GenerationMetric`: Frechet distance, linear MMD, precision/recall in a passed
  extractor's feature space (not image FID).

Numba (the RayIoU CPU path) is imported only when that path is first used.
"""

from occ4d.metrics.flow import MAVE_VARIANTS, RayFlowMetric, occ_score
from occ4d.metrics.forecast import FORECAST_PROTOCOLS, ForecastMetric
from occ4d.metrics.generation import GenerationMetric, frechet_distance, linear_mmd, precision_recall
from occ4d.metrics.origins import origins_by_token, ray_directions, ray_origins, scene_origins
from occ4d.metrics.rayiou import THRESHOLDS, RayIoU
from occ4d.metrics.semantic import (
    OCC3D_MASKS,
    ConfusionMatrix,
    Occ3DMIoU,
    OpenOccupancyMetric,
    SurroundOccMetric,
    per_class_iou,
)

__all__ = [
    "MAVE_VARIANTS", "RayFlowMetric", "occ_score", "FORECAST_PROTOCOLS", "ForecastMetric",
    "GenerationMetric", "frechet_distance", "linear_mmd", "precision_recall", "ray_directions",
    "ray_origins", "scene_origins", "origins_by_token", "THRESHOLDS", "RayIoU", "OCC3D_MASKS",
    "ConfusionMatrix",
    "Occ3DMIoU", "OpenOccupancyMetric", "SurroundOccMetric", "per_class_iou",
]
