"""Surround cameras to semantic occupancy: the whole model, its loss and its prediction.

images (B, T, N, 3, H, W) ─ ResNet + FPN ─► (B*T*N, C, h, w) ─ LSS (depth x context) ─► BEV (B, C, X', Y')
   past frames' BEVs warped into the current ego frame and fused (optional) ─► BEV encoder
   ─► channel-to-height head ─► logits (B, classes, X, Y, Z) on the Occ3D grid
   (+ the per-voxel class log-prior of the training split, when the config asks for it)
   [─► column flow (B, 2, X, Y) m/s, with the flow head]
   [image features ─► 1x1 ─► per-pixel class logits, supervised by the rendered semantics;
    their probabilities lifted beside the context when the config asks (semantic splatting)]
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from occ4d.core.grid import OCC3D
from occ4d.models.losses import lovasz_softmax
from occ4d.models.perception.backbone import FPN, ResNet
from occ4d.models.perception.bev import BEVEncoder, ChannelToHeight, TemporalFusion, warp_bev
from occ4d.models.perception.config import PerceptionConfig
from occ4d.models.perception.lss import LSSViewTransformer, depth_loss, depth_targets


class CameraOccupancy(nn.Module):
    """BEVDetOcc / FlashOcc-style camera-to-occupancy network (see :class:`PerceptionConfig`)."""

    def __init__(self, config: PerceptionConfig):
        super().__init__()
        self.config = cfg = config
        self.backbone = ResNet(block=cfg.block, layers=cfg.layers, widths=cfg.widths)
        self.neck = FPN(in_channels=self.backbone.out_channels, channels=cfg.fpn_channels,
                        out_stride=cfg.feature_stride)
        cell = OCC3D.voxel_size[0] * cfg.bev_stride
        self.cell = cell
        self.range_min = tuple(float(v) for v in OCC3D.range_min)
        self.view = LSSViewTransformer(
            in_channels=cfg.fpn_channels, context_channels=cfg.context_channels, depth_bins=cfg.depth_bins,
            depth_min=cfg.depth_min, depth_max=cfg.depth_max, bev_shape=cfg.bev_shape,
            range_min=self.range_min, range_max=tuple(float(v) for v in OCC3D.range_max), cell=cell)
        bev_in = cfg.context_channels + (cfg.num_classes if cfg.lift_semantics else 0)
        # Sum pooling makes BEV magnitudes scale with how many frustum points fall in a cell.
        self.bev_norm = nn.BatchNorm2d(bev_in)
        self.fusion = TemporalFusion(channels=bev_in, history=cfg.history) if cfg.history else None
        self.encoder = BEVEncoder(in_channels=bev_in, channels=cfg.bev_channels,
                                  out_channels=cfg.head_channels)
        self.head = ChannelToHeight(in_channels=cfg.head_channels, channels=cfg.head_channels,
                                    grid_z=cfg.grid_z, num_classes=cfg.num_classes, upsample=cfg.bev_stride,
                                    flow=cfg.flow_head)
        self.seg_head = nn.Conv2d(cfg.fpn_channels, cfg.num_classes, 1) if cfg.seg_weight > 0 else None
        if cfg.class_prior:
            # (K, X, Y, Z) log p(class | voxel); uniform until set_prior (train start), then saved
            # with the weights. A zero last layer makes the untrained model predict the prior.
            self.register_buffer("prior_logits", torch.zeros(cfg.num_classes, *cfg.grid_xy, cfg.grid_z))
            nn.init.zeros_(self.head.out.weight)
            nn.init.zeros_(self.head.out.bias)

    @torch.no_grad()
    def set_prior(self, log_prior: Tensor) -> None:
        """Store the (K, X, Y, Z) per-voxel class log-prior (occ4d.models.perception.prior.log_prior)."""
        if not self.config.class_prior:
            raise ValueError("this model was built without a class prior (config.class_prior is False)")
        want = tuple(self.prior_logits.shape)
        if tuple(log_prior.shape) != want:
            raise ValueError(f"prior of shape {tuple(log_prior.shape)}, expected {want}")
        self.prior_logits.copy_(log_prior)

    def frame_bev(self, images: Tensor, intrinsics: Tensor, sensor2ego: Tensor
                  ) -> tuple[Tensor, Tensor, Tensor | None]:
        """One frame: images (B, N, 3, H, W) -> BEV (B, C, X', Y'), depth logits (B, N, D, h, w)
        and the image class logits (B, N, K, h, w) when the model lifts them or trains the
        image-semantics head (else None)."""
        b, n, _, h, w = images.shape
        flat = self.neck(self.backbone(images.flatten(0, 1)))  # (B*N, C, h', w')
        feats = flat.unflatten(0, (b, n))
        seg = None
        if self.seg_head is not None and (self.config.lift_semantics or self.training):
            seg = self.seg_head(flat)  # (B*N, K, h', w')
        extra = seg.softmax(dim=1) if self.config.lift_semantics else None
        bev, depth_logits = self.view(feats, intrinsics, sensor2ego, (w, h), extra)
        return self.bev_norm(bev), depth_logits, None if seg is None else seg.unflatten(0, (b, n))

    def forward(self, images: Tensor, intrinsics: Tensor, sensor2ego: Tensor,
                past2current: Tensor | None = None) -> dict[str, Tensor]:
        """``images`` (B, T, N, 3, H, W) with the current frame last (or (B, N, 3, H, W) for one
        frame); ``past2current`` (B, T, 4, 4). Returns ``logits`` (B, K, X, Y, Z) and
        ``depth_logits`` (B, N, D, h, w) of the current frame, with the flow head ``flow``
        (B, 2, X, Y) m/s, and with the image-semantics head ``seg_logits`` (B, N, K, h, w)."""
        if images.dim() == 5:
            images, intrinsics, sensor2ego = images[:, None], intrinsics[:, None], sensor2ego[:, None]
        hist = self.config.history
        if images.shape[1] < hist + 1:
            raise ValueError(f"the model fuses {hist} past frames; got {images.shape[1] - 1}")
        keep = slice(-hist - 1, None)
        images, intrinsics, sensor2ego = images[:, keep], intrinsics[:, keep], sensor2ego[:, keep]
        bev, depth_logits, seg_logits = self.frame_bev(images[:, -1], intrinsics[:, -1], sensor2ego[:, -1])
        if self.fusion is not None:
            if past2current is None:
                raise ValueError("temporal fusion needs past2current (B, T, 4, 4)")
            past2current = past2current[:, -hist - 1:]
            bevs = [bev]
            with torch.no_grad():  # past frames are context only (BEVDet4D detaches them too)
                for t in range(hist - 1, -1, -1):
                    past, _, _ = self.frame_bev(images[:, t], intrinsics[:, t], sensor2ego[:, t])
                    bevs.append(warp_bev(past, past2current[:, t], self.range_min[:2], self.cell))
            bev = self.fusion(bevs)
        enc = self.encoder(bev)
        logits = self.head(enc)  # (B, K, X, Y, Z)
        if self.config.class_prior:
            logits = logits.float() + self.prior_logits  # float32: the prior's fine differences survive bf16
        out = {"logits": logits, "depth_logits": depth_logits}
        if self.config.flow_head:
            out["flow"] = self.head.flow(enc).float()
        if seg_logits is not None and self.training:
            out["seg_logits"] = seg_logits
        return out

    @torch.no_grad()
    def predict(self, images: Tensor, intrinsics: Tensor, sensor2ego: Tensor,
                past2current: Tensor | None = None) -> Tensor:
        """Class labels (B, X, Y, Z) uint8."""
        return self(images, intrinsics, sensor2ego, past2current)["logits"].argmax(1).to(torch.uint8)

    @torch.no_grad()
    def predict_flow(self, images: Tensor, intrinsics: Tensor, sensor2ego: Tensor,
                     past2current: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(labels (B, X, Y, Z) uint8, flow (B, X, Y, Z, 2) float32 m/s); the flow of a column is
        the same at every height. Needs the flow head."""
        if not self.config.flow_head:
            raise ValueError("this perception model has no flow head (config.flow_head is False)")
        out = self(images, intrinsics, sensor2ego, past2current)
        labels = out["logits"].argmax(1).to(torch.uint8)
        flow = out["flow"].permute(0, 2, 3, 1)[:, :, :, None, :].expand(-1, -1, -1, self.config.grid_z, -1)
        return labels, flow.contiguous()


