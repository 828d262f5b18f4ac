"""Training objectives as loss modules: ``loss(model, images, labels, generator) -> scalar``."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from lab.diffusion.samplers import predict
from lab.diffusion.schedules import q_sample
from lab.train import shard


class EpsilonLoss(nn.Module):
    """DDPM's simple loss: ‖ε − ε_θ(√ᾱ_t x₀ + √(1−ᾱ_t) ε, t)‖², t uniform."""

    def __init__(self, scheduler):
        super().__init__()
        self.scheduler = scheduler

    def forward(self, model, x0, labels, generator):
        n, T = x0.shape[0], self.scheduler.config.num_train_timesteps
        t = shard.randint(0, T, (n,), generator).to(x0.device)
        noise = shard.randn(x0.shape, generator).to(x0.device)
        return F.mse_loss(predict(model, q_sample(self.scheduler, x0, noise, t), t), noise)


class ScoreMatchingLoss(nn.Module):
    """Denoising score matching over σ levels (NCSN): ½ σ² ‖s_θ(x̃, σ) + (x̃ − x)/σ²‖², level uniform."""

    def __init__(self, sigmas: torch.Tensor):
        super().__init__()
        self.register_buffer("sigmas", sigmas.float())

    def forward(self, model, x0, labels, generator):
        n = x0.shape[0]
        level = shard.randint(0, len(self.sigmas), (n,), generator)
        sigma = self.sigmas.to(generator.device)[level].to(x0.device)
        noise = shard.randn(x0.shape, generator).to(x0.device)
        s = sigma.view(-1, 1, 1, 1)
        score = predict(model, x0 + s * noise, sigma)
        return 0.5 * (s * score + noise).pow(2).flatten(1).sum(1).mean() / x0[0].numel()


class EDMScoreLoss(nn.Module):
    """EDM's training objective for a variance-exploding score model (Karras et al. 2022, Table 1): ln σ ~
    N(P_mean, P_std²) (P_mean = −1.2 + ln(σ_d / 0.5), P_std = 1.2), weight λ(σ) = (σ² + σ_d²) / (σ σ_d)² on ‖D(x + σz, σ) − x‖² per pixel, with the denoiser
    D = x + σ² s_θ — for a preconditioned network (lab.models.precondition) its raw output's target then has
    unit variance at every σ."""

    def __init__(self, sigma_data: float, p_mean: float | None = None, p_std: float = 1.2):
        super().__init__()
        # EDM's P_mean = −1.2 is for σ_d = 0.5 (CIFAR-10 in [-1, 1]); σ scales with the data, so it moves with σ_d
        self.p_mean = -1.2 + math.log(sigma_data / 0.5) if p_mean is None else p_mean
        self.sigma_data, self.p_std = sigma_data, p_std

    def forward(self, model, x0, labels, generator):
        n = x0.shape[0]
        sigma = torch.exp(self.p_mean + self.p_std * shard.randn((n,), generator).to(x0.device))
        noise = shard.randn(x0.shape, generator).to(x0.device)
        s = sigma.view(-1, 1, 1, 1)
        denoised = x0 + s * noise + s ** 2 * predict(model, x0 + s * noise, sigma)
        weight = (s ** 2 + self.sigma_data ** 2) / (s * self.sigma_data) ** 2
        return (weight * (denoised - x0).pow(2)).mean()


class ClassifierLoss(nn.Module):
    """Cross-entropy with random per-sample shifts, rotations and scales (digits are not flipped)."""

    def __init__(self, augment: bool = True):
        super().__init__()
        self.augment = augment

    def forward(self, model, x, labels, generator):
        if self.augment and model.training:
            x = random_affine(x, generator)
        return F.cross_entropy(model(x), labels)


def random_affine(x: torch.Tensor, generator: torch.Generator, max_shift: float = 0.1,
                  max_degrees: float = 12.0, max_scale: float = 0.1) -> torch.Tensor:
    """A different small affine warp for each image (background −1 fills the border)."""
    n = x.shape[0]
    r = shard.rand((n, 4), generator).to(x.device) * 2 - 1
    angle = r[:, 0] * max_degrees * torch.pi / 180
    scale = 1 + r[:, 1] * max_scale
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, r[:, 2] * max_shift * 2], 1),
                         torch.stack([sin, cos, r[:, 3] * max_shift * 2], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x + 1, grid, align_corners=False, padding_mode="zeros") - 1
