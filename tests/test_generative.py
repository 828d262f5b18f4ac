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


def test_edm_preconditioning_is_the_closed_form_and_idempotent():
    """unet(x, σ) = (D − x)/σ², D = c_skip x + c_out F(c_in x, ¼ ln σ), F the plain network (diffusers divides
    its output by the timestep it is given, σ^¼); positional or keyword, per sample; wrapping twice = once."""
    from lab.models.precondition import coefficients, precondition_score
    from lab.models.unet import build_unet

    torch.manual_seed(0)
    unet = build_unet("gray28", "score", block_out_channels=(8, 16, 16), attention_head_dim=8).eval()
    x, sigma, sd = torch.randn(3, 1, 28, 28) * 10, torch.tensor([0.05, 1.0, 30.0]), 0.7
    s = sigma.view(-1, 1, 1, 1)
    c_skip = sd ** 2 / (s ** 2 + sd ** 2)
    c_out = s * sd / (s ** 2 + sd ** 2) ** 0.5
    c_in = 1 / (s ** 2 + sd ** 2) ** 0.5
    assert all(torch.allclose(a, b) for a, b in zip(coefficients(s, sd), (c_skip, c_out, c_in)))
    with torch.no_grad():
        network = unet(x * c_in, sigma ** 0.25).sample * s ** 0.25
        by_hand = (c_skip * x + c_out * network - x) / s ** 2
        precondition_score(precondition_score(unet, sd), sd)
        assert torch.allclose(unet(x, sigma).sample, by_hand, rtol=1e-4, atol=1e-4)
        assert torch.allclose(unet(sample=x, timestep=sigma).sample, by_hand, rtol=1e-4, atol=1e-4)
        one = unet(x[:1], 2.0).sample  # one σ for the whole batch, as the samplers pass it
        assert torch.allclose(one, unet(x[:1], torch.tensor([2.0])).sample)


def test_edm_loss_is_zero_for_the_exact_denoiser_and_its_closed_form_for_none():
    """Data: one image c. The exact score (c − x)/σ² gives D = c: loss 0. The zero score (D = x) gives
    E[λ(σ) σ² z²] = E[(σ² + σ_d²)/σ_d²] = (E[σ²] + σ_d²)/σ_d², E[σ²] = exp(2 P_mean + 2 P_std²)."""
    from lab.train.losses import EDMScoreLoss

    loss = EDMScoreLoss(sigma_data=0.5, p_std=0.5)
    assert loss.p_mean == pytest.approx(-1.2)
    c = torch.full((40_000, 1, 1, 1), 0.3)
    exact = loss(lambda x, sigma: (c - x) / sigma.view(-1, 1, 1, 1) ** 2, c, None, torch.Generator().manual_seed(0))
    assert float(exact) == pytest.approx(0.0, abs=1e-6)
    none = loss(lambda x, sigma: torch.zeros_like(x), c, None, torch.Generator().manual_seed(0))
    expected = (math.exp(2 * -1.2 + 2 * 0.5 ** 2) + 0.25) / 0.25
    assert float(none) == pytest.approx(expected, rel=0.05)
    assert EDMScoreLoss(sigma_data=1.0).p_mean == pytest.approx(-1.2 + math.log(2))


@needs_mnist
def test_a_ve_score_model_keeps_its_preconditioning_through_saving(tmp_path):
    """The card records EDM's preconditioning with the data's σ_d and load_diffusion re-applies it; the plain
    diffusers UNet of the same folder, preconditioned by hand, gives the same score. The discrete NCSN model has
    none (the older checkpoints)."""
    from diffusers import UNet2DModel

    from lab.models.precondition import precondition_score
    from lab.models.store import load_diffusion
    from lab.train.config import TrainConfig
    from lab.train.recipes import train_diffusion

    config = TrainConfig(steps=2, batch_size=8, warmup=0, checkpoint_every=2, log_every=1)
    out = train_diffusion("score", tmp_path / "ve", limit=32, config=config, sigma_max=None, sigma_min=0.01,
                          levels=None, continuous=True)
    info = json.loads((out / "training.json").read_text())
    pre = info["score"]["preconditioning"]
    assert pre["name"] == "edm" and 0.8 < pre["sigma_data"] < 1.1 and info["score"]["sigma_max"] > 10
    loaded = load_diffusion(out, "cpu")
    plain = precondition_score(UNet2DModel.from_pretrained(out, subfolder="unet").eval(), pre["sigma_data"])
    x, sigma = torch.randn(2, 1, 28, 28) * 20, torch.tensor([20.0, 0.1])
    with torch.no_grad():
        assert torch.allclose(loaded.unet(x, sigma).sample, plain(x, sigma).sample, atol=1e-5)
    discrete = train_diffusion("score", tmp_path / "ncsn", limit=32, config=config, continuous=False)
    assert "preconditioning" not in json.loads((discrete / "training.json").read_text())["score"]
    assert getattr(load_diffusion(discrete, "cpu").unet, "lab_preconditioning", None) is None
    # the card's tags name the formulation: the VE SDE with EDM's preconditioning, or NCSN's discrete levels
    assert {"score-sde", "edm"} <= set(_card_tags(out)) and "ncsn" not in _card_tags(out)
    assert "ncsn" in _card_tags(discrete) and "edm" not in _card_tags(discrete)


