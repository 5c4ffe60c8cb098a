"""The perception model's parts on hand-built cases, and every preset built at reduced size and trained
a few steps."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from occ4d.models.perception import CameraOccupancy, PerceptionConfig, perception_loss
from occ4d.models.perception.bev import ChannelToHeight, warp_bev
from occ4d.models.perception.lss import bev_indices, bev_pool, depth_targets, frustum
from occ4d.models.perception.recipe import PRESETS
from occ4d.synth.cameras import scaled_rig
from occ4d.synth.rig import camera_rig


def test_bev_pool_matches_a_plain_loop():
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(500, 3, generator=g)
    index = torch.randint(0, 2 * 4 * 5, (500,), generator=g)
    valid = torch.rand(500, generator=g) > 0.3
    out = bev_pool(feats, index, valid, 2, (4, 5))
    ref = torch.zeros(2 * 4 * 5, 3)
    for p in range(500):
        if valid[p]:
            ref[index[p]] += feats[p]
    assert torch.allclose(out, ref.view(2, 4, 5, 3).permute(0, 3, 1, 2), atol=1e-5)


def test_frustum_points_land_in_the_bev_cell_below_them():
    """Feature pixel (row 4, col 8) of CAM_FRONT at depth d: the cell of K^-1 (u d, v d, d) in ego."""
    cam = scaled_rig(camera_rig(), 256).cameras[0]
    depths = torch.tensor([10.5, 20.5])  # cell centres, away from boundaries
    pts = frustum((9, 16), (cam.width, cam.height), depths)  # 256 x 144 image, 16 x 9 feature map
    k = torch.tensor(cam.intrinsic, dtype=torch.float32)[None, None]
    pose = torch.tensor(cam.sensor2ego, dtype=torch.float32)[None, None]
    index, valid = bev_indices(pts, k, pose, bev_shape=(200, 200), range_min=(-40.0, -40.0, -1.0),
                               range_max=(40.0, 40.0, 5.4), cell=0.4)
    index = index.view(2, 9, 16)
    s2e = np.asarray(cam.sensor2ego)
    for b, d in enumerate(depths.tolist()):
        ray = np.linalg.inv(cam.intrinsic) @ np.array([(8 + 0.5) * 16, (4 + 0.5) * 16, 1.0]) * d
        p = s2e[:3, :3] @ ray + s2e[:3, 3]
        assert p[0] == pytest.approx(s2e[0, 3] + d, abs=1e-6)  # straight ahead at depth d
        ix, iy = int((p[0] + 40) / 0.4), int((p[1] + 40) / 0.4)
        assert int(index[b, 4, 8]) == ix * 200 + iy  # one sample: no batch offset
    assert valid.view(2, 9, 16)[:, 4, 8].all()


def test_depth_targets_take_the_nearest_valid_depth_of_each_patch():
    depth = torch.zeros(1, 1, 4, 4)
    depth[0, 0, 0, 0], depth[0, 0, 1, 1] = 12.0, 7.0  # top-left patch: nearest is 7 m
    depth[0, 0, 3, 3] = 60.0  # beyond the last bin
    t = depth_targets(depth, 2, 1.0, 1.0, 44)
    assert t.tolist() == [[[[6, -1], [-1, -1]]]]


def test_warp_bev_identity_and_one_cell_shift():
    bev = torch.zeros(1, 1, 10, 10)
    bev[0, 0, 4, 6] = 1.0
    same = warp_bev(bev, torch.eye(4)[None], (-2.0, -2.0), 0.4)
    assert torch.allclose(same, bev, atol=1e-6)
    move = torch.eye(4)[None].clone()
    move[0, 0, 3] = -0.4  # the ego drove 0.4 m forward: a past point is one cell further back now
    moved = warp_bev(bev, move, (-2.0, -2.0), 0.4)
    assert moved[0, 0, 3, 6] == pytest.approx(1.0) and moved[0, 0, 4, 6] == pytest.approx(0.0)


def test_channel_to_height_layout():
    head = ChannelToHeight(in_channels=4, channels=4, grid_z=3, num_classes=2, upsample=2)
    out = head(torch.randn(1, 4, 5, 6))
    assert out.shape == (1, 2, 10, 12, 3)


def _batch(cfg: PerceptionConfig, frames: int, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    w, h = cfg.image_size
    rig = scaled_rig(camera_rig(), w)
    k = torch.tensor(rig.intrinsics, dtype=torch.float32)
    k[:, 1, 2] -= rig.cameras[0].height - h  # bottom crop
    pose = torch.tensor(rig.sensor2ego, dtype=torch.float32)
    sem = torch.full((1, 200, 200, 16), 17, dtype=torch.long)
    sem[..., 0] = 11
    sem[:, 120:140, 90:110, 1:5] = 4
    return {"images": torch.randn(1, frames, 6, 3, h, w, generator=g),
            "intrinsics": k.expand(1, frames, 6, 3, 3), "sensor2ego": pose.expand(1, frames, 6, 4, 4),
            "past2current": torch.eye(4).expand(1, frames, 4, 4), "semantics": sem,
            "mask_camera": torch.ones(1, 200, 200, 16, dtype=torch.bool),
            "depth": torch.rand(1, 6, h, w, generator=g) * 40,
            "image_semantics": torch.randint(0, 18, (1, 6, h, w), generator=g).to(torch.uint8),
            "flow": _box_flow()}


def _box_flow() -> torch.Tensor:
    """The car box of :func:`_batch` moving at (3, -1) m/s, everything else still."""
    flow = torch.zeros(1, 200, 200, 16, 2)
    flow[:, 120:140, 90:110, 1:5] = torch.tensor([3.0, -1.0])
    return flow


REDUCED = dict(image_size=(64, 32), bev_stride=4, bev_channels=(16, 32), head_channels=8)


# The GPU-sized presets (ResNet-50) take most of this test's time: CI runs them in its slow step.
@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n.startswith("r50") else n for n in sorted(PRESETS)]
)
def test_every_preset_builds_and_trains_a_few_steps(name):
    """Each preset's backbone, neck, LSS and head design at a CPU-sized image and BEV grid."""
    cfg = dataclasses.replace(PRESETS[name].model, **REDUCED, depth_bins=8, context_channels=8)
    torch.manual_seed(0)
    model = CameraOccupancy(cfg)
    batch = _batch(cfg, cfg.history + 1)
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(3 if name.startswith("tiny") else 1):  # the ResNet-50 presets: one step keeps the budget
        loss, stats = perception_loss(model, batch, cfg)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        assert np.isfinite(stats["occ_loss"]) and np.isfinite(stats["depth_loss"])
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    if name.startswith("tiny"):
        assert losses[-1] < losses[0]
    model.eval()
    pred = model.predict(batch["images"], batch["intrinsics"], batch["sensor2ego"], batch["past2current"])
    assert pred.shape == (1, 200, 200, 16) and pred.dtype == torch.uint8


