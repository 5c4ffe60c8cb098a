"""World models at reduced size: build, train a few steps, sample deterministically, baselines."""

from __future__ import annotations

import math

import pytest
import torch

from occ4d.core.grid import OCC3D
from occ4d.core.vocab import Occ3D
from occ4d.diffusion import DiffusionConfig
from occ4d.models.tokenizers import OccTokenizer, TokenizerConfig
from occ4d.models.world import (
    AutoregressiveConfig,
    CopyLast,
    DiTConfig,
    EgoWarp,
    ForecasterConfig,
    GeneratorConfig,
    LatentCodec,
    OccAutoregressive,
    OccDiT,
    OccForecaster,
    OccGenerator,
    Planner,
    PlannerConfig,
    unseen_columns,
    warp_grid,
)
from occ4d.models.world.embed import extend_traj, rebase_traj

FREE = int(Occ3D.FREE)
GRID = (16, 16, 4)


def tiny_tokenizer(seed: int = 0) -> OccTokenizer:
    torch.manual_seed(seed)
    cfg = TokenizerConfig(
        grid=GRID,
        channels=8,
        channel_mult=(1, 2),
        spatial_down=1,
        num_res_blocks=1,
        latent_dim=4,
        codebook_size=16,
        expansion=2,
        mid_attention=False,
    )
    tok = OccTokenizer(cfg)
    # One training-mode pass initialises the VQ codebook from data, as a trained tokenizer's is.
    tok(torch.randint(0, 18, (2, 2, *GRID), generator=torch.Generator().manual_seed(seed)))
    return tok.eval()


def tiny_dit(frames: int) -> DiTConfig:
    return DiTConfig(
        latent_channels=4,
        latent_size=(frames, 8, 8),
        traj_frames=frames,
        patch=(1, 2, 2),
        hidden=48,
        depth=2,
        heads=2,
    )


@pytest.fixture(scope="module")
def data():
    g = torch.Generator().manual_seed(0)
    occ = torch.randint(0, 18, (2, 10, *GRID), generator=g).to(torch.uint8)
    occ[:, :, :, :, 0] = int(Occ3D.DRIVEABLE_SURFACE)
    traj = torch.cumsum(torch.rand(2, 10, 3, generator=g) * torch.tensor([2.0, 0.2, 0.05]), 1)
    return occ, rebase_traj(traj, 3)


def codec_for(occ, trainable=False):
    codec = LatentCodec(tiny_tokenizer(), trainable=trainable)
    codec.fit([occ[:, :4]])
    return codec


def train_steps(model, loss_fn, steps=8, lr=3e-3):
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    losses = []
    for i in range(steps):
        loss, _ = loss_fn(torch.Generator().manual_seed(i % 2))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


def test_dit_starts_at_zero_and_checks_shapes():
    dit = OccDiT(tiny_dit(4))
    x = torch.randn(2, 4, 4, 8, 8)
    out = dit(x, torch.tensor([3, 900]), traj=torch.zeros(2, 4, 3))
    assert out.shape == x.shape and torch.all(out == 0)  # adaLN-Zero: the network starts at 0
    with pytest.raises(ValueError, match="latents"):
        dit(torch.randn(2, 4, 3, 8, 8), torch.tensor([1, 2]), traj=torch.zeros(2, 4, 3))
    with pytest.raises(ValueError, match="multiple of 6"):
        DiTConfig(hidden=50, heads=2)
    # Odd latent sizes are padded to the patch and cropped back.
    odd = OccDiT(
        DiTConfig(
            latent_channels=3,
            latent_size=(2, 5, 7),
            traj_frames=4,
            patch=(1, 2, 2),
            hidden=24,
            depth=1,
            heads=2,
            context=False,
        )
    )
    assert odd(torch.randn(1, 3, 2, 5, 7), torch.tensor([5]), traj=torch.zeros(1, 4, 3)).shape == (
        1,
        3,
        2,
        5,
        7,
    )


def test_generator_trains_and_samples_deterministically(data):
    occ, traj = data
    gen = OccGenerator(GeneratorConfig(dit=tiny_dit(4), frames=4), codec_for(occ))
    losses = train_steps(gen, lambda g: gen.loss(occ[:, :4], traj[:, :4], g))
    assert losses[-1] < losses[0]
    gen.eval()
    kw = dict(sampler="ddim", steps=3, frames=4)
    a = gen.generate(traj[:, :4], generator=torch.Generator().manual_seed(7), **kw)
    b = gen.generate(traj[:, :4], generator=torch.Generator().manual_seed(7), **kw)
    c = gen.generate(traj[:, :4], generator=torch.Generator().manual_seed(8), **kw)
    assert a.shape == (2, 4, *GRID) and a.dtype == torch.uint8
    assert torch.equal(a, b) and not torch.equal(a, c)
    # The trajectory is a real input: a different one changes the sample from the same noise.
    other = gen.generate(torch.zeros(2, 4, 3), generator=torch.Generator().manual_seed(7), **kw)
    assert not torch.equal(a, other)


