"""The latent-free forecaster: fused-warp plus a refiner trained on the area entering the grid."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from occ4d.core.vocab import Occ3D
from occ4d.models.world import MotionWarp, WarpForecaster, mirror_window, unseen_columns, warp_grid
from occ4d.models.world.motion import motion_config
from occ4d.models.world.refiner import RefinerConfig
from tests.models.test_world_refiner import GRID, SHAPE, SMALL, clip

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models (tests/conftest.py)

FREE = int(Occ3D.FREE)
UNSEEN = dict(**SMALL, latent=False, base="fused-warp", region="unseen")


def fused(occ, traj):
    return MotionWarp(grid=GRID, config=motion_config("fused-warp")).forecast(occ[:, :4], traj)


def test_untrained_forecast_is_exactly_fused_warp():
    occ, traj = clip(2)
    torch.manual_seed(0)
    model = WarpForecaster(RefinerConfig(**UNSEEN)).eval()
    pred = model.forecast(occ[:, :4], traj)
    assert pred.shape == (2, 6, *SHAPE) and pred.dtype == torch.uint8
    assert torch.equal(pred, fused(occ, traj))  # zero-initialised head


def test_a_trained_head_changes_only_the_unseen_columns():
    occ, traj = clip(3)
    torch.manual_seed(0)
    model = WarpForecaster(RefinerConfig(**UNSEEN)).eval()
    with torch.no_grad():  # a head that outweighs the prior everywhere it may act
        model.refiner.head.bias.view(SHAPE[2], 18)[:, int(Occ3D.MANMADE)] = 10.0
    pred = model.forecast(occ[:, :4], traj)
    unseen = unseen_columns(traj.double(), 4, grid=GRID)  # (B, F, X, Y)
    assert unseen.any() and (~unseen).any()
    prior = fused(occ, traj)
    assert torch.equal(pred[~unseen], prior[~unseen])
    assert torch.all(pred[unseen] == int(Occ3D.MANMADE))


def test_loss_sees_only_the_unseen_voxels():
    occ, traj = clip(4)
    torch.manual_seed(0)
    model = WarpForecaster(RefinerConfig(**UNSEEN, balanced=True))
    g = lambda: torch.Generator().manual_seed(7)  # noqa: E731  (same drawn frames each call)
    base, logs = model(occ, traj, g())
    assert logs["voxels"] > 0
    unseen = unseen_columns(traj.double(), 4, grid=GRID)
    seen_changed = occ.clone()
    fut = seen_changed[:, 4:]
    fut[~unseen] = int(Occ3D.CAR)  # rewrite every seen column of every future frame
    same, _ = model(seen_changed, traj, g())
    assert torch.equal(same, base)
    unseen_changed = occ.clone()
    unseen_changed[:, 4:][unseen] = int(Occ3D.CAR)
    other, _ = model(unseen_changed, traj, g())
    assert not torch.equal(other, base)


def test_a_standing_ego_has_nothing_to_learn():
    occ, _ = clip(0)
    traj = torch.zeros(2, 10, 3)
    model = WarpForecaster(RefinerConfig(**UNSEEN))
    loss, logs = model(occ, traj, torch.Generator().manual_seed(0))
    assert logs["voxels"] == 0 and float(loss.detach()) == 0.0
    loss.backward()  # still a graph: the training loop's backward must not fail
    # with Lovász, a standing window logs the same keys as a moving one (the loop averages them)
    lov = WarpForecaster(RefinerConfig(**UNSEEN), lovasz_weight=1.0)
    moving = clip(0)
    _, standing = lov(occ, traj, torch.Generator().manual_seed(0))
    _, driving = lov(*moving, torch.Generator().manual_seed(0))
    assert set(standing) == set(driving) and driving["voxels"] > 0


def test_mirror_window_is_exact_for_the_warp():
    """Warping a mirrored frame along the mirrored path is the mirrored warp (grid centred in y)."""
    occ, traj = clip(5)
    m_occ, m_traj = mirror_window(occ, traj)
    assert torch.equal(mirror_window(m_occ, m_traj)[0], occ)
    for k in range(4, 10):
        a = warp_grid(m_occ[:, 3], m_traj[:, k], grid=GRID, fill=FREE)
        b = warp_grid(occ[:, 3], traj[:, k], grid=GRID, fill=FREE).flip(2)
        assert torch.equal(a, b)
    assert torch.equal(unseen_columns(m_traj.double(), 4, grid=GRID),
                       unseen_columns(traj.double(), 4, grid=GRID).flip(3))


def test_training_steps_lower_the_loss_with_mirroring_and_lovasz():
    occ, traj = clip(6)
    torch.manual_seed(0)
    model = WarpForecaster(RefinerConfig(**UNSEEN, train_frames=0), lovasz_weight=1.0, mirror=True)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for i in range(10):
        loss, logs = model(occ, traj, torch.Generator().manual_seed(i % 2))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        assert "lovasz" in logs
    assert losses[-1] < losses[0] and losses[-2] < losses[0]


def test_bad_configs_and_windows_are_named():
    with pytest.raises(ValueError, match="latent=False"):
        WarpForecaster(RefinerConfig(**SMALL, latent=True))
    with pytest.raises(ValueError, match="lovasz_weight"):
        WarpForecaster(RefinerConfig(**UNSEEN), lovasz_weight=-1.0)
    model = WarpForecaster(RefinerConfig(**UNSEEN))
    occ, traj = clip(0)
    with pytest.raises(ValueError, match="windows"):
        model(occ[:, :8], traj[:, :8], torch.Generator())
    with pytest.raises(ValueError, match="past frames"):
        model.forecast(occ[:, :3], traj)


def test_preset_builds_without_a_tokenizer_and_trains():
    import tyro

    from occ4d.commands.train import TrainArgs, build_config
    from occ4d.models.world import presets as worldmodel

    argv = ["worldmodel", "--preset", "tiny-forecaster-unseen", "--data", "d", "--out", "o"]
    cfg = build_config("worldmodel", tyro.cli(TrainArgs, args=argv)).model
    got = (cfg.kind, cfg.tokenizer, cfg.refine_base, cfg.refine_region)
    assert got == ("refiner", "", "fused-warp", "unseen")
    small = dataclasses.replace(cfg, grid=SHAPE, refine_embed=4, refine_channels=(8, 8, 8))
    model = worldmodel.build(small)
    assert isinstance(model, WarpForecaster) and model.refiner.config.grid.shape == SHAPE
    occ, traj = clip(1)
    loss, logs = model(occ, traj, torch.Generator().manual_seed(0))
    loss.backward()
    assert logs["voxels"] > 0 and model.refiner.head.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="motion baseline"):
        worldmodel.WorldModelConfig(kind="refiner", refine_base="ego-warp", refine_region="unseen")
