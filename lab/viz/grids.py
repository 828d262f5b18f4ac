"""Image grids (torchvision ``make_grid``) as PIL images."""
from __future__ import annotations

import torch
from PIL import Image, ImageDraw, ImageFont
from torchvision.utils import make_grid


def to_pil(grid: torch.Tensor) -> Image.Image:
    """A [C,H,W] tensor in [-1, 1] to a PIL image (grey stays grey)."""
    array = grid.detach().float().cpu().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)
    if array.shape[0] == 1:
        return Image.fromarray(array[0].numpy(), mode="L")
    return Image.fromarray(array.permute(1, 2, 0).numpy(), mode="RGB")


def image_grid(images: torch.Tensor, nrow: int, padding: int = 2, scale: int = 1) -> Image.Image:
    """``images`` [N,C,H,W] in [-1, 1], ``nrow`` per row, optionally upscaled (nearest) for display."""
    grid = make_grid(images.detach().float().cpu(), nrow=nrow, padding=padding, pad_value=1.0)
    if images.shape[1] == 1:
        grid = grid[:1]
    pil = to_pil(grid)
    if scale > 1:
        pil = pil.resize((pil.width * scale, pil.height * scale), Image.Resampling.NEAREST)
    return pil


def trajectory_grid(snapshots: list[torch.Tensor], scale: int = 1) -> Image.Image:
    """Rows are images, columns are snapshots from noise (left) to sample (right)."""
    stacked = torch.stack(snapshots, dim=1)  # [N, K, C, H, W]
    n, k = stacked.shape[:2]
    return image_grid(stacked.flatten(0, 1), nrow=k, scale=scale)


def label_columns(grid: Image.Image, labels: list[str], cell: int, padding: int = 2, height: int = 14) -> Image.Image:
    """Add a header row of column labels (e.g. timesteps) above a grid."""
    out = Image.new("RGB", (grid.width, grid.height + height), "white")
    out.paste(grid.convert("RGB"), (0, height))
    draw = ImageDraw.Draw(out)
    font = ImageFont.load_default(size=max(8, min(12, cell // 5)))
    for i, text in enumerate(labels):
        x = padding + i * (cell + padding)
        draw.text((x + 1, 1), text, fill="black", font=font)
    return out
