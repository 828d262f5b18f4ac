"""A small DCGAN (Radford, Metz & Chintala 2016): the GAN baseline of the generative experiments.

Generator: z ~ N(0, I) → a dense layer to a (base × base) map → transposed convolutions (×2 each, BatchNorm +
ReLU) → tanh, for 28-px (base 7) or 64-px (base 4) images. Discriminator: strided convolutions (LeakyReLU 0.2,
BatchNorm after the first) → one logit. Both are diffusers ``ModelMixin``/``ConfigMixin`` models, so a trained
generator is saved and reopened with ``save_pretrained`` / ``from_pretrained`` (safetensors).
"""
from __future__ import annotations

from pathlib import Path

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from lab.errors import LabError


def upsamplings(size: int) -> tuple[int, int]:
    """(number of ×2 steps, base side): 28 → (2, 7), 32 → (3, 4), 64 → (4, 4)."""
    k = 0
    while size % 2 == 0 and size // 2 >= 4:
        size //= 2
        k += 1
    if k == 0:
        raise LabError(f"The DCGAN needs an image size of the form b·2^k with k ≥ 1 (28, 32, 64 ...), not {size}.")
    return k, size


def _init(module: nn.Module) -> None:
    """DCGAN's initialisation: N(0, 0.02) weights, BatchNorm scales N(1, 0.02)."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class Generator(ModelMixin, ConfigMixin):
    @register_to_config
    def __init__(self, image_size: int = 28, channels: int = 1, latent_dim: int = 64, width: int = 32):
        super().__init__()
        k, base = upsamplings(image_size)
        widths = [width * 2 ** (k - 1 - i) for i in range(k)] + [channels]
        self.project = nn.Sequential(nn.Linear(latent_dim, widths[0] * base * base, bias=False),
                                     nn.Unflatten(1, (widths[0], base, base)), nn.BatchNorm2d(widths[0]), nn.ReLU(True))
        layers = []
        for i in range(k):
            layers.append(nn.ConvTranspose2d(widths[i], widths[i + 1], 4, 2, 1, bias=i == k - 1))
            layers += [nn.BatchNorm2d(widths[i + 1]), nn.ReLU(True)] if i < k - 1 else [nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.apply(_init)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(self.project(z))

    def latents(self, n: int, seed: int, device=None) -> torch.Tensor:
        """z for ``n`` images, drawn on the CPU from ``seed`` (the same on every device)."""
        z = torch.randn(n, self.config.latent_dim, generator=torch.Generator().manual_seed(seed))
        return z.to(device or next(self.parameters()).device)


class Discriminator(ModelMixin, ConfigMixin):
    @register_to_config
    def __init__(self, image_size: int = 28, channels: int = 1, width: int = 64):
        super().__init__()
        k, base = upsamplings(image_size)
        layers, c = [], channels
        for i in range(k):
            w = width * 2 ** i
            layers.append(nn.Conv2d(c, w, 4, 2, 1, bias=i == 0))
            if i > 0:
                layers.append(nn.BatchNorm2d(w))
            layers.append(nn.LeakyReLU(0.2, True))
            c = w
        self.net = nn.Sequential(*layers, nn.Flatten(), nn.Linear(c * base * base, 1))
        self.apply(_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)


def load_generator(folder: str | Path, device=None) -> Generator:
    """A saved generator (``python -m lab train gan``) in eval mode."""
    from lab.models.store import load_failure, resolve_model_path

    where = resolve_model_path(folder)
    config = Path(where) / "generator" / "config.json" if isinstance(where, Path) else None
    if config is None or not config.exists():
        raise LabError(f"{where} is not a GAN folder: it needs generator/config.json and its safetensors weights "
                       "(as `python -m lab train gan` writes them).")
    try:
        net = Generator.from_pretrained(Path(where) / "generator", low_cpu_mem_usage=False)
    except Exception as err:  # noqa: BLE001 — truncated weights, bad JSON
        raise load_failure(where, f"{where} could not be loaded as a GAN ({type(err).__name__}: {err}).") from err
    net.eval()
    return net.to(device) if device is not None else net


@torch.no_grad()
def gan_samples(generator: Generator, n: int, seed: int = 0, batch_size: int = 500) -> torch.Tensor:
    """``n`` generated images in [-1, 1] on the CPU (z seeded per batch)."""
    out = [generator(generator.latents(min(batch_size, n - i), seed * 7919 + b)).float().clamp(-1, 1).cpu()
           for b, i in enumerate(range(0, n, batch_size))]
    return torch.cat(out) if out else torch.empty(0)
