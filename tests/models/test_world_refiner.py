"""The forecaster's ego-warp skip: warping the history, the ego-warp start, training and forecasting."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from occ4d.core.grid import OCC3D, GridSpec
from occ4d.core.vocab import Occ3D
from occ4d.diffusion import DiffusionConfig, NoiseSchedule, diffusion_loss
from occ4d.models.tokenizers import OccTokenizer, TokenizerConfig
from occ4d.models.world import (
    DiTConfig,
    EgoWarp,
    ForecasterConfig,
    LatentCodec,
    OccForecaster,
    RefinerConfig,
    WarpRefiner,
    warp_grid,
    warp_history,
)
from occ4d.models.world.embed import rebase_traj

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models (tests/conftest.py)

FREE = int(Occ3D.FREE)
CAR = int(Occ3D.CAR)
SHAPE = (16, 16, 4)
GRID = GridSpec("test", SHAPE, (0.4, 0.4, 0.4), (-3.2, -3.2, -1.0))
SMALL = dict(grid=GRID, channels=(8, 8, 8), embed=4, mid_blocks=1)


def clip(seed: int = 0, batch: int = 2):
    """Random labels over a driveable ground, and a forward-driving, turning trajectory."""
    g = torch.Generator().manual_seed(seed)
    occ = torch.randint(0, 18, (batch, 10, *SHAPE), generator=g).to(torch.uint8)
    occ[..., 0] = int(Occ3D.DRIVEABLE_SURFACE)
    steps = torch.rand(batch, 10, 3, generator=g) * torch.tensor([0.8, 0.2, 0.1])
    return occ, rebase_traj(torch.cumsum(steps, 1), 3)


def tokenizer() -> OccTokenizer:
    torch.manual_seed(0)
    cfg = TokenizerConfig(
        grid=SHAPE,
        backbone="2d",
        bottleneck="kl",
        channels=8,
        channel_mult=(1, 2),
        spatial_down=1,
        num_res_blocks=1,
        latent_dim=4,
        expansion=2,
        mid_attention=False,
    )
    return OccTokenizer(cfg).eval()


def forecaster(occ, *, latent: bool = True, mode: str = "frozen") -> OccForecaster:
    codec = LatentCodec(tokenizer(), trainable=mode == "e2e")
    codec.fit([occ[:, :4]])
    dit = DiTConfig(
        latent_channels=4, latent_size=(10, 8, 8), traj_frames=10, patch=(1, 2, 2), hidden=24, depth=1
    )
    torch.manual_seed(1)
    return OccForecaster(
        ForecasterConfig(
            dit=dit,
            diffusion=DiffusionConfig(prediction="v_prediction"),
            mode=mode,
            refiner=RefinerConfig(latent=latent, **SMALL),
        ),
        codec,
    )


def test_warp_history_on_a_hand_built_case():
    """A car seen in two past frames lands where the ego motion puts it in the future frame."""
    past = torch.full((1, 2, *OCC3D.shape), FREE, dtype=torch.uint8)
    past[0, 0, 120, 100, 3] = CAR  # older frame: centre x = 8.2 m, y = 0.2 m in its own frame
    past[0, 1, 120, 100, 3] = CAR  # current frame, same place
    traj = torch.zeros(1, 4, 3)
    traj[0, 0] = torch.tensor([-2.0, 0.0, -math.pi / 2])  # 2 m behind, facing right
    traj[0, 2] = torch.tensor([4.0, 0.0, 0.0])  # future frame 0: 4 m ahead
    traj[0, 3] = torch.tensor([0.0, 0.0, math.pi / 2])  # future frame 1: turned left in place
    warped, inside = warp_history(past, traj, torch.tensor([0, 1]))
    assert warped.shape == (1, 2, 2, *OCC3D.shape) and inside.shape == (1, 2, 2, 200, 200)

    def cars(k, p):
        return (warped[0, k, p] == CAR).nonzero().tolist()

    # Current frame: x 8.2 -> 4.2 m 4 m ahead (index 110); turned left: (0.2, -8.2) (100, 79).
    assert cars(0, 1) == [[110, 100, 3]] and cars(1, 1) == [[100, 79, 3]]
    # Older frame, turned right: its (8.2, 0.2) is (-2 + 0.2, -8.2) in the current frame, so
    # (-5.8, -8.2) 4 m ahead (index 85, 79) and (-8.2, 1.8) after the left turn (79, 104).
    assert cars(0, 0) == [[85, 79, 3]] and cars(1, 0) == [[79, 104, 3]]
    # The older frame's grid covers the current frame's x in [-42, 38) (it stood 2 m behind), so
    # the 4 m-ahead frame's columns from x = 34 m on (index 185) lie outside it.
    assert inside[0, 0, 0, :185].all() and not inside[0, 0, 0, 185:].any()
    # The current frame's grid, 4 m behind the future one, misses its last 4 m (10 columns).
    assert inside[0, 0, 1, :190].all() and not inside[0, 0, 1, 190:].any()
    # Column features move like the labels (the refiner warps features, not labels).
    feats = (past == CAR).any(-1, keepdim=True).float()  # (1, 2, X, Y, 1)
    fw, _ = warp_history(feats, traj, torch.tensor([0, 1]), fill=0.0)
    assert torch.equal(fw[..., 0] > 0, (warped == CAR).any(-1))


@pytest.mark.parametrize("latent", [True, False])
def test_untrained_refiner_is_exactly_ego_warp(latent):
    occ, traj = clip()
    traj = traj * torch.tensor([4.0, 4.0, 5.0])  # large motions: much enters and leaves the grid
    ref = WarpRefiner(RefinerConfig(latent=latent, **SMALL))
    probs = torch.rand(2, 6, *SHAPE, 18) if latent else None
    logits = ref(occ[:, :4], traj, latent_probs=probs)
    assert logits.shape == (2, 6, *SHAPE, 18)
    baseline = EgoWarp(grid=GRID).forecast(occ[:, :4], traj)
    assert torch.equal(logits.argmax(-1).to(torch.uint8), baseline)
    # A subset of future frames gives the same frames.
    steps = torch.tensor([1, 4])
    sub = ref(occ[:, :4], traj, steps, probs[:, steps] if latent else None)
    assert torch.equal(sub, logits[:, steps])


def test_bad_shapes_are_named():
    occ, traj = clip()
    ref = WarpRefiner(RefinerConfig(latent=True, **SMALL))
    probs = torch.rand(2, 6, *SHAPE, 18)
    with pytest.raises(ValueError, match="past_occ"):
        ref(occ[:, :3], traj, latent_probs=probs)
    with pytest.raises(ValueError, match="traj"):
        ref(occ[:, :4], traj[:, :9], latent_probs=probs)
    with pytest.raises(ValueError, match="steps"):
        ref(occ[:, :4], traj, torch.tensor([6]), probs[:, :1])
    with pytest.raises(ValueError, match="needs latent"):
        ref(occ[:, :4], traj)
    with pytest.raises(ValueError, match="latent_probs"):
        ref(occ[:, :4], traj, latent_probs=probs[:, :5])
    with pytest.raises(ValueError, match="takes no latent"):
        WarpRefiner(RefinerConfig(latent=False, **SMALL))(occ[:, :4], traj, latent_probs=probs)
    with pytest.raises(ValueError, match="train_frames"):
        RefinerConfig(train_frames=7)
    fc = forecaster(occ)
    with pytest.raises(ValueError, match="refiner is built for"):
        dataclasses.replace(fc.config, refiner=RefinerConfig(past=5, **SMALL))
    with pytest.raises(ValueError, match="grid"):
        OccForecaster(dataclasses.replace(fc.config, refiner=RefinerConfig()), fc.codec)


def test_diffusion_loss_returns_the_clean_latent_estimate():
    """An exact denoiser's output implies the clean latent itself (the refiner's training input)."""
    sch = NoiseSchedule(DiffusionConfig(prediction="v_prediction"))
    x0 = torch.randn(3, 4, 2, 5, 5)
    seen = {}

    def exact(x_t, t, drop):
        # Recover the noise from x_t (the exact x0 is known here), then return the true target.
        a, s = sch._coeffs(t, x_t)
        seen["noise"] = (x_t - a * x0) / s
        return sch.target(x0, seen["noise"], t)

    out = diffusion_loss(exact, x0, sch, generator=torch.Generator().manual_seed(0))
    assert float(out["loss"]) < 1e-8 and not out["x0"].requires_grad
    assert torch.allclose(out["x0"], x0, atol=1e-4)


def test_gradients_reach_the_refiner_not_the_frozen_tokenizer():
    occ, traj = clip()
    fc = forecaster(occ).train()
    opt = torch.optim.SGD([p for p in fc.parameters() if p.requires_grad], lr=0.1)
    for i in range(2):  # the head starts at zero, so the layers below it see gradient from step 2
        opt.zero_grad()
        loss, stats = fc.loss(occ, traj, torch.Generator().manual_seed(i))
        loss.backward()
        opt.step()
    assert {"diffusion", "refine_ce"} <= set(stats)
    assert all(p.grad is None for p in fc.codec.parameters())
    ref = fc.refiner
    for p in (ref.column, ref.stem.weight, ref.latent.weight, ref.head.weight, ref.mid[0].body[0].weight):
        assert p.grad is not None and p.grad.abs().sum() > 0  # incl. the latent forecast's input


@pytest.mark.parametrize("mode", ["frozen", "e2e"])
def test_training_steps_lower_the_refiner_loss(mode):
    occ, traj = clip(seed=3)
    fc = forecaster(occ, mode=mode).train()
    opt = torch.optim.Adam([p for p in fc.parameters() if p.requires_grad], lr=3e-3)
    ce = []
    for i in range(8):
        loss, stats = fc.loss(occ, traj, torch.Generator().manual_seed(i % 2))
        opt.zero_grad()
        loss.backward()
        opt.step()
        ce.append(stats["refine_ce"])
    assert ce[-1] < ce[0] and ce[-2] < ce[0]


@pytest.mark.parametrize("latent", [True, False])
def test_forecast_is_deterministic_and_starts_at_ego_warp(latent):
    occ, traj = clip()
    fc = forecaster(occ, latent=latent).eval()
    kw = dict(steps=2)
    a = fc.forecast(occ[:, :4], traj, generator=torch.Generator().manual_seed(5), **kw)
    b = fc.forecast(occ[:, :4], traj, generator=torch.Generator().manual_seed(5), **kw)
    assert a.shape == (2, 6, *SHAPE) and a.dtype == torch.uint8 and torch.equal(a, b)
    assert torch.equal(a, EgoWarp(grid=GRID).forecast(occ[:, :4], traj))  # zero-initialised head
    with torch.no_grad():  # a head that outweighs the prior decides the forecast
        fc.refiner.head.bias.view(SHAPE[2], 18)[:, FREE] = 10.0
    c = fc.forecast(occ[:, :4], traj, generator=torch.Generator().manual_seed(5), **kw)
    assert torch.all(c == FREE)
    if not latent:  # nothing is sampled: the seed does not matter
        d = fc.forecast(occ[:, :4], traj, generator=torch.Generator().manual_seed(6), **kw)
        assert torch.equal(c, d)


def test_warp_preset_builds_trains_and_parses_the_ablation(monkeypatch):
    import tyro

    from occ4d.commands.train import TrainArgs, build_config
    from occ4d.models.world import presets as worldmodel

    occ, traj = clip()
    monkeypatch.setattr(worldmodel, "_load_tokenizer", lambda path: tokenizer())
    argv = ["worldmodel", "--preset", "tiny-forecaster-warp", "--data", "d", "--out", "o"]
    cfg = build_config("worldmodel", tyro.cli(TrainArgs, args=argv)).model
    assert cfg.refine and cfg.refine_latent
    ablation = argv + ["--model.refine-latent", "False", "--model.refine-channels", "8", "8", "8"]
    cfg = build_config("worldmodel", tyro.cli(TrainArgs, args=ablation)).model
    assert not cfg.refine_latent and cfg.refine_channels == (8, 8, 8)
    model = worldmodel.build(dataclasses.replace(cfg, depth=1, hidden=24, heads=2, refine_embed=4))
    assert model.refiner is not None and model.refiner.latent is None
    assert model.refiner.config.grid.shape == SHAPE
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    losses = []
    for i in range(6):
        loss, _ = model(occ, traj, torch.Generator().manual_seed(i % 2))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0]
    with pytest.raises(ValueError, match="forecaster option"):
        worldmodel.WorldModelConfig(kind="generator", tokenizer="t", refine=True)


def test_column_embedding_matches_embedding_bag():
    """The column embedding's hand-written backward equals autograd's through embedding_bag."""
    from occ4d.models.world.refiner import _ColumnEmbed

    g = torch.Generator().manual_seed(0)
    cls = torch.randint(0, 5, (64, 3), generator=g).to(torch.uint8)
    w = torch.randn(15, 4, generator=g, requires_grad=True)
    ref = w.detach().clone().requires_grad_()
    out = _ColumnEmbed.apply(cls, w, 5)
    expect = torch.nn.functional.embedding_bag(cls.long() + torch.arange(3) * 5, ref, mode="sum")
    grad = torch.randn(out.shape, generator=g)
    out.backward(grad)
    expect.backward(grad)
    assert torch.allclose(out, expect) and torch.allclose(w.grad, ref.grad, atol=1e-5)


def test_unseen_region_refiner_corrects_only_what_the_current_frame_did_not_see():
    occ, traj = clip(3)
    torch.manual_seed(0)
    cfg = RefinerConfig(**SMALL, latent=False, region="unseen")
    ref = WarpRefiner(cfg)
    torch.nn.init.normal_(ref.head.weight)  # a "trained" head that corrects everywhere it may
    logits = ref(occ[:, :4], traj)  # (B, F, X, Y, Z, C)
    prior = EgoWarp(grid=GRID).forecast(occ[:, :4], traj)
    ones = torch.ones(2 * 6, *SHAPE[:2], 1, dtype=torch.uint8)
    seen = warp_grid(ones, traj[:, 4:].reshape(-1, 3), grid=GRID, fill=0)[..., 0].bool()
    seen = seen.reshape(2, 6, *SHAPE[:2])
    onehot = torch.nn.functional.one_hot(prior.long(), 18).float() * cfg.prior_scale
    assert torch.equal(logits[seen], onehot[seen])  # seen columns: exactly the prior
    assert (~seen).any() and not torch.equal(logits[~seen], onehot[~seen])
    with pytest.raises(ValueError, match="region"):
        RefinerConfig(region="moving")


@pytest.mark.parametrize(
    ("preset", "base"),
    [
        ("tiny-forecaster-motion", "motion-warp"),
        ("tiny-forecaster-fused", "fused-warp"),
    ],
)
def test_motion_presets_build_with_their_prior_and_region_and_train(monkeypatch, preset, base):
    import tyro

    from occ4d.commands.train import TrainArgs, build_config
    from occ4d.models.world import presets as worldmodel

    occ, traj = clip(1)
    monkeypatch.setattr(worldmodel, "_load_tokenizer", lambda path: tokenizer())
    argv = ["worldmodel", "--preset", preset, "--data", "d", "--out", "o"]
    cfg = build_config("worldmodel", tyro.cli(TrainArgs, args=argv)).model
    assert (cfg.refine_base, cfg.refine_region, cfg.refine_balanced) == (base, "unseen", False)
    small = dataclasses.replace(cfg, depth=1, hidden=24, heads=2, refine_embed=4, refine_channels=(8, 8))
    model = worldmodel.build(small)
    rc = model.refiner.config
    assert (rc.base, rc.region) == (base, "unseen") and model.refiner.motion is not None
    loss, stats = model(occ, traj, torch.Generator().manual_seed(0))
    loss.backward()
    assert math.isfinite(stats["refine_ce"]) and model.refiner.head.weight.grad.abs().sum() > 0
