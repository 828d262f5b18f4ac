"""Closed-form checks of the schedules and samplers (no trained model needed)."""
import math

import pytest
import torch

from lab.diffusion.samplers import (
    annealed_langevin,
    ddim_invert,
    ddim_sample,
    ddim_timesteps,
    ddpm_sample,
    snapshot_steps,
)
from lab.diffusion.schedules import geometric_sigmas, make_ddpm_scheduler, q_sample
from lab.errors import LabError

MU, S = 0.3, 0.2  # a 1-D Gaussian "data set" N(MU, S²) inside [-1, 1], so x0 clipping never bites


def test_q_sample_matches_closed_form():
    scheduler = make_ddpm_scheduler()
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    alpha_bar = torch.cumprod(1 - betas, 0)
    x0 = torch.randn(6, 1, 4, 4)
    noise = torch.randn(6, 1, 4, 4)
    t = torch.tensor([0, 1, 10, 250, 500, 999])
    expected = alpha_bar[t].sqrt().view(-1, 1, 1, 1) * x0 + (1 - alpha_bar[t]).sqrt().view(-1, 1, 1, 1) * noise
    assert torch.allclose(q_sample(scheduler, x0, noise, t), expected.float(), atol=1e-5)


def test_q_sample_moments():
    scheduler = make_ddpm_scheduler()
    t = torch.full((200_000,), 300)
    x0 = torch.full((200_000, 1, 1, 1), 0.7)
    xt = q_sample(scheduler, x0, torch.randn_like(x0), t)
    ab = float(scheduler.alphas_cumprod[300])
    assert xt.mean().item() == pytest.approx(math.sqrt(ab) * 0.7, abs=0.01)
    assert xt.var().item() == pytest.approx(1 - ab, rel=0.02)


def gaussian_eps(scheduler):
    """The exact ε-prediction for data N(MU, S²): E[ε | x_t] = √(1−ᾱ)(x_t − √ᾱ μ) / (ᾱ s² + 1 − ᾱ)."""
    def eps(x, t):
        ab = scheduler.alphas_cumprod[t.long()].view(-1, 1, 1, 1).to(x)
        return (1 - ab).sqrt() * (x - ab.sqrt() * MU) / (ab * S**2 + 1 - ab)
    return eps


