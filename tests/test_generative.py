"""The seed's generative experiments: NCSNv2's noise-level rules, predictor–corrector sampling, the DCGAN baseline,
FID as training progresses and the training-T sweep."""
from __future__ import annotations

import json
import math

import pytest
import torch
from conftest import needs_checkpoints, needs_mnist

from lab.diffusion import ncsn
from lab.diffusion.samplers import pc_sample
from lab.diffusion.schedules import geometric_sigmas, make_score_scheduler


def test_sigma_max_is_the_largest_pairwise_distance():
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0], [1.0, 1.0]]).view(3, 1, 1, 2)
    assert ncsn.sigma_max_for(x) == pytest.approx(5.0)


def test_overlap_rule_against_a_hand_computation():
    # D = 784, γ = 1.08: √(2D)(γ − 1) = 39.598 · 0.08 = 3.1678; 3γ = 3.24
    # Φ(6.4078) − Φ(−0.0722) = 1.0000 − 0.4712 = 0.5288
    assert ncsn.overlap(1.08, 784) == pytest.approx(0.5288, abs=2e-4)
    gamma = ncsn.gamma_for(784)
    assert ncsn.overlap(gamma, 784) == pytest.approx(0.5, abs=1e-6) and 1.08 < gamma < 1.085
    # levels from σ = 50 to 0.01: ⌈ln(5000) / ln γ⌉ + 1
    assert ncsn.levels_for(784, 50, 0.01) == math.ceil(math.log(5000) / math.log(gamma)) + 1


def test_step_size_rule_against_a_hand_computation():
    # σ_L = 0.1, γ = 2, T = 1, ε = 0.005: s² = 0.01, 1 − ε/s² = 0.5, keep = 0.25,
    # inject = 0.01 / (0.01 − 0.01 · 0.25) = 4/3; value = 0.25 (4 − 4/3) + 4/3 = 2.0
    assert ncsn.step_size_objective(0.005, 0.1, 2.0, 1) == pytest.approx(2.0)
    sigmas = geometric_sigmas(10.0, 0.1, 30)
    eps = ncsn.step_size_for(sigmas, 5)
    gamma = float(sigmas[0] / sigmas[1])
    best = ncsn.step_size_objective(eps, 0.1, gamma, 5)
    for other in (eps * 0.9, eps * 1.1):  # a local optimum of |objective − 1| on the refined grid
        assert abs(best - 1) <= abs(ncsn.step_size_objective(other, 0.1, gamma, 5) - 1) + 1e-9


def test_predictor_corrector_samples_an_analytic_gaussian():
    """Data N(μ, s²I): the VE-perturbed density at σ is N(μ, (s² + σ²) I), score −(x − μ)/(s² + σ²). PC sampling
    with that exact score must end at mean μ and variance s²."""
    mu, s = 0.5, 0.3

    def score(x, sigma):
        return -(x - mu) / (s ** 2 + sigma.view(-1, 1, 1, 1) ** 2)

    scheduler = make_score_scheduler(sigma_max=20.0, sigma_min=0.01, levels=200)
    x = torch.randn(4000, 1, 2, 2, generator=torch.Generator().manual_seed(0)) * 20.0
    out = pc_sample(score, x, scheduler, num_steps=300, corrector_steps=1, snr=0.16,
                    generator=torch.Generator().manual_seed(1), snapshots=2).samples
    assert float(out.mean()) == pytest.approx(mu, abs=0.03)
    assert float(out.var()) == pytest.approx(s ** 2, rel=0.15)


def test_gan_steps_lower_the_generator_loss_against_a_fixed_discriminator():
    from lab.models.gan import Discriminator, Generator, gan_samples
    from lab.train.gan import generator_loss

    torch.manual_seed(0)
    g, d = Generator(image_size=28, channels=1, latent_dim=16, width=8), Discriminator(28, 1, width=8)
    assert 1e4 < sum(p.numel() for p in g.parameters()) and gan_samples(g.eval(), 5).shape == (5, 1, 28, 28)
    g.train()
    for p in d.parameters():
        p.requires_grad_(False)
    opt = torch.optim.Adam(g.parameters(), lr=1e-3)
    z = torch.randn(32, 16, generator=torch.Generator().manual_seed(0))
    before = generator_loss(d, g(z)).item()
    for _ in range(20):
        opt.zero_grad()
        generator_loss(d, g(z)).backward()
        opt.step()
    assert generator_loss(d, g(z)).item() < before - 0.1
    samples = gan_samples(g.eval(), 7, batch_size=3)
    assert samples.shape == (7, 1, 28, 28) and samples.min() >= -1 and samples.max() <= 1
    a = Generator(image_size=64, channels=3, latent_dim=16, width=8)
    assert a(torch.zeros(2, 16)).shape == (2, 3, 64, 64)


@needs_mnist
@needs_checkpoints("classifier-mnist")
def test_fid_during_training_writes_one_value_per_checkpoint(tmp_path):
    from lab.train.config import TrainConfig
    from lab.train.gan import train_gan

    config = TrainConfig(steps=6, batch_size=16, lr=2e-4, warmup=0, ema_decay=None, checkpoint_every=3, log_every=1)
    out = train_gan(tmp_path / "gan", limit=64, config=config, latent_dim=8, width=8, fid_every=3, fid_n=20)
    info = json.loads((out / "training.json").read_text())
    assert [c["step"] for c in info["fid_curve"]] == [3, 6] and all(c["fid"] > 0 for c in info["fid_curve"])
    assert "FID during training" in (out / "README.md").read_text()
    # resuming after the end adds nothing: the curve lives in the checkpoint
    again = train_gan(tmp_path / "gan", limit=64, config=config, latent_dim=8, width=8, fid_every=3, fid_n=20)
    assert json.loads((again / "training.json").read_text())["fid_curve"] == info["fid_curve"]


@needs_mnist
@needs_checkpoints("classifier-mnist")
def test_t_sweep_models_differ_only_in_t(tmp_path):
    from lab.experiments.denoise.config import TSweepConfig
    from lab.experiments.denoise.tsweep import differ_only_in_t, run_t_sweep, sweep_grid

    config = TSweepConfig(timesteps=[10, 100], train_steps=2, batch_size=8, limit=32, n=10)
    result = run_t_sweep(config, tmp_path / "sweep")
    assert [r["T"] for r in result.rows] == [10, 100] and differ_only_in_t(result.folders)
    assert result.rows[0]["alpha_bar_T"] > 0.8 > result.rows[1]["alpha_bar_T"]  # T = 10 never reaches noise
    assert sweep_grid(result).width > 2 * result.grids[0].width
