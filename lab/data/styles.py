"""Style transforms that turn any image set into a target domain for the adaptation experiments.

Each takes uint8 ``[N, C, H, W]`` and a seed and returns uint8 images; the same seed gives the
same output. Sizes of kernels scale with the image so a style looks alike at 28 and 64 px.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import functional as TF

from lab.data.registry import STYLES
from lab.errors import LabError


def _grey(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] grey float [N,1,H,W]."""
    x = x.float() / 255.0
    return x if x.shape[1] == 1 else (x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)


def _back(grey: torch.Tensor, channels: int) -> torch.Tensor:
    out = grey.clamp(0, 1).mul(255).round().to(torch.uint8)
    return out.expand(-1, channels, -1, -1).contiguous() if channels != 1 else out


def _scale(x: torch.Tensor) -> float:
    return x.shape[-1] / 28.0


def sobel_magnitude(x: torch.Tensor, eps: float = 0.0) -> torch.Tensor:
    """Gradient magnitude (Sobel, replicate padding) of float images [N, C, H, W], channels averaged: [N, 1, H, W]."""
    grey = x.mean(1, keepdim=True)
    sobel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], device=x.device, dtype=x.dtype) / 4
    padded = F.pad(grey, (1, 1, 1, 1), mode="replicate")
    gx, gy = F.conv2d(padded, sobel.view(1, 1, 3, 3)), F.conv2d(padded, sobel.t().reshape(1, 1, 3, 3))
    return (gx ** 2 + gy ** 2 + eps).sqrt()


def sketch(x: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Pencil outlines on white paper: gradient magnitude of the smoothed image, inverted, with grain."""
    grey = _grey(x)
    sigma = 0.6 * _scale(x) ** 0.5
    k = 2 * round(2 * sigma) + 1
    mag = sobel_magnitude(TF.gaussian_blur(grey, [k, k], [sigma, sigma]))
    top = mag.flatten(1).quantile(0.99, dim=1).clamp_min(1e-3).view(-1, 1, 1, 1)
    lines = (mag / top).clamp(0, 1) ** 0.8
    g = torch.Generator().manual_seed(seed)
    grain = torch.rand(grey.shape, generator=g) * 0.08
    return _back(1.0 - 0.9 * lines - grain * lines - 0.03 * grain, x.shape[1])


def negative(x: torch.Tensor, seed: int = 0) -> torch.Tensor:
    return 255 - x


def _kernel(x: torch.Tensor) -> int:
    return 3 if x.shape[-1] <= 40 else 5


def bold(x: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Thicker strokes: grey-level dilation."""
    k = _kernel(x)
    return F.max_pool2d(x.float(), k, stride=1, padding=k // 2).to(torch.uint8)


def thin(x: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Thinner strokes: grey-level erosion by a 2×2 element (by 3×3 above 40 px), kept visible."""
    k = 2 if x.shape[-1] <= 40 else 3
    pad = (0, k - 1, 0, k - 1)
    eroded = -F.max_pool2d(F.pad(-x.float(), pad, value=-255.0), k, stride=1)
    # an erosion removes the faintest strokes entirely; re-stretch the contrast per image
    top = eroded.flatten(1).amax(1).clamp_min(1.0).view(-1, 1, 1, 1)
    peak = x.float().flatten(1).amax(1).view(-1, 1, 1, 1)
    return (eroded * peak / top).round().clamp(0, 255).to(torch.uint8)


def _texture(n: int, size: int, g: torch.Generator) -> torch.Tensor:
    """Coloured, textured backgrounds: smooth colour fields plus mid-frequency noise and grain."""
    def field(res: int, channels: int) -> torch.Tensor:
        low = torch.rand(n, channels, res, res, generator=g)
        return F.interpolate(low, size=(size, size), mode="bicubic", align_corners=False)

    colour = field(3, 3)
    mid = field(max(4, size // 4), 3) - 0.5
    grain = torch.rand(n, 1, size, size, generator=g) - 0.5
    return (colour + 0.45 * mid + 0.15 * grain).clamp(0, 1)


def colored(x: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """MNIST-M-like: |background − image| on a random coloured texture (no outside images). Always RGB."""
    g = torch.Generator().manual_seed(seed)
    bg = _texture(len(x), x.shape[-1], g)
    img = x.float() / 255.0
    if img.shape[1] == 1:
        img = img.expand(-1, 3, -1, -1)
    return (bg - img).abs().mul(255).round().clamp(0, 255).to(torch.uint8)


def blur(x: torch.Tensor, seed: int = 0) -> torch.Tensor:
    sigma = 1.0 * _scale(x)
    k = 2 * round(3 * sigma) + 1
    return TF.gaussian_blur(x.float(), [k, k], [sigma, sigma]).round().clamp(0, 255).to(torch.uint8)


_FUNCTIONS = {"plain": lambda x, seed=0: x, "sketch": sketch, "negative": negative, "bold": bold,
              "thin": thin, "colored": colored, "blur": blur}


def apply_style(images: torch.Tensor, style: str, seed: int = 0) -> torch.Tensor:
    if style not in _FUNCTIONS:
        raise LabError(f"Unknown style {style!r}: choose one of {', '.join(STYLES)}.")
    return _FUNCTIONS[style](images, seed=seed)