def test_generator_sliding_window_keeps_known_frames(data):
    occ, traj = data
    gen = OccGenerator(GeneratorConfig(dit=tiny_dit(4), frames=4), codec_for(occ)).eval()
    train_steps(gen, lambda g: gen.loss(occ[:, :4], traj[:, :4], g), steps=2)
    long = gen.generate(traj[:, :3], frames=9, generator=torch.Generator().manual_seed(0), steps=2)
    assert long.shape == (2, 9, *GRID)
    ctx = torch.randn(2, 4, 4, 8, 8)
    z = gen.sample_latents(
        rebase_traj(traj[:, :4], 0), generator=torch.Generator().manual_seed(0), steps=2, context=ctx, known=2
    )
    assert torch.equal(z[:, :, :2], ctx[:, :, -2:])
    with pytest.raises(ValueError, match="context=True"):
        GeneratorConfig(
            dit=DiTConfig(
                latent_channels=4,
                latent_size=(4, 8, 8),
                traj_frames=4,
                patch=(1, 2, 2),
                hidden=48,
                depth=1,
                heads=2,
                context=False,
            ),
            frames=4,
        )


@pytest.mark.parametrize("mode", ["frozen", "e2e"])
def test_forecaster_modes(data, mode):
    occ, traj = data
    codec = codec_for(occ, trainable=mode == "e2e")
    before = {k: v.clone() for k, v in codec.tokenizer.state_dict().items()}
    fc = OccForecaster(
        ForecasterConfig(dit=tiny_dit(10), mode=mode, diffusion=DiffusionConfig(prediction="v_prediction")),
        codec,
    )
    fc.train()
    losses = train_steps(fc, lambda g: fc.loss(occ, traj, g))
    assert losses[-1] < losses[0]
    after = codec.tokenizer.state_dict()
    changed = any(not torch.equal(before[k], after[k]) for k in before)
    assert changed == (mode == "e2e")  # frozen: not even the VQ codebook's EMA buffers move
    fc.eval()
    a = fc.forecast(occ[:, :4], traj, generator=torch.Generator().manual_seed(1), steps=3)
    b = fc.forecast(occ[:, :4], traj, generator=torch.Generator().manual_seed(1), steps=3)
    assert a.shape == (2, 6, *GRID) and torch.equal(a, b)
    with pytest.raises(ValueError, match="trainable"):
        OccForecaster(ForecasterConfig(dit=tiny_dit(10), mode="e2e"), codec_for(occ, trainable=False))


def test_forecaster_e2e_distill_trains_a_copy_of_the_encoder(data):
    """``e2e-distill``: the context comes from a trained copy of the encoder (no decoder), the
    tokenizer stays frozen, the distillation term joins the loss, and the untrained copy encodes
    exactly as the frozen encoder does."""
    occ, traj = data
    codec = codec_for(occ)
    before = {k: v.clone() for k, v in codec.tokenizer.state_dict().items()}
    fc = OccForecaster(ForecasterConfig(dit=tiny_dit(10), mode="e2e-distill", distill_weight=2.0), codec)
    assert not hasattr(fc.past_encoder, "decoder") and hasattr(codec.tokenizer, "decoder")
    fc.eval()
    assert torch.equal(fc.encode_past(occ[:, :4]), codec.encode(occ[:, :4])[0])
    student = {k: v.clone() for k, v in fc.past_encoder.state_dict().items()}
    fc.train()
    keys = [[f"{b}-{t}" for t in range(10)] for b in range(2)]
    _, stats = fc.loss(occ, traj, torch.Generator().manual_seed(0), keys)
    assert "distill" in stats and stats["distill"] >= 0
    losses = train_steps(fc, lambda g: fc.loss(occ, traj, g, keys))
    assert losses[-1] < losses[0]
    assert all(torch.equal(before[k], v) for k, v in codec.tokenizer.state_dict().items())
    moved = [k for k, v in fc.past_encoder.state_dict().items() if not torch.equal(student[k], v)]
    assert any(k.startswith("encoder.") for k in moved)
    fc.eval()
    a = fc.forecast(occ[:, :4], traj, generator=torch.Generator().manual_seed(1), steps=3)
    with torch.no_grad():
        for p in fc.past_encoder.encoder.parameters():
            p.add_(torch.randn_like(p))
    b = fc.forecast(occ[:, :4], traj, generator=torch.Generator().manual_seed(1), steps=3)
    assert a.shape == (2, 6, *GRID) and not torch.equal(a, b)  # the trained copy gives the context
    with pytest.raises(ValueError, match="distill_weight"):
        ForecasterConfig(dit=tiny_dit(10), mode="e2e-distill", distill_weight=-1.0)