def balanced_weights(labels: Tensor, num_classes: int) -> Tensor:
    """Per-class weights 1 / ln(1.1 + frequency) from the labels at hand (SurroundOcc's form)."""
    counts = torch.bincount(labels.reshape(-1), minlength=num_classes).double()
    freq = counts / counts.sum().clamp_min(1)
    return (1.0 / torch.log(1.1 + freq)).float()


def perception_loss(model: nn.Module, batch: dict, config: PerceptionConfig
                    ) -> tuple[Tensor, dict[str, float]]:
    """Occupancy cross-entropy (camera-visible voxels), optionally + Lovász-softmax over the same
    voxels, + depth cross-entropy, image semantics and flow terms; (loss, stats)."""
    out = model(batch["images"], batch["intrinsics"], batch["sensor2ego"], batch.get("past2current"))
    logits = out["logits"].float()  # (B, K, X, Y, Z)
    gt = batch["semantics"].long()  # (B, X, Y, Z)
    mask = batch.get("mask_camera") if config.use_camera_mask else None
    if mask is None:
        mask = torch.ones_like(gt, dtype=torch.bool)
    # Only the scored voxels enter the loss: gather them first, (M, K), instead of a full-grid CE.
    picked = logits.permute(0, 2, 3, 4, 1)[mask]
    target = gt[mask]
    weight = balanced_weights(target, config.num_classes).to(logits.device) if config.class_balance else None
    occ = F.cross_entropy(picked, target, weight=weight) if len(target) else logits.sum() * 0.0
    stats = {"occ_loss": float(occ.detach())}
    loss = occ
    if config.lovasz_weight > 0 and len(target):
        lov = lovasz_softmax(picked.softmax(-1), target)
        loss = loss + config.lovasz_weight * lov
        stats["lovasz_loss"] = float(lov.detach())
    if config.depth_weight > 0 and "depth" in batch:
        depth = batch["depth"]
        stride = batch["images"].shape[-1] // out["depth_logits"].shape[-1]
        target = depth_targets(depth, stride, config.depth_min, config.depth_step, config.depth_bins)
        dl = depth_loss(out["depth_logits"], target)
        loss = loss + config.depth_weight * dl
        stats["depth_loss"] = float(dl.detach())
    if config.seg_weight > 0 and "seg_logits" in out and "image_semantics" in batch:
        seg = seg_loss(out["seg_logits"], batch["image_semantics"])
        loss = loss + config.seg_weight * seg
        stats["seg_loss"] = float(seg.detach())
    if config.flow_head and "flow" in batch:
        fl = flow_loss(out["flow"], batch["flow"], gt, mask)
        loss = loss + config.flow_weight * fl
        stats["flow_loss"] = float(fl.detach())
    return loss, stats


