"""The per-voxel class prior: counted on hand-built splits, predicted exactly by an untrained model,
kept through the checkpoint, and optional (a checkpoint from before it still loads)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from occ4d.core.vocab import OCC3D_VOCAB, Occ3D
from occ4d.models.perception import CameraOccupancy, PerceptionConfig, perception_loss
from occ4d.models.perception.prior import class_counts, log_prior, most_frequent

REDUCED = dict(image_size=(64, 32), bev_stride=4, bev_channels=(16, 32), head_channels=8, depth_bins=8,
               context_channels=8, fpn_channels=16)


def test_counts_and_log_prior_of_a_hand_built_split():
    # three frames of a 2 x 1 x 2 grid with 3 classes
    grids = [np.array([[[0, 2]], [[1, 1]]]), np.array([[[0, 2]], [[2, 1]]]), np.array([[[1, 0]], [[2, 1]]])]
    counts = class_counts(grids, 3)
    assert counts.shape == (3, 2, 1, 2)
    assert counts[:, 0, 0, 0].tolist() == [2, 1, 0]
    assert counts[:, 0, 0, 1].tolist() == [1, 0, 2]
    assert counts[:, 1, 0, 0].tolist() == [0, 1, 2]
    assert counts[:, 1, 0, 1].tolist() == [0, 3, 0]
    prior = log_prior(counts, smoothing=0.5)
    # Laplace: (n_k + a) / (n + K a) with n = 3 frames, K = 3, a = 0.5
    assert prior[:, 0, 0, 0].exp().tolist() == pytest.approx([2.5 / 4.5, 1.5 / 4.5, 0.5 / 4.5])
    assert prior[:, 1, 0, 1].exp().tolist() == pytest.approx([0.5 / 4.5, 3.5 / 4.5, 0.5 / 4.5])
    assert torch.allclose(prior.exp().sum(0), torch.ones(2, 1, 2))
    assert most_frequent(counts)[:, 0].tolist() == [[0, 2], [2, 1]]
    # a tie goes to the lowest class id, as the baseline's argmax resolves it
    assert most_frequent(class_counts([np.array([[[2]]]), np.array([[[1]]])], 3)).item() == 1


def test_counts_reject_bad_labels_and_shapes():
    with pytest.raises(ValueError, match="outside"):
        class_counts([np.array([[[3]]])], 3)
    with pytest.raises(ValueError, match="shape"):
        class_counts([np.zeros((1, 1, 1), int), np.zeros((1, 1, 2), int)], 3)
    with pytest.raises(ValueError, match="no label grids"):
        class_counts([], 3)
    with pytest.raises(ValueError, match="smoothing"):
        log_prior(np.zeros((3, 1, 1, 1)), smoothing=0.0)


def _random_split(frames: int, seed: int) -> list[np.ndarray]:
    """Frames with a free sky, a road layer and random objects: a realistic mix of sure and unsure voxels."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(frames):
        g = np.full((200, 200, 16), OCC3D_VOCAB.free, np.uint8)
        ground = [Occ3D.DRIVEABLE_SURFACE, Occ3D.SIDEWALK, Occ3D.TERRAIN]
        g[..., 0] = rng.choice(ground, size=(200, 200), p=[0.6, 0.2, 0.2])
        objects = rng.integers(0, OCC3D_VOCAB.free, (200, 200, 3))  # any class but free
        g[..., 1:4] = np.where(rng.random((200, 200, 3)) < 0.1, objects, g[..., 1:4])
        out.append(g)
    return out


def _inputs(cfg: PerceptionConfig, seed: int = 0) -> dict:
    from occ4d.synth.cameras import scaled_rig
    from occ4d.synth.rig import camera_rig

    g = torch.Generator().manual_seed(seed)
    w, h = cfg.image_size
    rig = scaled_rig(camera_rig(), w)
    k = torch.tensor(rig.intrinsics, dtype=torch.float32)
    k[:, 1, 2] -= rig.cameras[0].height - h
    return {"images": torch.randn(1, 1, 6, 3, h, w, generator=g), "intrinsics": k.expand(1, 1, 6, 3, 3),
            "sensor2ego": torch.tensor(rig.sensor2ego, dtype=torch.float32).expand(1, 1, 6, 4, 4),
            "past2current": torch.eye(4).expand(1, 1, 4, 4)}