def test_autoregressive_trains_and_rolls_out(data):
    occ, traj = data
    ar = OccAutoregressive(
        AutoregressiveConfig(token_size=(8, 8), vocab_size=16, hidden=32, depth=2, heads=2), codec_for(occ)
    )
    losses = train_steps(ar, lambda g: ar.loss(occ, traj), steps=10)
    assert losses[-1] < losses[0]
    out = ar.forecast(occ[:, :4], traj)
    assert out.shape == (2, 6, *GRID) and torch.equal(out, ar.forecast(occ[:, :4], traj))
    # Causality: the first predicted frame does not depend on trajectory rows after it.
    t2 = traj.clone()
    t2[:, 6:] += 5.0
    ids = ar.tokens(occ[:, :4])
    assert torch.equal(ar.logits(ids, traj[:, :5]), ar.logits(ids, t2[:, :5]))


def test_planner_learns(data):
    occ, traj = data
    pl = Planner(PlannerConfig(channels=8, levels=2))
    losses = train_steps(pl, lambda g: pl.loss(occ[:, :4], traj), steps=15, lr=1e-2)
    assert losses[-1] < 0.5 * losses[0]
    plan = pl.plan(occ[:, :4], traj[:, :4])
    assert plan.shape == (2, 10, 3) and torch.equal(plan[:, :4], traj[:, :4].float())


def test_warp_grid_on_a_hand_built_grid():
    occ = torch.full((1, *OCC3D.shape), FREE, dtype=torch.uint8)
    occ[0, 120, 100, 3] = int(Occ3D.CAR)  # centre x = 8.2 m, y = 0.2 m
    # 4 m forward: the car is 4 m closer, 10 voxels lower in x.
    fwd = warp_grid(occ, torch.tensor([[4.0, 0.0, 0.0]]))
    assert fwd[0, 110, 100, 3] == int(Occ3D.CAR) and (fwd != FREE).sum() == 1
    # Turned 90 degrees left in place: what was ahead is now on the right (negative y).
    left = warp_grid(occ, torch.tensor([[0.0, 0.0, math.pi / 2]]))
    idx = (left[0] != FREE).nonzero()
    assert idx.tolist() == [[100, 79, 3]]  # x = 0.2 m, y = -8.2 m
    # Moving 50 m ahead leaves nothing known: everything is free.
    assert torch.all(warp_grid(occ, torch.tensor([[50.0, 0.0, 0.0]])) == FREE)


def test_warp_grid_extrudes_the_ground_into_the_area_entering_the_grid():
    occ = torch.full((1, *OCC3D.shape), FREE, dtype=torch.uint8)
    road, walk = int(Occ3D.DRIVEABLE_SURFACE), int(Occ3D.SIDEWALK)
    occ[0, :, 90:110, 0] = road  # a road along x, sidewalks beside it, a car and a pole at the far edge
    occ[0, :, 85:90, 1] = walk
    occ[0, 199, 100, 1:3] = int(Occ3D.CAR)
    occ[0, 199, 80, 0:5] = int(Occ3D.MANMADE)
    pose = torch.tensor([[4.0, 0.0, 0.0]])  # 10 voxels forward: x 190..199 enter the grid
    plain = warp_grid(occ, pose)
    ground = (road, walk, int(Occ3D.OTHER_FLAT), int(Occ3D.TERRAIN))
    ext = warp_grid(occ, pose, extrude=ground)
    assert torch.equal(ext[0, :190], plain[0, :190])  # what was seen is unchanged
    assert torch.all(plain[0, 190:] == FREE)
    # the new rows repeat the border row's ground; the car and the pole there are not smeared on
    assert torch.all(ext[0, 190:, 90:110, 0] == road) and torch.all(ext[0, 190:, 85:90, 1] == walk)
    assert torch.all(ext[0, 190:, :, 2:] == FREE) and torch.all(ext[0, 190:, 80] == FREE)
    assert int((ext[0, 190:] != FREE).sum()) == 10 * 25


