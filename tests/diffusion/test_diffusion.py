"""Diffusion core: forward process, targets, loss, samplers and classifier-free guidance."""

from __future__ import annotations

import pytest
import torch

from occ4d.diffusion import SAMPLERS, DiffusionConfig, NoiseSchedule, diffusion_loss, guided, sample


def gaussian_denoiser(schedule: NoiseSchedule, mu: float, sigma: float, shift_if_cond: float = 0.0):
    """The exact (Bayes-optimal) network for data x0 ~ N(mu, sigma^2), elementwise.

    With the condition kept the data mean is ``mu + shift_if_cond``, so guidance can be checked.
    """

    def denoise(x, t, drop):
        abar = schedule.alphas_cumprod[t].to(x).reshape(-1, *([1] * (x.ndim - 1)))
        a, s = abar.sqrt(), (1 - abar).sqrt()
        m = mu + shift_if_cond * (~drop).to(x).reshape(-1, *([1] * (x.ndim - 1)))
        x0_hat = m + a * sigma**2 * (x - a * m) / (abar * sigma**2 + s**2)
        eps_hat = (x - a * x0_hat) / s
        if schedule.config.prediction == "epsilon":
            return eps_hat
        return a * eps_hat - s * x0_hat

    return denoise


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction"])
def test_forward_process_and_targets_match_diffusers(prediction):
    from diffusers import DDPMScheduler

    cfg = DiffusionConfig(prediction=prediction)
    sch = NoiseSchedule(cfg)
    ref = DDPMScheduler(**cfg.scheduler_kwargs())
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(4, 3, 5, generator=g, dtype=torch.float64)
    eps = torch.randn(4, 3, 5, generator=g, dtype=torch.float64)
    t = torch.tensor([0, 10, 500, 999])
    xt = sch.add_noise(x0, eps, t)
    assert torch.allclose(xt, ref.add_noise(x0, eps, t), atol=1e-6)
    target = sch.target(x0, eps, t)
    expected = eps if prediction == "epsilon" else ref.get_velocity(x0, eps, t)
    assert torch.allclose(target, expected, atol=1e-6)
    # The parameterisation inverts: the true target recovers x0 and eps exactly.
    assert torch.allclose(sch.predict_x0(target, xt, t), x0, atol=1e-6)
    assert torch.allclose(sch.predict_eps(target, xt, t), eps, atol=1e-6)


def test_config_validation():
    with pytest.raises(ValueError, match="prediction"):
        DiffusionConfig(prediction="x0")
    with pytest.raises(ValueError, match="cond_dropout"):
        DiffusionConfig(cond_dropout=1.0)
    with pytest.raises(ValueError, match="beta_schedule"):
        DiffusionConfig(beta_schedule="cosine")


def test_loss_is_deterministic_and_respects_weight():
    sch = NoiseSchedule(DiffusionConfig(cond_dropout=0.5))
    net = torch.nn.Linear(6, 6)
    seen_drops = []

    def denoise(x, t, drop):
        seen_drops.append(drop.clone())
        return net(x)

    x0 = torch.randn(64, 2, 6, generator=torch.Generator().manual_seed(1))
    a = diffusion_loss(denoise, x0, sch, generator=torch.Generator().manual_seed(3))["loss"]
    b = diffusion_loss(denoise, x0, sch, generator=torch.Generator().manual_seed(3))["loss"]
    c = diffusion_loss(denoise, x0, sch, generator=torch.Generator().manual_seed(4))["loss"]
    assert a.item() == b.item() and a.item() != c.item()
    # Condition dropout at p = 0.5 drops some but not all of 64 examples.
    assert 0 < int(seen_drops[0].sum()) < 64
    # A zero weight on the second "frame" makes the loss blind to the output there.
    w = torch.tensor([1.0, 0.0]).reshape(1, 2, 1)

    def denoise_bad_second(x, t, drop):
        out = net(x).clone()
        out[:, 1] += 100.0
        return out

    l1 = diffusion_loss(denoise, x0, sch, generator=torch.Generator().manual_seed(3), weight=w)["loss"]
    l2 = diffusion_loss(denoise_bad_second, x0, sch, generator=torch.Generator().manual_seed(3), weight=w)[
        "loss"
    ]
    assert torch.allclose(l1, l2)


