"""Noise schedules: diffusers schedulers for DDPM/DDIM, geometric σ levels for score models."""
from __future__ import annotations

import math

import torch
from diffusers import DDIMInverseScheduler, DDIMScheduler, DDPMScheduler, ScoreSdeVeScheduler

from lab.errors import LabError

NUM_TRAIN_TIMESTEPS = 1000


def make_ddpm_scheduler(num_train_timesteps: int = NUM_TRAIN_TIMESTEPS,
                        beta_schedule: str = "linear") -> DDPMScheduler:
    """The training (and ancestral-sampling) scheduler: β linear 1e-4 → 0.02, ε-prediction."""
    return DDPMScheduler(num_train_timesteps=num_train_timesteps, beta_schedule=beta_schedule,
                         beta_start=1e-4, beta_end=0.02, prediction_type="epsilon", clip_sample=True)


def ddim_from(scheduler, clip_sample: bool | None = None) -> DDIMScheduler:
    """A DDIM sampler with the same β schedule as ``scheduler`` (and its x̂0 clipping unless told)."""
    clip = scheduler.config.get("clip_sample", False) if clip_sample is None else clip_sample
    return DDIMScheduler.from_config(scheduler.config, timestep_spacing="leading", set_alpha_to_one=True,
                                     steps_offset=0, clip_sample=clip)


def ddim_inverse_from(scheduler) -> DDIMInverseScheduler:
    """The inverse DDIM step, never clipping x̂0: clipping is not invertible, and the round trip
    x0 → x_t → x0 is only exact (up to the one-step-off ε) without it."""
    return DDIMInverseScheduler.from_config(scheduler.config, timestep_spacing="leading", set_alpha_to_one=True,
                                            steps_offset=0, clip_sample=False)


def check_steps(num_steps: int, scheduler) -> None:
    limit = scheduler.config.num_train_timesteps
    if not 1 <= num_steps <= limit:
        raise LabError(f"Number of sampling steps must be between 1 and {limit}, not {num_steps}.")


def q_sample(scheduler, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """x_t ~ q(x_t | x_0) = N(√ᾱ_t x_0, (1 − ᾱ_t) I), through the scheduler's own ``add_noise``."""
    return scheduler.add_noise(x0, noise, t)


# --- score models ------------------------------------------------------------------------------

def make_score_scheduler(sigma_max: float = 1.0, sigma_min: float = 0.01, levels: int = 10) -> ScoreSdeVeScheduler:
    """Stores the σ levels of a score model in diffusers' VE-SDE scheduler config."""
    return ScoreSdeVeScheduler(num_train_timesteps=levels, sigma_min=sigma_min, sigma_max=sigma_max)


def geometric_sigmas(sigma_max: float, sigma_min: float, levels: int) -> torch.Tensor:
    """σ_1 > σ_2 > … > σ_L, a geometric sequence (NCSN)."""
    if not (sigma_max > sigma_min > 0):
        raise LabError(f"Noise levels need σ_max > σ_min > 0 (got {sigma_max}, {sigma_min}).")
    if levels < 2:
        raise LabError(f"A score model needs at least 2 noise levels, not {levels}.")
    return torch.exp(torch.linspace(math.log(sigma_max), math.log(sigma_min), levels))


def sigmas_of(scheduler: ScoreSdeVeScheduler) -> torch.Tensor:
    c = scheduler.config
    return geometric_sigmas(c.sigma_max, c.sigma_min, c.num_train_timesteps)
