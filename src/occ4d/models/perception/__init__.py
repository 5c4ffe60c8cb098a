"""Camera-to-occupancy perception in the BEVDetOcc / FlashOcc line."""

from occ4d.models.perception.config import PerceptionConfig
from occ4d.models.perception.model import CameraOccupancy, balanced_weights, perception_loss

__all__ = ["PerceptionConfig", "CameraOccupancy", "balanced_weights", "perception_loss"]