def test_loss_of_exact_denoiser_is_below_trivial():
    """The Bayes-optimal denoiser has lower loss than predicting zeros (a broken target would fail)."""
    for prediction in ("epsilon", "v_prediction"):
        sch = NoiseSchedule(DiffusionConfig(prediction=prediction, cond_dropout=0.0))
        x0 = 2.0 + 0.5 * torch.randn(512, 8, generator=torch.Generator().manual_seed(0))
        exact = diffusion_loss(
            gaussian_denoiser(sch, 2.0, 0.5), x0, sch, generator=torch.Generator().manual_seed(1)
        )["loss"]
        zero = diffusion_loss(
            lambda x, t, d: torch.zeros_like(x), x0, sch, generator=torch.Generator().manual_seed(1)
        )["loss"]
        assert exact < 0.6 * zero


# 1000-step DDPM is the slow reference: it runs in CI's separate slow step.
@pytest.mark.parametrize(
    "sampler,steps", [pytest.param("ddpm", 1000, marks=pytest.mark.slow), ("ddim", 100), ("dpm++", 20)]
)
@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction"])
def test_samplers_recover_the_data_distribution(sampler, steps, prediction):
    sch = NoiseSchedule(DiffusionConfig(prediction=prediction))
    x = sample(
        gaussian_denoiser(sch, 3.0, 0.5),
        (4000, 1),
        config=sch.config,
        sampler=sampler,
        steps=steps,
        generator=torch.Generator().manual_seed(0),
    )
    # Few-step integrators shrink the variance (discretisation error); at these step counts the
    # error is a few percent. DPM-Solver++ reaches at 20 steps what DDIM needs 100 for.
    assert abs(x.mean().item() - 3.0) < 0.03
    assert abs(x.std().item() - 0.5) < 0.03


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_sampling_is_deterministic_for_a_seed(sampler):
    sch = NoiseSchedule(DiffusionConfig())
    den = gaussian_denoiser(sch, 0.0, 1.0)
    kw = dict(config=sch.config, sampler=sampler, steps=8)
    a = sample(den, (2, 3, 4), generator=torch.Generator().manual_seed(5), **kw)
    b = sample(den, (2, 3, 4), generator=torch.Generator().manual_seed(5), **kw)
    c = sample(den, (2, 3, 4), generator=torch.Generator().manual_seed(6), **kw)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_guidance_scale_zero_and_one_are_defined_exactly():
    sch = NoiseSchedule(DiffusionConfig())
    calls = []

    def den(x, t, drop):
        calls.append(bool(drop.all()) if drop.all() or not drop.any() else None)
        return gaussian_denoiser(sch, 0.0, 1.0, shift_if_cond=2.0)(x, t, drop)

    def run(scale, fn=den):
        calls.clear()
        return sample(
            fn,
            (500, 1),
            config=sch.config,
            sampler="ddim",
            steps=10,
            guidance_scale=scale,
            generator=torch.Generator().manual_seed(0),
        )

    uncond_only = run(1.0, lambda x, t, d: den(x, t, torch.ones_like(d)))
    cond_only = run(1.0, lambda x, t, d: den(x, t, torch.zeros_like(d)))
    s0 = run(0.0)
    assert calls == [True] * 10  # scale 0: only the unconditional branch, once per step
    s1 = run(1.0)
    assert calls == [False] * 10  # scale 1: only the conditional branch, once per step
    assert torch.equal(s0, uncond_only) and torch.equal(s1, cond_only)
    assert abs(s0.mean().item()) < 0.15 and abs(s1.mean().item() - 2.0) < 0.15
    s3 = run(3.0)
    assert len(calls) == 20  # both branches per step
    assert s3.mean().item() > s1.mean().item() + 1.0  # extrapolates beyond the conditional mean
    # The combination is exactly uncond + s * (cond - uncond) on the output.
    x, t = torch.randn(7, 1), torch.full((7,), 400)
    d = torch.zeros(7, dtype=torch.bool)
    u, c = den(x, t, ~d), den(x, t, d)
    assert torch.allclose(guided(den, 2.5)(x, t), u + 2.5 * (c - u))
    with pytest.raises(ValueError):
        guided(den, -1.0)


def test_bad_steps_are_refused():
    with pytest.raises(ValueError, match="steps"):
        sample(lambda x, t, d: x, (2, 1), config=DiffusionConfig(), steps=0, generator=torch.Generator())
    with pytest.raises(ValueError, match="sampler"):
        sample(
            lambda x, t, d: x, (2, 1), config=DiffusionConfig(), sampler="euler", generator=torch.Generator()
        )
    with pytest.raises(ValueError, match="batch"):
        sample(lambda x, t, d: x, (2,), config=DiffusionConfig(), generator=torch.Generator())