def test_temporal_fusion_uses_the_past_frame():
    cfg = PerceptionConfig(**REDUCED, history=1, depth_bins=8, context_channels=8, fpn_channels=16)
    torch.manual_seed(0)
    model = CameraOccupancy(cfg).eval()
    batch = _batch(cfg, 2)
    a = model(batch["images"], batch["intrinsics"], batch["sensor2ego"], batch["past2current"])["logits"]
    other = batch["images"].clone()
    other[:, 0] = torch.randn_like(other[:, 0])
    b = model(other, batch["intrinsics"], batch["sensor2ego"], batch["past2current"])["logits"]
    c = model(batch["images"], batch["intrinsics"], batch["sensor2ego"], batch["past2current"])["logits"]
    assert not torch.allclose(a, b) and torch.equal(a, c)
    with pytest.raises(ValueError, match="past frames"):
        model(batch["images"][:, 1:], batch["intrinsics"][:, 1:], batch["sensor2ego"][:, 1:])


def test_config_validation():
    with pytest.raises(ValueError, match="multiple of 32"):
        PerceptionConfig(image_size=(100, 64))
    with pytest.raises(ValueError, match="bev_stride"):
        PerceptionConfig(bev_stride=3)
    with pytest.raises(ValueError, match="feature_stride"):
        PerceptionConfig(feature_stride=2)
    with pytest.raises(ValueError, match="flow_weight"):
        PerceptionConfig(flow_weight=-1.0)
    with pytest.raises(ValueError, match="lovasz_weight"):
        PerceptionConfig(lovasz_weight=-0.5)


