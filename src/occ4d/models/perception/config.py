"""The camera-to-occupancy model's configuration: one frozen dataclass, validated on construction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class PerceptionConfig:
    """A BEVDetOcc / FlashOcc-style model: image backbone + FPN, LSS lift to a BEV grid, BEV
    encoder, channel-to-height occupancy head.

    - image: ``image_size`` (W, H) network input; training resizes by a factor in
      ``resize_range`` and jitters the crop by ``crop_jitter`` (occ4d.data.camera_dataset).
    - backbone: ResNet with ``block`` ("basic" as ResNet-18/34, "bottleneck" as ResNet-50),
      ``layers`` blocks per stage and ``widths`` channels per stage (x4 for bottleneck);
      the FPN fuses the stages from ``feature_stride`` (4, 8, 16 or 32) to 32 into ``fpn_channels``.
    - LSS: ``depth_bins`` bins from ``depth_min`` to ``depth_max`` metres (BEVDet: 1-45 m,
      0.5 m), ``context_channels`` features per bin; pooled into a BEV grid of the Occ3D extent
      at 0.4 m x ``bev_stride`` (200 x 200 when 1).
    - BEV encoder: stages of ``bev_channels`` (each halves X and Y) and an upsampling path back.
    - head: FlashOcc's channel-to-height: ``grid_z`` x ``num_classes`` channels per BEV cell,
      upsampled by ``bev_stride`` to the 200 x 200 grid with a pixel shuffle.
    - temporal fusion: ``history`` past frames' BEV features warped into the current ego frame
      and concatenated (BEVDet4D); 0 disables it.
    - loss: cross-entropy over camera-visible voxels (``mask_camera``, as BEVDetOcc trains on
      Occ3D), class-balanced when ``class_balance``, plus ``depth_weight`` x depth cross-entropy,
      plus ``lovasz_weight`` x the Lovász-softmax loss over the same voxels (a surrogate of 1 - IoU
      per class, which weighs a pedestrian as much as the road; OccWorld, SurroundOcc).
    - class prior: when ``class_prior``, the head predicts a residual over the per-voxel class
      log-frequencies of the training split (Laplace ``prior_smoothing``; occ4d.models.perception.prior),
      a buffer computed when training starts and saved with the weights; the head's last layer
      starts at zero so the untrained model predicts the per-voxel most frequent class.
    - image semantics: when ``seg_weight`` > 0, a 1x1 head on the image features predicts each
      feature pixel's class and ``seg_weight`` x its cross-entropy against the rendered
      per-pixel semantics joins the loss (dense 2D supervision the backbone learns from fast).
    - flow: when ``flow_head``, the BEV head also predicts each column's (vx, vy) in m/s in the
      current ego frame (occupancy flow, OpenOcc v2), trained with ``flow_weight`` x the L1 error
      on the camera-visible voxels of the flow classes (vehicles, bicycles, pedestrians).
    """

    image_size: tuple[int, int] = (256, 128)
    resize_range: tuple[float, float] = (1.0, 1.0)
    crop_jitter: float = 0.0
    block: Literal["basic", "bottleneck"] = "basic"
    layers: tuple[int, int, int, int] = (1, 1, 1, 1)
    widths: tuple[int, int, int, int] = (16, 32, 64, 128)
    fpn_channels: int = 64
    feature_stride: int = 8
    depth_bins: int = 44
    depth_min: float = 1.0
    depth_max: float = 45.0
    context_channels: int = 32
    bev_stride: int = 2
    bev_channels: tuple[int, ...] = (64, 128)
    head_channels: int = 64
    grid_xy: tuple[int, int] = (200, 200)
    grid_z: int = 16
    num_classes: int = 18
    free_class: int = 17
    history: int = 0
    depth_weight: float = 0.5
    class_balance: bool = True
    lovasz_weight: float = 0.0
    use_camera_mask: bool = True
    class_prior: bool = False
    prior_smoothing: float = 1.0
    seg_weight: float = 0.0
    lift_semantics: bool = False
    flow_head: bool = False
    flow_weight: float = 1.0

    def __post_init__(self) -> None:
        w, h = self.image_size
        if self.feature_stride not in (4, 8, 16, 32):
            raise ValueError(f"feature_stride must be 4, 8, 16 or 32, got {self.feature_stride}")
        if w % 32 or h % 32:
            raise ValueError(f"image_size {self.image_size} must be a multiple of 32")
        if self.block not in ("basic", "bottleneck") or len(self.layers) != 4 or len(self.widths) != 4:
            raise ValueError("block must be basic|bottleneck, with 4 stages of layers and widths")
        if not 0 < self.depth_min < self.depth_max or self.depth_bins < 2:
            raise ValueError("need 0 < depth_min < depth_max and at least 2 depth bins")
        if self.grid_xy[0] % self.bev_stride or self.grid_xy[1] % self.bev_stride:
            raise ValueError(f"bev_stride {self.bev_stride} must divide the grid {self.grid_xy}")
        if self.history < 0 or not self.bev_channels or not 0 <= self.free_class < self.num_classes:
            raise ValueError("history >= 0, at least one BEV stage, free_class a valid class")
        if not 0 < self.resize_range[0] <= self.resize_range[1] or not 0 <= self.crop_jitter <= 1:
            raise ValueError("resize_range must be positive and ordered, crop_jitter in [0, 1]")
        if self.seg_weight < 0 or self.flow_weight < 0 or self.lovasz_weight < 0:
            raise ValueError(f"seg_weight, flow_weight, lovasz_weight must be >= 0: {self.seg_weight}, "
                             f"{self.flow_weight}, {self.lovasz_weight}")
        if self.lift_semantics and self.seg_weight <= 0:
            raise ValueError("lift_semantics lifts the image-semantics head: it needs seg_weight > 0")
        if self.prior_smoothing <= 0:
            raise ValueError(f"prior_smoothing must be positive, got {self.prior_smoothing}")

    @property
    def bev_shape(self) -> tuple[int, int]:
        return self.grid_xy[0] // self.bev_stride, self.grid_xy[1] // self.bev_stride

    @property
    def depth_step(self) -> float:
        return (self.depth_max - self.depth_min) / self.depth_bins