def test_unseen_columns_are_the_area_entering_the_grid():
    traj = torch.zeros(2, 10, 3)
    traj[0, 4:, 0] = torch.arange(1, 7) * 0.8  # 2 voxels forward per frame
    traj[1, 4:, 2] = math.pi / 2  # turned left in place: nothing new
    traj[1, 9, 1] = 8.0  # ... then 20 voxels to the left
    unseen = unseen_columns(traj, 4)
    assert unseen.shape == (2, 6, 200, 200) and unseen.dtype == torch.bool
    for k in range(6):
        rows = 2 * (k + 1)
        assert unseen[0, k, -rows:].all() and not unseen[0, k, :-rows].any(), k
    assert not unseen[1, :5].any()
    # frame 9 faces +y of the current frame from y = 8 m: its last 20 rows (ahead) are unseen
    assert unseen[1, 5, -20:].all() and not unseen[1, 5, :-20].any()
    with pytest.raises(ValueError, match="traj"):
        unseen_columns(traj[:, :4], 4)


def test_baselines_share_the_forecast_call():
    past = torch.full((1, 4, *OCC3D.shape), FREE, dtype=torch.uint8)
    past[0, -1, 120, 100, 3] = int(Occ3D.CAR)
    traj = torch.zeros(1, 10, 3)
    traj[0, 4:, 0] = torch.arange(1, 7) * 2.0  # 2 m per step forward
    copy = CopyLast().forecast(past, traj)
    assert copy.shape == (1, 6, *OCC3D.shape) and torch.equal(copy[0, 5], past[0, -1])
    warp = EgoWarp().forecast(past, traj)
    for k in range(6):
        assert warp[0, k, 120 - 5 * (k + 1), 100, 3] == int(Occ3D.CAR)


def test_trajectory_helpers():
    traj = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 0.0, math.pi / 2], [1.0, 1.0, math.pi / 2]]])
    r = rebase_traj(traj, 1)
    assert torch.allclose(r[0, 1], torch.zeros(3), atol=1e-6)
    assert torch.allclose(r[0, 2], torch.tensor([1.0, 0.0, 0.0]), atol=1e-6)
    assert torch.allclose(r[0, 0], torch.tensor([0.0, 1.0, -math.pi / 2]), atol=1e-6)
    ext = extend_traj(torch.tensor([[[0.0, 0.0, 0.0], [2.0, 0.0, 0.0]]]), 5)
    assert torch.allclose(ext[0, :, 0], torch.tensor([0.0, 2.0, 4.0, 6.0, 8.0]))


def test_latent_cache_matches_direct_encoding(data):
    occ, _ = data
    codec = codec_for(occ)
    keys = [[f"s{b}/f{t}" for t in range(10)] for b in range(2)]
    direct, _ = codec.encode(occ)
    cached, _ = codec.encode(occ, keys)
    assert torch.allclose(direct, cached, atol=1e-6) and len(codec._cache) == 20
    again, _ = codec.encode(occ[:, 2:5], [row[2:5] for row in keys])  # served from the cache
    assert torch.allclose(again, direct[:, :, 2:5], atol=1e-6) and len(codec._cache) == 20
    assert torch.equal(codec.token_ids(occ, keys), codec.tokenizer.encode(occ).indices)


def test_every_engine_preset_builds(monkeypatch, data):
    """Each world-model preset builds (paper sizes at depth 1) on a small stand-in tokenizer."""
    import dataclasses

    from occ4d.models.world import presets as worldmodel

    occ, traj = data
    monkeypatch.setattr(worldmodel, "_load_tokenizer", lambda path: tiny_tokenizer())
    for name, preset in worldmodel.PRESETS.items():
        # the refiner kind has no tokenizer to take its grid from: give it the test clip's
        cfg = dataclasses.replace(preset.model, depth=1, num_classes=18, grid=tuple(occ.shape[2:]))
        model = worldmodel.build(cfg)
        if cfg.kind == "planner":
            assert model(occ[:, : cfg.past], traj[:, : cfg.past]).shape == (2, cfg.future, 3), name
            continue
        n = cfg.clip_frames
        clip = occ[:, :1].expand(-1, n, -1, -1, -1)
        rows = torch.zeros(2, n, 3)
        loss, stats = model(clip, rows, torch.Generator().manual_seed(0))
        assert torch.isfinite(loss), name
    with pytest.raises(ValueError, match="tokenizer"):
        worldmodel.WorldModelConfig(kind="generator", tokenizer="")