def test_lovasz_term_scores_the_camera_visible_voxels():
    """With ``lovasz_weight`` w the loss grows by exactly w x Lovász-softmax of the masked voxels'
    probabilities, and voxels outside the camera mask do not enter it."""
    from occ4d.models.losses import lovasz_softmax

    cfg = PerceptionConfig(**REDUCED, depth_bins=8, context_channels=8, fpn_channels=16, depth_weight=0.0)
    torch.manual_seed(0)
    model = CameraOccupancy(cfg).eval()
    batch = _batch(cfg, 1)
    batch["mask_camera"] = torch.zeros(1, 200, 200, 16, dtype=torch.bool)
    batch["mask_camera"][:, 100:150, 80:120] = True  # the car box and the ground around it
    plain, stats = perception_loss(model, batch, cfg)
    assert "lovasz_loss" not in stats
    with_lov, stats = perception_loss(model, batch, dataclasses.replace(cfg, lovasz_weight=0.5))
    logits = model(batch["images"], batch["intrinsics"], batch["sensor2ego"])["logits"].float()
    mask = batch["mask_camera"]
    expected = lovasz_softmax(logits.permute(0, 2, 3, 4, 1)[mask].softmax(-1), batch["semantics"][mask])
    assert stats["lovasz_loss"] == pytest.approx(float(expected), rel=1e-5)
    assert float(with_lov - plain) == pytest.approx(0.5 * float(expected), rel=1e-4)
    batch["mask_camera"][:, :50] = True  # more voxels scored: the term changes
    _, more = perception_loss(model, batch, dataclasses.replace(cfg, lovasz_weight=0.5))
    assert more["lovasz_loss"] != pytest.approx(stats["lovasz_loss"])


def test_seg_loss_reads_the_class_at_each_feature_pixel_centre():
    """Logits that name the class at every stride-4 patch centre give ~0 loss; pixels off the
    centres and 255 (sky, outside the image) do not count."""
    from occ4d.models.perception.model import seg_loss

    sem = torch.full((1, 1, 8, 8), 255, dtype=torch.uint8)
    sem[0, 0, 2, 2], sem[0, 0, 2, 6], sem[0, 0, 6, 2] = 3, 11, 4  # three centres; (6, 6) stays 255
    sem[0, 0, 0, 0] = 7  # off-centre: ignored
    logits = torch.full((1, 1, 18, 2, 2), -20.0)
    logits[0, 0, 3, 0, 0] = logits[0, 0, 11, 0, 1] = logits[0, 0, 4, 1, 0] = 20.0
    assert float(seg_loss(logits, sem)) < 1e-6
    wrong = logits.clone()
    wrong[0, 0, 3, 0, 0], wrong[0, 0, 5, 0, 0] = -20.0, 20.0
    # one of the three pixels is now off by 40 nats
    assert float(seg_loss(wrong, sem)) == pytest.approx(40 / 3, rel=1e-4)
    assert float(seg_loss(logits, torch.full_like(sem, 255))) == 0.0


