"""Tokenizers: every preset's layout, forward/backward at reduced size, the bottlenecks, the loss."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from occ4d.core.vocab import Occ3D
from occ4d.models.quantizers import FiniteScalarQuantizer, GaussianBottleneck, VectorQuantizerEMA, code_stats
from occ4d.models.tokenizers import OccTokenizer, TokenizerConfig, balanced_class_weights, tokenizer_loss
from occ4d.models.tokenizers.recipe import PRESETS
from occ4d.models.tokenizers.tokenizer import network_flops, random_crop

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models (tests/conftest.py)


def narrow(cfg: TokenizerConfig, **kw) -> TokenizerConfig:
    """The same layout with few channels (shapes and ratios depend only on the layout)."""
    return replace(cfg, channels=4, latent_dim=8, **kw)


# (latent (t, x, y) of a full-grid clip, compression) per paper-size preset (PROTOCOLS §4a)
EXPECTED = {
    "occworld": (1, (1, 50, 50), 16.0),
    "occsora": (32, (4, 25, 25), 512.0),
    "dome-vae": (1, (1, 25, 25), 64.0),
    "occ4d-512x": (32, (4, 25, 25), 512.0),
    "tiny-vqvae": (1, (1, 50, 50), 16.0),
    "tiny-rvq": (1, (1, 50, 50), 16.0),
    "tiny-vqvae4d": (8, (1, 25, 25), 512.0),
    "tiny-vae": (1, (1, 25, 25), 64.0),
    "tiny-512x": (8, (1, 25, 25), 512.0),
    "tiny-512x-kl": (8, (1, 25, 25), 512.0),
}


def test_preset_layouts_match_the_papers():
    assert set(EXPECTED) == set(PRESETS)
    for name, (frames, latent, ratio) in EXPECTED.items():
        model = OccTokenizer(narrow(PRESETS[name].model))
        assert model.latent_shape(frames) == latent, name
        assert model.compression_ratio(frames) == ratio, name
        assert PRESETS[name].data.frames == frames, name
    assert PRESETS["occworld"].model.codebook_size == 512 and PRESETS["occsora"].model.codebook_size == 512
    assert PRESETS["occworld"].model.expansion * 16 == 128  # class embedding x8, 16 heights folded


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_runs_forward_and_backward_at_reduced_size(name):
    cfg = narrow(PRESETS[name].model, grid=(32, 32, 16), train_crop=0)
    model = OccTokenizer(cfg)
    frames = cfg.fold_frames or (4 if cfg.backbone == "3d" else 2)
    occ = torch.randint(0, 18, (2, frames, 32, 32, 16))
    poses = None
    if cfg.align_poses:  # the ego drives 0.8 m per frame along x
        poses = torch.eye(4, dtype=torch.float64).repeat(2, frames, 1, 1)
        poses[..., 0, 3] = 0.8 * torch.arange(frames, dtype=torch.float64)
    torch.manual_seed(0)
    loss, stats = tokenizer_loss(model, occ, cfg, poses)
    loss.backward()
    assert torch.isfinite(loss) and stats["ce"] > 0
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0
    model.eval()
    q = model.encode(occ, poses)
    logits = model.decode(q.latent, frames)  # an aligned model's logits stay in the middle frame
    assert logits.shape == (2, frames, 32, 32, 16, 18)
    if cfg.bottleneck != "kl":
        codes = (cfg.rvq_depth,) if cfg.bottleneck == "rvq" else ()  # a residual VQ's codes per token
        assert q.indices.shape == (2, *model.latent_shape(frames), *codes)
        torch.testing.assert_close(model.decode_indices(q.indices, frames), logits, atol=1e-4, rtol=1e-4)
    if cfg.align_poses:
        assert model.decode(q.latent, frames, poses=poses).shape == logits.shape


def test_odd_sizes_round_trip():
    cfg = TokenizerConfig(backbone="3d", grid=(36, 20, 16), channels=4, latent_dim=8, channel_mult=(1, 2, 2),
                          spatial_down=2, temporal_down=1, patch=(1, 2, 2), mid_attention=False)
    model = OccTokenizer(cfg).eval()
    occ = torch.randint(0, 18, (1, 6, 36, 20, 16))
    assert model.latent_shape(6) == (3, 5, 3)  # ceil at every halving: 18->9->5, 10->5->3
    assert model(occ).logits.shape == (1, 6, 36, 20, 16, 18)


def test_the_tokenizer_learns_a_scene():
    """A few hundred steps on one grid must reconstruct it far above chance."""
    cfg = TokenizerConfig(grid=(16, 16, 16), channels=16, latent_dim=16, codebook_size=64,
                          channel_mult=(1, 2), spatial_down=1, num_res_blocks=1, mid_attention=False)
    occ = torch.full((1, 1, 16, 16, 16), int(Occ3D.FREE))
    occ[..., :2] = int(Occ3D.DRIVEABLE_SURFACE)
    occ[:, :, 4:8, 4:8, 2:5] = int(Occ3D.CAR)
    occ[:, :, 10:, :, 2:9] = int(Occ3D.MANMADE)
    torch.manual_seed(0)
    model = OccTokenizer(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(100):
        loss, _ = tokenizer_loss(model, occ, cfg)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    assert (model.reconstruct(occ) == occ).float().mean() > 0.97


def test_vq_ema_moves_codes_to_their_cluster_means_and_restarts_dead_codes():
    torch.manual_seed(0)
    vq = VectorQuantizerEMA(dim=2, codebook_size=4, decay=0.0, dead_threshold=0.5)
    z = torch.tensor([[1.0, 0.0], [1.2, 0.0], [-3.0, 5.0], [-3.0, 5.2]]).t().reshape(1, 2, 4)  # (B, C, N)
    vq.train()
    vq(z)  # first batch initialises the codebook from encoder outputs
    out = vq(z)
    assert out.indices.shape == (1, 4)
    # with decay 0 every used code sits exactly at the mean of its members
    for k in out.indices.unique():
        members = z[0, :, out.indices[0] == k]
        torch.testing.assert_close(vq.embed[k], members.mean(1))
    # codes nobody used fell below the threshold and were restarted on batch vectors
    assert bool((vq.cluster_size >= 0.5).all())
    batch = z[0].t()
    unused = [k for k in range(4) if k not in out.indices]
    assert unused and all(any(torch.equal(vq.embed[k], b) for b in batch) for k in unused)
    # commitment loss and straight-through gradient
    zz = z.clone().requires_grad_(True)
    vq.eval()
    res = vq(zz)
    (res.latent.sum() + res.loss).backward()
    assert zz.grad is not None and torch.isfinite(zz.grad).all()
    torch.testing.assert_close(vq.lookup(res.indices), res.latent.detach())


def test_code_stats():
    s = code_stats(torch.tensor([0, 0, 1, 1]), codebook_size=4)
    assert s["usage"] == 0.5 and s["perplexity"] == pytest.approx(2.0)


def test_fsq_codes_are_exact_and_the_gaussian_is_deterministic_in_eval():
    fsq = FiniteScalarQuantizer(dim=6, levels=(5, 5, 3))
    assert fsq.codebook_size == 75
    z = torch.randn(2, 6, 3, 4)
    out = fsq(z)
    assert out.indices.shape == (2, 3, 4) and int(out.indices.max()) < 75
    torch.testing.assert_close(fsq.lookup(out.indices), out.latent)
    kl = GaussianBottleneck(dim=3, kl_weight=1.0).eval()
    zero = torch.zeros(1, 6, 2, 2)
    res = kl(zero)
    assert float(res.loss) == 0.0 and torch.equal(res.latent, torch.zeros(1, 3, 2, 2))
    kl.train()
    torch.manual_seed(0)
    a = kl(zero).latent
    torch.manual_seed(0)
    assert torch.equal(a, kl(zero).latent) and a.abs().sum() > 0  # sampled, from torch's seeded RNG


def test_logvar_offset_shrinks_the_training_noise_and_enters_the_kl():
    zero = torch.zeros(4, 6, 8, 8)  # mean 0, raw log-variance 0
    torch.manual_seed(0)
    plain = GaussianBottleneck(dim=3, kl_weight=1.0).train()(zero)
    torch.manual_seed(0)
    shifted = GaussianBottleneck(dim=3, kl_weight=1.0, logvar_offset=-6.0).train()(zero)
    # the same draw of eps, scaled by exp(-3) instead of 1
    torch.testing.assert_close(shifted.latent, plain.latent * torch.exp(torch.tensor(-3.0)))
    # KL of N(0, e^-6) to N(0, 1) per channel: 0.5 (e^-6 - 1 + 6), summed over 3 channels
    assert float(shifted.loss) == pytest.approx(1.5 * (torch.exp(torch.tensor(-6.0)).item() + 5.0), rel=1e-5)
    assert float(plain.loss) == 0.0


def test_balanced_weights_favour_rare_classes():
    target = torch.tensor([17] * 90 + [4] * 9 + [7])
    w = balanced_class_weights(target, 18)
    assert w[7] > w[4] > w[17]


def test_class_balanced_loss_is_the_weighted_cross_entropy():
    cfg = narrow(TokenizerConfig(backbone="3d", grid=(16, 16, 16), channel_mult=(1, 2), spatial_down=1,
                                 temporal_down=1, mid_attention=False, num_res_blocks=1))
    torch.manual_seed(0)
    model = OccTokenizer(cfg).eval()
    occ = torch.full((1, 2, 16, 16, 16), int(Occ3D.FREE))
    occ[:, :, :, :, :2] = int(Occ3D.DRIVEABLE_SURFACE)
    occ[:, :, 3:5, 3:5, 2:4] = int(Occ3D.PEDESTRIAN)
    plain, _ = tokenizer_loss(model, occ, cfg)
    balanced, stats = tokenizer_loss(model, occ, replace(cfg, class_balanced=True))
    logits = model(occ).logits.reshape(-1, 18)
    target = occ.reshape(-1)
    w = balanced_class_weights(target, 18)
    expected = torch.nn.functional.cross_entropy(logits, target, weight=w)
    torch.testing.assert_close(torch.tensor(stats["ce"]), expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(plain, torch.nn.functional.cross_entropy(logits, target)
                               + model(occ).bottleneck.loss, atol=1e-5, rtol=1e-5)
    assert w[int(Occ3D.PEDESTRIAN)] > 10 * w[int(Occ3D.FREE)]


def test_lovasz_term_is_added_to_the_loss_on_a_voxel_sample():
    from occ4d.models.losses import lovasz_softmax

    cfg = narrow(TokenizerConfig(backbone="2d", grid=(16, 16, 16), channel_mult=(1, 2), spatial_down=1,
                                 mid_attention=False, num_res_blocks=1))
    torch.manual_seed(0)
    model = OccTokenizer(cfg).eval()
    occ = torch.full((1, 1, 16, 16, 16), int(Occ3D.FREE))
    occ[..., :2] = int(Occ3D.DRIVEABLE_SURFACE)
    occ[:, :, 3:5, 3:5, 2:4] = int(Occ3D.PEDESTRIAN)
    plain, _ = tokenizer_loss(model, occ, cfg)
    full, stats = tokenizer_loss(model, occ, replace(cfg, lovasz_weight=0.5, lovasz_voxels=0))
    probs = model(occ).logits.reshape(-1, 18).softmax(-1)
    expected = lovasz_softmax(probs, occ.reshape(-1))
    torch.testing.assert_close(torch.tensor(stats["lovasz"]), expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(full, plain + 0.5 * expected, atol=1e-5, rtol=1e-5)
    torch.manual_seed(1)  # a sample of 1000 of the 4096 voxels: same order of magnitude, a gradient
    sampled, stats = tokenizer_loss(model.train(), occ, replace(cfg, lovasz_weight=1.0, lovasz_voxels=1000))
    sampled.backward()
    assert 0.5 * float(expected.detach()) < stats["lovasz"] < 2.0 * float(expected.detach())
    assert model.class_embed.weight.grad is not None


@pytest.mark.parametrize(("ours", "reference"), [("tiny-512x", "tiny-vqvae4d"), ("occ4d-512x", "occsora")])
def test_our_512x_presets_keep_the_occsora_budget(ours, reference):
    """Same compression, clip length and training samples as the reference design, at no more
    forward FLOPs per clip (the learning rate is part of the recipe, like the losses). Ours holds
    more parameters: its 8x8 patch embedding and its inverse are two large linear maps."""
    a, b = PRESETS[ours], PRESETS[reference]
    frames = b.data.frames
    ma, mb = OccTokenizer(narrow(a.model)), OccTokenizer(narrow(b.model))
    assert ma.latent_shape(frames) == mb.latent_shape(frames)
    assert ma.compression_ratio(frames) == mb.compression_ratio(frames) == 512.0
    assert a.data == b.data
    assert replace(a.optim, lr=b.optim.lr) == b.optim
    assert network_flops(a.model, frames) <= network_flops(b.model, frames)
    assert a.model.codebook_size <= 512 and a.model.latent_dim == b.model.latent_dim


def test_random_crop_stays_on_the_token_lattice():
    occ = torch.arange(40 * 40).reshape(1, 1, 40, 40, 1)
    for seed in range(5):
        torch.manual_seed(seed)
        crop = random_crop(occ, 16, 8)
        assert crop.shape == (1, 1, 16, 16, 1)
        corner = int(crop[0, 0, 0, 0, 0])
        assert (corner // 40) % 8 == 0 and (corner % 40) % 8 == 0


def test_focused_crops_hold_an_object_and_stay_on_the_lattice():
    occ = torch.full((3, 1, 64, 64, 4), int(Occ3D.FREE))
    occ[..., 0] = int(Occ3D.DRIVEABLE_SURFACE)
    occ[0, :, 50, 9, 1] = int(Occ3D.PEDESTRIAN)  # one pedestrian voxel per clip, each elsewhere
    occ[1, :, 3, 60, 1] = int(Occ3D.CAR)
    occ[2, :, 30, 30, 2] = int(Occ3D.BARRIER)
    objects = torch.arange(int(Occ3D.DRIVEABLE_SURFACE))
    torch.manual_seed(0)
    for _ in range(10):
        crop = random_crop(occ, 16, 4, focus=1.0, classes=objects)
        assert crop.shape == (3, 1, 16, 16, 4)
        assert all(bool(torch.isin(c, objects).any()) for c in crop)
    torch.manual_seed(0)
    uniform = sum(bool(torch.isin(random_crop(occ, 16, 4, focus=1e-9, classes=objects)[0], objects).any())
                  for _ in range(20))
    assert uniform < 10  # a uniform 16x16 window of 64x64 mostly misses the single voxel
    with pytest.raises(ValueError):
        TokenizerConfig(crop_focus=1.5)
    with pytest.raises(ValueError):
        TokenizerConfig(crop_focus_by="pixel")  # type: ignore[arg-type]


def test_class_focused_crops_find_the_rare_class_as_often_as_the_common_one():
    occ = torch.full((1, 1, 96, 96, 2), int(Occ3D.FREE))
    occ[0, 0, 60:90, 60:90, 0] = int(Occ3D.CAR)  # 900 car columns
    occ[0, 0, 10, 10, 0] = int(Occ3D.TRAFFIC_CONE)  # one cone column, far from the car
    objects = torch.tensor([int(Occ3D.CAR), int(Occ3D.TRAFFIC_CONE)])

    def cone_share(by_class: bool) -> float:
        torch.manual_seed(0)
        crops = [random_crop(occ, 16, 4, focus=1.0, classes=objects, by_class=by_class) for _ in range(200)]
        return sum(bool((c == int(Occ3D.TRAFFIC_CONE)).any()) for c in crops) / len(crops)

    assert cone_share(by_class=False) < 0.05  # uniform over object voxels: nearly always the car
    assert 0.35 < cone_share(by_class=True) < 0.65  # each present class half the time


def test_residual_vq_refines_with_depth_and_round_trips_its_ids():
    from occ4d.models.quantizers import ResidualVectorQuantizer

    torch.manual_seed(0)
    z = torch.randn(2, 8, 6, 6)
    errors = []
    for depth in (1, 2, 4):
        torch.manual_seed(0)
        rvq = ResidualVectorQuantizer(dim=8, codebook_size=16, depth=depth).train()
        for _ in range(20):  # EMA codebooks settle on z
            out = rvq(z)
        rvq.eval()
        out = rvq(z)
        assert out.indices.shape == (2, 6, 6, depth) and out.indices.max() < 16
        torch.testing.assert_close(rvq.lookup(out.indices), out.latent)  # ids give back the latent
        errors.append(float((out.latent - z).pow(2).mean()))
    assert errors[0] > errors[1] > errors[2]  # each stage quantises what the others left
    # the straight-through latent passes gradients to the encoder
    zz = z.clone().requires_grad_(True)
    out = rvq.train()(zz)
    (out.latent.sum() + out.loss).backward()
    assert zz.grad is not None and zz.grad.abs().sum() > 0


def test_residual_vq_tokenizer_encodes_and_decodes_ids():
    cfg = narrow(TokenizerConfig(backbone="2d", bottleneck="rvq", rvq_depth=3, grid=(16, 16, 16),
                                 channel_mult=(1, 2), spatial_down=1, mid_attention=False, num_res_blocks=1,
                                 codebook_size=8))
    torch.manual_seed(0)
    model = OccTokenizer(cfg).eval()
    occ = torch.full((2, 2, 16, 16, 16), int(Occ3D.FREE))
    occ[..., :2] = int(Occ3D.DRIVEABLE_SURFACE)
    q = model.encode(occ)
    assert q.indices.shape == (2, 2, 8, 8, 3)
    torch.testing.assert_close(model.decode_indices(q.indices), model.decode(q.latent), atol=1e-4, rtol=1e-4)


def test_configs_reject_inconsistent_layouts():
    with pytest.raises(ValueError, match="cannot downsample time"):
        TokenizerConfig(backbone="2d", temporal_down=1)
    with pytest.raises(ValueError, match="train_crop"):
        TokenizerConfig(train_crop=64, mid_attention=True)
    with pytest.raises(ValueError, match="below the number of levels"):
        TokenizerConfig(channel_mult=(1, 2), spatial_down=2)
    with pytest.raises(ValueError, match="expected"):
        model = OccTokenizer(narrow(TokenizerConfig(grid=(8, 8, 16))))
        model.encode(torch.zeros(1, 1, 8, 8, 8, dtype=torch.long))  # Z must match: heights are channels


def test_fsq_bound_penalty_pulls_back_saturated_latents():
    fsq = FiniteScalarQuantizer(dim=3, levels=(5, 5, 5))
    with torch.no_grad():
        fsq.project_in.weight.copy_(torch.eye(3))
        fsq.project_in.bias.zero_()
    small = fsq(torch.full((1, 3, 2, 2), 0.5))
    assert float(small.loss.detach()) == 0.0
    big = torch.full((1, 3, 2, 2), 4.0, requires_grad=True)
    out = fsq(big)
    assert float(out.loss.detach()) == pytest.approx(9.0)  # (4 - 1)^2
    out.loss.backward()
    assert bool((big.grad > 0).all())  # descending the penalty shrinks |u|


def test_block_mode_keeps_each_blocks_most_frequent_class_per_height():
    from occ4d.models.tokenizers.baseline import block_mode

    occ = torch.full((8, 8, 2), int(Occ3D.FREE))
    occ[:3, :4, 0] = int(Occ3D.CAR)  # 12 of the top-left block's 16 columns at height 0
    occ[0, 0, 1] = int(Occ3D.PEDESTRIAN)  # one column of 16: lost to free
    out = block_mode(occ, 4)
    assert bool((out[:4, :4, 0] == int(Occ3D.CAR)).all()) and bool((out[4:, :, 0] == int(Occ3D.FREE)).all())
    assert bool((out[..., 1] == int(Occ3D.FREE)).all())


def test_folded_frames_make_one_latent_frame_per_group():
    cfg = TokenizerConfig(backbone="2d", bottleneck="rvq", rvq_depth=2, grid=(32, 32, 16), channels=4,
                          channel_mult=(1, 2), spatial_down=1, patch=(1, 2, 2), latent_dim=8, codebook_size=16,
                          num_res_blocks=1, mid_attention=False, fold_frames=4)
    model = OccTokenizer(cfg)
    assert cfg.frames_per_latent == 4 and cfg.spatial_stride == 4
    assert model.latent_shape(4) == (1, 8, 8) and model.compression_ratio(4) == 64.0  # 4 frames x 4x4
    occ = torch.randint(0, 18, (2, 4, 32, 32, 16))
    q = model.encode(occ)
    assert q.latent.shape == (2, 8, 1, 8, 8) and q.indices.shape == (2, 1, 8, 8, 2)
    logits = model.decode(q.latent)
    assert logits.shape == (2, 4, 32, 32, 16, 18)
    stem = model.encoder.conv_in.weight  # (C, T*Z*E, 2, 2): every (frame, height, embedding) channel
    assert stem.shape[1] == 4 * 16 * cfg.expansion
    with pytest.raises(ValueError, match="into 4 frames"):
        model.decode(q.latent, frames=8)
    # a clip of two groups makes two latent frames, each decoded from its own group alone
    two = torch.cat([occ, occ.flip(1)], dim=1)  # (2, 8, ...)
    model.eval()
    q2 = model.encode(two)
    assert q2.latent.shape == (2, 8, 2, 8, 8) and model.latent_shape(8) == (2, 8, 8)
    torch.testing.assert_close(q2.latent[:, :, :1], model.encode(occ).latent)
    torch.testing.assert_close(model.decode(q2.latent)[:, 4:], model.decode(model.encode(occ.flip(1)).latent))
    # a short clip's last group repeats its last frame, and decoding drops the copies
    short = model.encode(occ[:, :3])
    padded = torch.cat([occ[:, :3], occ[:, 2:3]], dim=1)
    torch.testing.assert_close(short.latent, model.encode(padded).latent)
    torch.testing.assert_close(model.decode(short.latent, 3), model.decode(short.latent, 4)[:, :3])
    with pytest.raises(ValueError, match="fold_frames"):
        TokenizerConfig(backbone="3d", fold_frames=4)
    with pytest.raises(ValueError, match="align_poses"):
        TokenizerConfig(backbone="2d", align_poses=True)
    aligned = replace(cfg, align_poses=True)  # folded clips may be pose-aligned
    poses = torch.eye(4, dtype=torch.float64).repeat(2, 4, 1, 1)
    loss, _ = tokenizer_loss(OccTokenizer(aligned), occ, aligned, poses)
    assert torch.isfinite(loss)


def test_logit_adjustment_shifts_only_the_evaluated_logits_by_the_enet_log_weights():
    from occ4d.models.tokenizers.tokenizer import enet_log_weights

    cfg = narrow(TokenizerConfig(backbone="2d", grid=(16, 16, 16), channel_mult=(1, 2), spatial_down=1,
                                 mid_attention=False, num_res_blocks=1, bottleneck="kl"))
    torch.manual_seed(0)
    plain = OccTokenizer(cfg)
    adjusted = OccTokenizer(replace(cfg, logit_adjust=0.25))
    adjusted.load_state_dict({**plain.state_dict(), "class_log_weight": torch.zeros(18)})
    freq = torch.full((18,), 0.001)
    freq[int(Occ3D.FREE)] = 0.9
    adjusted.set_class_frequencies(freq * 7.0)  # counts are normalised
    w = enet_log_weights(freq / freq.sum()).float()
    torch.testing.assert_close(adjusted.class_log_weight, w)
    occ = torch.randint(0, 18, (1, 1, 16, 16, 16))
    plain.eval(), adjusted.eval()
    latent = plain.encode(occ).latent
    torch.testing.assert_close(adjusted.decode(latent), plain.decode(latent) - 0.25 * w)
    plain.train(), adjusted.train()
    torch.testing.assert_close(adjusted.decode(latent), plain.decode(latent))  # the loss sees raw logits
    with pytest.raises(ValueError, match="split class frequencies"):
        plain.set_class_frequencies(freq)
    with pytest.raises(ValueError, match="frequencies"):
        adjusted.set_class_frequencies(torch.tensor([1.0, float("nan")]))
    with pytest.raises(ValueError, match="logit_adjust"):
        replace(cfg, logit_adjust=1.5)


def test_split_balanced_loss_weighs_classes_by_the_training_split_not_the_batch():
    import torch.nn.functional as F

    from occ4d.models.tokenizers.tokenizer import enet_log_weights

    cfg = narrow(TokenizerConfig(backbone="2d", grid=(16, 16, 16), channel_mult=(1, 2), spatial_down=1,
                                 mid_attention=False, num_res_blocks=1, bottleneck="kl", kl_weight=0.0,
                                 class_balanced=True, balance_from="split"))
    torch.manual_seed(0)
    model = OccTokenizer(cfg)
    occ0 = torch.zeros((1, 1, 16, 16, 16), dtype=torch.uint8)
    with pytest.raises(ValueError, match="class frequencies"):  # never fitted: no silent plain CE
        tokenizer_loss(model, occ0, cfg)
    freq = torch.full((18,), 0.002)
    freq[int(Occ3D.FREE)] = 0.8
    model.set_class_frequencies(freq)
    occ = torch.full((1, 1, 16, 16, 16), int(Occ3D.FREE), dtype=torch.uint8)
    occ[..., :4, :4, :2] = 4  # a car fills 2% of this batch, far above its split share
    model.eval()  # the latent's mean, so both passes below see the same logits
    loss, stats = tokenizer_loss(model, occ, cfg)
    w = enet_log_weights(freq / freq.sum()).exp().float()
    logits = model(occ).logits.reshape(-1, 18).float()
    expected = F.cross_entropy(logits, occ.long().reshape(-1), weight=w / w.mean())
    assert stats["ce"] == pytest.approx(float(expected), rel=1e-5)
    batch = F.cross_entropy(logits, occ.long().reshape(-1), weight=balanced_class_weights(occ.long(), 18))
    assert abs(stats["ce"] - float(batch)) > 1e-3  # not the per-batch weighting
    with pytest.raises(ValueError, match="class_balanced"):
        replace(cfg, class_balanced=False)
    with pytest.raises(ValueError, match="balance_from"):
        replace(cfg, balance_from="scene")
    plain = OccTokenizer(replace(cfg, balance_from="batch"))
    with pytest.raises(ValueError, match="split class frequencies"):
        plain.set_class_frequencies(freq)


def test_spread_class_embedding_is_the_same_for_every_seed_and_spreads_the_classes():
    from occ4d.models.tokenizers.tokenizer import spread_rows

    cfg = narrow(TokenizerConfig(backbone="2d", grid=(16, 16, 16), channel_mult=(1, 2), spatial_down=1,
                                 mid_attention=False, num_res_blocks=1, embed_init="spread"))
    torch.manual_seed(0)
    a = OccTokenizer(cfg).class_embed.weight.detach()
    torch.manual_seed(1)
    b = OccTokenizer(cfg).class_embed.weight.detach()
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a, spread_rows(18, cfg.expansion))
    torch.testing.assert_close(a.norm(dim=1), torch.full((18,), cfg.expansion ** 0.5))

    def max_cos(w: torch.Tensor) -> float:
        u = torch.nn.functional.normalize(w, dim=1)
        return float((u @ u.t()).fill_diagonal_(-1).max())

    torch.manual_seed(1)
    normal = OccTokenizer(replace(cfg, embed_init="normal")).class_embed.weight.detach()
    assert max_cos(a) < 0.4 < max_cos(normal)  # 18 rows in 8 dims: no pair closer than ~72 degrees
    with pytest.raises(ValueError, match="embed_init"):
        replace(cfg, embed_init="zeros")