@pytest.mark.parametrize("sampler", ["ddim", "ddpm"])
def test_samplers_with_exact_model_reach_data_distribution(sampler):
    scheduler = make_ddpm_scheduler()
    x = torch.randn(4000, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    if sampler == "ddim":
        out = ddim_sample(gaussian_eps(scheduler), x, scheduler, num_steps=100).samples
    else:
        # the full chain: with skipped steps DDPM's "fixed small" variance undershoots the spread
        out = ddpm_sample(gaussian_eps(scheduler), x, scheduler, num_steps=1000,
                          generator=torch.Generator().manual_seed(1)).samples
    assert out.mean().item() == pytest.approx(MU, abs=0.01)
    assert out.std().item() == pytest.approx(S, rel=0.06)


def test_ddim_inversion_round_trip_with_exact_model():
    """Inversion evaluates ε one step off, so the round trip error shrinks as the steps get finer."""
    scheduler = make_ddpm_scheduler()
    x0 = MU + S * torch.randn(64, 1, 3, 3, generator=torch.Generator().manual_seed(2))
    errors = {}
    for n in (50, 100):
        latent = ddim_invert(gaussian_eps(scheduler), x0, scheduler, num_steps=n, t0=600)
        back = ddim_sample(gaussian_eps(scheduler), latent, scheduler, num_steps=n, t0=600).samples
        errors[n] = (back - x0).pow(2).mean().item()
        assert (latent - x0).pow(2).mean().item() > 1e-2  # it really went somewhere
    assert errors[50] < 1e-3
    assert errors[100] < errors[50] / 3


def test_annealed_langevin_on_analytic_gaussian_score():
    sigmas = geometric_sigmas(1.0, 0.01, 10)

    def score(x, sigma):  # ∇ log of N(MU, S² + σ²)
        return -(x - MU) / (S**2 + sigma.view(-1, 1, 1, 1) ** 2)

    x = torch.rand(5000, 1, 2, 2, generator=torch.Generator().manual_seed(3)) * 2 - 1
    out = annealed_langevin(score, x, sigmas, steps_per_level=100, step_lr=2e-5,
                            generator=torch.Generator().manual_seed(4)).samples
    assert out.mean().item() == pytest.approx(MU, abs=0.01)
    # after the Tweedie step the variance is S⁴ / (S² + σ_L²), i.e. S² for σ_L ≪ S
    assert out.std().item() == pytest.approx(S**2 / math.sqrt(S**2 + 0.01**2), rel=0.06)


def test_geometric_sigmas():
    s = geometric_sigmas(2.0, 0.02, 10)
    assert s[0] == pytest.approx(2.0) and s[-1] == pytest.approx(0.02)
    ratios = s[1:] / s[:-1]
    assert torch.allclose(ratios, ratios[0].expand_as(ratios), rtol=1e-5)
    with pytest.raises(LabError):
        geometric_sigmas(0.01, 1.0, 10)


def test_snapshots_are_evenly_spaced_and_include_ends():
    assert snapshot_steps(50, 10) == {0, 6, 11, 17, 22, 28, 33, 39, 44, 50}  # round(i · 50/9)
    assert snapshot_steps(1000, 2) == {0, 1000}


def test_ddim_timesteps_stop_at_t0():
    scheduler = make_ddpm_scheduler()
    full = ddim_timesteps(scheduler, 50)
    assert len(full) == 50 and full[0] == 980 and full[-1] == 0
    part = ddim_timesteps(scheduler, 40, t0=400)
    assert part.max() <= 400 and len(part) == 41 and torch.all(part[:-1] > part[1:])


@pytest.mark.parametrize("steps", [0, -5, 1001])
def test_bad_step_counts_are_clear_errors(steps):
    scheduler = make_ddpm_scheduler()
    with pytest.raises(LabError, match="between 1 and 1000"):
        ddim_sample(gaussian_eps(scheduler), torch.zeros(1, 1, 2, 2), scheduler, num_steps=steps)


def test_bad_eta_and_langevin_settings():
    scheduler = make_ddpm_scheduler()
    with pytest.raises(LabError, match="η"):
        ddim_sample(gaussian_eps(scheduler), torch.zeros(1, 1, 2, 2), scheduler, eta=1.5)
    with pytest.raises(LabError, match="step size"):
        annealed_langevin(lambda x, s: x, torch.zeros(1, 1, 2, 2), geometric_sigmas(1, 0.1, 3), step_lr=0)


def test_clipped_ddim_step_uses_the_epsilon_of_the_clipped_x0():
    """With x̂0 clipping, DDIM must step with ε re-derived from the clipped x̂0 (DDIM paper, guided-diffusion):
    keeping the raw ε beside a clipped x̂0 is what made guided samples drift off the data."""
    scheduler = make_ddpm_scheduler()
    x = torch.zeros(1, 1, 2, 2)
    traj = ddim_sample(lambda x, t: torch.full_like(x, 0.5), x, scheduler, num_steps=2, snapshots=3)
    ab = scheduler.alphas_cumprod
    t, prev = 500, 0                                               # 2 "leading" steps of 1000: 500 → 0
    x0 = ((x - (1 - ab[t]).sqrt() * 0.5) / ab[t].sqrt()).clamp(-1, 1)
    assert x0.max() == -1                                          # the raw x̂0 (−1.7) is clipped
    eps = (x - ab[t].sqrt() * x0) / (1 - ab[t]).sqrt()
    expected = ab[prev].sqrt() * x0 + (1 - ab[prev]).sqrt() * eps
    torch.testing.assert_close(traj.snapshots[1], expected, atol=1e-6, rtol=0)