def test_untrained_model_predicts_the_most_frequent_class_per_voxel():
    cfg = PerceptionConfig(**REDUCED, class_prior=True)
    counts = class_counts(_random_split(5, seed=1), cfg.num_classes)
    torch.manual_seed(0)
    model = CameraOccupancy(cfg)
    model.set_prior(log_prior(counts, cfg.prior_smoothing))
    model.eval()
    x = _inputs(cfg)
    logits = model(x["images"], x["intrinsics"], x["sensor2ego"], x["past2current"])["logits"]
    assert torch.equal(logits[0], model.prior_logits)  # the zero last layer adds exactly nothing
    pred = model.predict(x["images"], x["intrinsics"], x["sensor2ego"], x["past2current"])
    assert np.array_equal(pred[0].numpy(), most_frequent(counts))
    with pytest.raises(ValueError, match="expected"):
        model.set_prior(torch.zeros(3, 2, 2, 2))
    with pytest.raises(ValueError, match="without a class prior"):
        CameraOccupancy(PerceptionConfig(**REDUCED)).set_prior(model.prior_logits)


def test_training_with_the_prior_moves_the_whole_network():
    """The zero last layer blocks gradients to the layers below it only for the first step."""
    cfg = PerceptionConfig(**REDUCED, class_prior=True)
    torch.manual_seed(0)
    model = CameraOccupancy(cfg)
    split = _random_split(3, seed=2)
    model.set_prior(log_prior(class_counts(split, cfg.num_classes), cfg.prior_smoothing))
    mask = torch.zeros(1, 200, 200, 16, dtype=torch.bool)
    mask[..., :4] = True  # the ground and object layers: a smaller loss keeps the test fast
    labels = torch.from_numpy(split[0].astype(np.int64))[None]
    batch = {**_inputs(cfg), "semantics": labels, "mask_camera": mask}
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    encoder = [p.detach().clone() for p in model.encoder.parameters()]
    prior = model.prior_logits.clone()
    losses = []
    for _ in range(2):  # step 1 moves only the zero layer; step 2 reaches the layers below
        loss, _ = perception_loss(model, batch, cfg)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0]
    assert all(not torch.equal(a, b) for a, b in zip(encoder, model.encoder.parameters(), strict=True))
    assert torch.equal(model.prior_logits, prior)  # a buffer: never trained


def test_a_checkpoint_from_before_the_prior_still_loads(tmp_path):
    """Runs saved before ``class_prior`` existed have no such config key and no buffer."""
    from occ4d.train.checkpoint import save_checkpoint
    from occ4d.train.config import DataConfig, OptimConfig, RunConfig, TrainConfig, to_dict
    from occ4d.train.registry import load_model

    cfg = PerceptionConfig(**REDUCED)
    torch.manual_seed(0)
    model = CameraOccupancy(cfg)
    config = to_dict(TrainConfig("perception", "tiny", cfg, DataConfig(), OptimConfig(), RunConfig()))
    del config["model"]["class_prior"], config["model"]["prior_smoothing"]
    save_checkpoint(tmp_path, 1, {"model": model.state_dict()}, {"config": config, "samples": 1}, keep_last=1)
    loaded, loaded_cfg, _ = load_model(tmp_path)
    assert not loaded_cfg.model.class_prior and not hasattr(loaded, "prior_logits")
    x = _inputs(cfg)
    assert torch.equal(loaded.predict(*x.values()), model.eval().predict(*x.values()))


def test_config_rejects_a_non_positive_smoothing():
    with pytest.raises(ValueError, match="prior_smoothing"):
        dataclasses.replace(PerceptionConfig(), prior_smoothing=0.0)