def seg_loss(seg_logits: Tensor, semantics: Tensor) -> Tensor:
    """Cross-entropy of per-feature-pixel class logits (B, N, K, h, w) against rendered per-pixel
    semantics (B, N, H, W) (255 = no target, e.g. sky), sampled at each feature pixel's centre."""
    b, n, k, h, w = seg_logits.shape
    hh, ww = semantics.shape[-2:]
    sy, sx = hh // h, ww // w
    target = semantics[..., sy // 2::sy, sx // 2::sx][..., :h, :w].long()  # (B, N, h, w)
    logits = seg_logits.permute(0, 1, 3, 4, 2).reshape(-1, k).float()
    t = target.reshape(-1)
    ok = t < k
    if not bool(ok.any()):
        return logits.sum() * 0.0
    return F.cross_entropy(logits[ok], t[ok])


def flow_loss(flow: Tensor, gt_flow: Tensor, semantics: Tensor, mask: Tensor) -> Tensor:
    """L1 error of the column flow (B, 2, X, Y) against the voxel flow (B, X, Y, Z, 2) on the
    voxels of the flow classes inside ``mask`` (B, X, Y, Z); 0 when there are none."""
    from occ4d.core.vocab import OCC3D_DYNAMIC

    ids = torch.tensor([int(c) for c in OCC3D_DYNAMIC], device=semantics.device)
    sel = torch.isin(semantics, ids) & mask  # (B, X, Y, Z)
    if not bool(sel.any()):
        return flow.sum() * 0.0
    pred = flow.permute(0, 2, 3, 1)[:, :, :, None, :].expand_as(gt_flow)  # (B, X, Y, Z, 2)
    return (pred[sel] - gt_flow[sel].float()).abs().sum(-1).mean()
