"""Song & Ermon's rules for a score model's noise levels and Langevin step size ("Improved Techniques for Training
Score-Based Generative Models", NCSNv2, 2020), as formulas a test can check by hand.

* Technique 1 — σ_1 ≈ the largest Euclidean distance between two training images, so that the widest Gaussian
  covers the whole data set and annealed sampling can reach every mode: ``sigma_max_for``.
* Technique 2 — geometric levels with ratio γ = σ_{i−1}/σ_i chosen so that neighbouring Gaussians overlap:
  Φ(√(2D)(γ − 1) + 3γ) − Φ(√(2D)(γ − 1) − 3γ) ≈ 0.5 for data of dimension D: ``gamma_for`` / ``levels_for``.
* Technique 3 — with T Langevin steps per level and α_i = ε σ_i² / σ_L², the ε that brings
  (1 − ε/σ_L²)^{2T} (γ² − 2ε/(σ_L² − σ_L²(1 − ε/σ_L²)²)) + 2ε/(σ_L² − σ_L²(1 − ε/σ_L²)²)
  closest to 1: ``step_size_for``.
"""
from __future__ import annotations

import math

import torch

from lab.errors import LabError


def sigma_max_for(images: torch.Tensor, max_images: int = 5000, seed: int = 0) -> float:
    """The largest pairwise Euclidean distance between (at most ``max_images`` of) the images, in their own units."""
    x = images.detach().float().reshape(len(images), -1)
    if len(x) < 2:
        raise LabError("σ_max from the data needs at least two images.")
    if len(x) > max_images:
        x = x[torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:max_images]]
    best = 0.0
    for i in range(0, len(x), 1000):
        best = max(best, float(torch.cdist(x[i:i + 1000], x).max()))
    return best


def overlap(gamma: float, dim: int) -> float:
    """Φ(√(2D)(γ − 1) + 3γ) − Φ(√(2D)(γ − 1) − 3γ): technique 2's measure of how much level i's shell of
    radius ≈ √D σ_i lies within reach of level i − 1."""
    phi = lambda z: 0.5 * (1 + math.erf(z / math.sqrt(2)))  # noqa: E731
    a = math.sqrt(2 * dim) * (gamma - 1)
    return phi(a + 3 * gamma) - phi(a - 3 * gamma)


def gamma_for(dim: int, target: float = 0.5) -> float:
    """The ratio γ > 1 at which ``overlap`` equals ``target`` (it falls as γ grows), by bisection."""
    if not 0 < target < 1:
        raise LabError(f"The overlap target must lie in (0, 1), not {target}.")
    low, high = 1.0 + 1e-9, 10.0
    for _ in range(200):
        mid = (low + high) / 2
        low, high = (mid, high) if overlap(mid, dim) > target else (low, mid)
    return (low + high) / 2


def levels_for(dim: int, sigma_max: float, sigma_min: float, target: float = 0.5) -> int:
    """How many geometric levels from σ_max to σ_min technique 2 asks for: ⌈log(σ_max/σ_min) / log γ⌉ + 1."""
    if not sigma_max > sigma_min > 0:
        raise LabError(f"Noise levels need σ_max > σ_min > 0 (got {sigma_max}, {sigma_min}).")
    return math.ceil(math.log(sigma_max / sigma_min) / math.log(gamma_for(dim, target))) + 1


def step_size_objective(eps: float, sigma_min: float, gamma: float, steps: int) -> float:
    """Technique 3's expression (Eq. 4 of NCSNv2): the ratio of the sample variance after a level's T steps to the
    level's own variance; 1 is ideal."""
    s2 = sigma_min ** 2
    keep = (1 - eps / s2) ** (2 * steps)
    inject = 2 * eps / (s2 - s2 * (1 - eps / s2) ** 2)
    return keep * (gamma ** 2 - inject) + inject


def step_size_for(sigmas: torch.Tensor, steps: int) -> float:
    """The ε (in α_i = ε σ_i² / σ_L²) that brings ``step_size_objective`` closest to 1, on a log grid refined
    once (ε < σ_L², where the expression is defined)."""
    sigmas = torch.as_tensor(sigmas, dtype=torch.float64)
    if len(sigmas) < 2:
        raise LabError("The step-size rule needs at least two noise levels.")
    sigma_min = float(sigmas[-1])
    gamma = float(sigmas[0] / sigmas[1])
    s2 = sigma_min ** 2

    def best(grid):
        return min(grid, key=lambda e: abs(step_size_objective(e, sigma_min, gamma, steps) - 1))

    coarse = best([s2 * 10 ** (k / 100) for k in range(-1000, 0)])
    return best([coarse * 10 ** (k / 2000) for k in range(-20, 21) if coarse * 10 ** (k / 2000) < s2])
