"""One place that makes runs reproducible."""
from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch (CPU and CUDA); return a CPU generator seeded the same way."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def randn(shape, seed: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Gaussian noise drawn on the CPU from ``seed``, so CPU and CUDA runs start from the same x_T."""
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed)).to(device)
