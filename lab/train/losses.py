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


class VEScoreLoss(nn.Module):
    """Denoising score matching of the variance-exploding SDE (Song et al. 2021): σ log-uniform in
    [σ_min, σ_max] (every level of the continuum, not a fixed few), weight λ(σ) = σ²:
    ½ ‖σ s_θ(x + σz, σ) + z‖², per pixel."""

    def __init__(self, sigma_min: float, sigma_max: float):
        super().__init__()
        self.log_min, self.log_max = math.log(sigma_min), math.log(sigma_max)

    def forward(self, model, x0, labels, generator):
        n = x0.shape[0]
        u = shard.rand((n,), generator).to(x0.device)
        sigma = torch.exp(self.log_min + u * (self.log_max - self.log_min))
        noise = shard.randn(x0.shape, generator).to(x0.device)
        s = sigma.view(-1, 1, 1, 1)
        score = predict(model, x0 + s * noise, sigma)
        return 0.5 * (s * score + noise).pow(2).flatten(1).sum(1).mean() / x0[0].numel()


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