def _card_tags(folder) -> list[str]:
    head = (folder / "README.md").read_text().split("---")[1]
    return [line[2:].strip() for line in head.splitlines() if line.startswith("- ")]


@needs_checkpoints("ddpm-mnist")
def test_bf16_sampling_stays_close_to_fp32():
    from lab.experiments.denoise.config import DenoiseConfig
    from lab.experiments.denoise.sample import initial_noise, load_for, sample

    config = DenoiseConfig(model="ddpm-mnist", steps=10, num_images=4, device="cpu")
    model = load_for(config)
    noise = initial_noise(model, 4, 0, model.device)
    full = sample(model, config, noise).samples
    half = sample(model, DenoiseConfig(**{**config.__dict__, "bf16": True}), noise).samples
    assert not torch.equal(full, half) and (full - half).abs().mean() < 0.05


def test_dpm_solver_samples_an_analytic_gaussian():
    """The probability-flow ODE maps N(μ, (s² + σ_max²) I) onto the data N(μ, s² I); DPM-Solver++ with the exact
    score must land there in 50 steps, and with the same noise give the same samples (it is deterministic)."""
    from lab.diffusion.samplers import dpm_sample

    mu, s = 0.2, 0.2

    def score(x, sigma):
        return -(x - mu) / (s ** 2 + sigma.view(-1, 1, 1, 1) ** 2)

    scheduler = make_score_scheduler(sigma_max=20.0, sigma_min=0.01, levels=100)
    x = mu + torch.randn(4000, 1, 2, 2, generator=torch.Generator().manual_seed(0)) * (20.0 ** 2 + s ** 2) ** 0.5
    out = dpm_sample(score, x, scheduler, num_steps=50, clip=False, snapshots=3)
    assert float(out.samples.mean()) == pytest.approx(mu, abs=0.01)
    assert float(out.samples.var()) == pytest.approx(s ** 2, rel=0.05)
    assert len(out.snapshots) == 3 and out.labels[-1] == "x0"
    assert torch.equal(dpm_sample(score, x, scheduler, num_steps=50, clip=False, snapshots=2).samples, out.samples)
    clipped = dpm_sample(lambda x, sigma: -(x - 3.0) / (s ** 2 + sigma.view(-1, 1, 1, 1) ** 2), x, scheduler, 20)
    assert float(clipped.samples.max()) <= 1.0  # the denoised estimate is held in [-1, 1]


def test_sde_dpm_solver_samples_an_analytic_gaussian_and_is_seeded():
    """The reverse SDE from N(μ, (s² + σ_max²) I) also ends at N(μ, s² I): SDE-DPM-Solver++ with the exact score
    lands there in 50 steps; the same generator seed gives the same samples, another seed other samples."""
    from lab.diffusion.samplers import dpm_sample

    mu, s = -0.3, 0.25

    def score(x, sigma):
        return -(x - mu) / (s ** 2 + sigma.view(-1, 1, 1, 1) ** 2)

    scheduler = make_score_scheduler(sigma_max=20.0, sigma_min=0.01, levels=100)
    x = mu + torch.randn(4000, 1, 2, 2, generator=torch.Generator().manual_seed(0)) * (20.0 ** 2 + s ** 2) ** 0.5

    def run(seed):
        return dpm_sample(score, x, scheduler, num_steps=50, clip=False, snapshots=2, stochastic=True,
                          generator=torch.Generator().manual_seed(seed)).samples

    out = run(1)
    assert float(out.mean()) == pytest.approx(mu, abs=0.01)
    assert float(out.var()) == pytest.approx(s ** 2, rel=0.05)
    assert torch.equal(run(1), out) and not torch.equal(run(2), out)
    ode = dpm_sample(score, x, scheduler, num_steps=50, clip=False, snapshots=2).samples
    assert not torch.allclose(ode, out, atol=1e-3)  # the noise is really injected


@pytest.mark.parametrize("sampler", ["dpm", "dpm-sde"])
def test_dpm_sampler_runs_on_a_score_model_and_counts_its_calls(tiny_score, tiny_ddpm, sampler):
    from lab.experiments.denoise.config import DenoiseConfig
    from lab.experiments.denoise.sample import run_denoise

    config = DenoiseConfig(model=str(tiny_score), sampler=sampler, steps=4, num_images=2, snapshots=3, device="cpu")
    result = run_denoise(config)
    assert result.trajectory.samples.shape == (2, 1, 28, 28) and config.total_steps(10) == 4
    assert torch.equal(run_denoise(config).trajectory.samples, result.trajectory.samples)  # seeded
    with pytest.raises(Exception, match="DPM-Solver"):
        run_denoise(DenoiseConfig(model=str(tiny_ddpm), sampler=sampler, steps=4, num_images=1, device="cpu"))
