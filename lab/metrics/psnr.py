"""Reconstruction error of images in [-1, 1]: MSE and PSNR per image, on the [0, 1] scale."""
from __future__ import annotations

import torch


def psnr_mse(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image (PSNR in dB, MSE) on the [0, 1] scale: MSE = mean((x − y)/2)², PSNR = 10 log10(1 / MSE)
    (capped at 100 dB for identical images)."""
    mse = ((x.float() - y.float()) / 2).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-10)), mse