def test_flow_loss_counts_the_visible_voxels_of_the_flow_classes():
    from occ4d.models.perception.model import flow_loss

    sem = torch.full((1, 4, 4, 2), 17, dtype=torch.long)
    sem[0, 0, 0, 0] = 4  # car (a flow class)
    sem[0, 1, 1, 0] = 7  # pedestrian
    sem[0, 2, 2, 0] = 15  # manmade: static class, its flow is not scored
    sem[0, 3, 3, 0] = 4  # a car the cameras cannot see
    gt = torch.zeros(1, 4, 4, 2, 2)
    gt[0, 0, 0, 0] = torch.tensor([3.0, -1.0])
    gt[0, 3, 3, 0] = torch.tensor([100.0, 0.0])
    mask = torch.ones(1, 4, 4, 2, dtype=torch.bool)
    mask[0, 3, 3] = False
    pred = torch.zeros(1, 2, 4, 4)
    pred[0, :, 2, 2] = 50.0  # wrong flow on the static voxel: ignored
    assert float(flow_loss(pred, gt, sem, mask)) == pytest.approx((4.0 + 0.0) / 2)  # |3| + |-1| on the car
    pred[0, :, 0, 0] = torch.tensor([3.0, -1.0])
    assert float(flow_loss(pred, gt, sem, mask)) == 0.0
    assert float(flow_loss(pred, gt, torch.full_like(sem, 17), mask)) == 0.0


def test_flow_head_learns_a_moving_box_and_predicts_one_flow_per_column():
    cfg = dataclasses.replace(PRESETS["tiny"].model, **REDUCED, depth_bins=8, context_channels=8,
                              class_prior=False)
    torch.manual_seed(0)
    model = CameraOccupancy(cfg)
    batch = _batch(cfg, 1)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = None
    for _ in range(30):
        loss, stats = perception_loss(model, batch, cfg)
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = stats["flow_loss"] if first is None else first
    assert stats["flow_loss"] < 0.5 * first and "seg_loss" in stats
    model.eval()
    labels, flow = model.predict_flow(batch["images"], batch["intrinsics"], batch["sensor2ego"],
                                      batch["past2current"])
    assert labels.shape == (1, 200, 200, 16) and flow.shape == (1, 200, 200, 16, 2)
    assert torch.equal(flow, flow[:, :, :, :1].expand_as(flow))  # one velocity per column
    assert "seg_logits" not in model(batch["images"], batch["intrinsics"], batch["sensor2ego"])
    plain = CameraOccupancy(dataclasses.replace(cfg, flow_head=False, seg_weight=0.0,
                                                lift_semantics=False))
    assert plain.seg_head is None and plain.head.flow_out is None
    with pytest.raises(ValueError, match="no flow head"):
        plain.predict_flow(batch["images"], batch["intrinsics"], batch["sensor2ego"])


def test_stride_4_features_and_lifted_semantics_reach_the_bev():
    """At ``feature_stride`` 4 the FPN map is a quarter of the input; with ``lift_semantics`` the
    BEV holds context + class channels, and the occupancy loss trains the image-semantics head
    through the lift (without it, only the 2D loss reaches that head)."""
    base = dataclasses.replace(PRESETS["tiny"].model, **REDUCED, depth_bins=8, context_channels=8,
                               feature_stride=4, class_prior=False)
    batch = _batch(base, 1)
    for lift in (False, True):
        cfg = dataclasses.replace(base, lift_semantics=lift)
        torch.manual_seed(0)
        model = CameraOccupancy(cfg)
        w, h = cfg.image_size
        bev, depth_logits, feats = model.frame_bev(batch["images"][:, 0], batch["intrinsics"][:, 0],
                                                    batch["sensor2ego"][:, 0])
        assert feats.shape[-2:] == (h // 4, w // 4) and depth_logits.shape[-2:] == (h // 4, w // 4)
        assert bev.shape[1] == 8 + (18 if lift else 0)
        out = model(batch["images"], batch["intrinsics"], batch["sensor2ego"])
        out["logits"].float().mean().backward()  # an occupancy-only loss
        grad = model.seg_head.weight.grad
        assert (grad is not None and float(grad.abs().sum()) > 0) == lift
    with pytest.raises(ValueError, match="needs seg_weight"):
        dataclasses.replace(base, lift_semantics=True, seg_weight=0.0)
