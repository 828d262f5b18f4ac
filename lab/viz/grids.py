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


def _font(size: int):
    return ImageFont.load_default(size=size)


def _width(font, text: str) -> float:
    return font.getlength(text)


def _wrap(text: str, font, width: float) -> list[str] | None:
    """``text`` broken at spaces into lines no wider than ``width``; None when a single word is wider."""
    lines, line = [], ""
    for word in text.split():
        trial = f"{line} {word}".strip()
        if _width(font, trial) <= width:
            line = trial
        elif _width(font, word) <= width:
            lines.append(line)
            line = word
        else:
            return None
    return lines + [line] if line else lines


def label_columns(grid: Image.Image, labels: list[str], cell: int, padding: int = 2, max_size: int = 14,
                  min_size: int = 9) -> Image.Image:
    """A header of column labels above a grid whose columns are ``cell`` px wide (plus ``padding``), laid out from
    the measured text widths so no two labels ever overlap: one line at the largest font size that fits every
    label; else labels wrapped at spaces; else each label turned 90° in its own column."""
    room = cell - 2
    out_labels = [str(t) for t in labels]
    for size in range(max_size, min_size - 1, -1):
        font = _font(size)
        if all(_width(font, t) <= room for t in out_labels):
            return _header(grid, [[t] for t in out_labels], font, size, cell, padding)
    font = _font(min_size)
    wrapped = [_wrap(t, font, room) for t in out_labels]
    if all(w is not None for w in wrapped) and max(len(w) for w in wrapped) <= 3:
        return _header(grid, wrapped, font, min_size, cell, padding)
    return _rotated_header(grid, out_labels, font, min_size, cell, padding)


def _header(grid: Image.Image, lines: list[list[str]], font, size: int, cell: int, padding: int) -> Image.Image:
    line_h = size + 3
    height = line_h * max(len(block) for block in lines) + 4
    out = Image.new("RGB", (grid.width, grid.height + height), "white")
    out.paste(grid.convert("RGB"), (0, height))
    draw = ImageDraw.Draw(out)
    for i, block in enumerate(lines):
        left = padding + i * (cell + padding)
        for j, text in enumerate(block):
            x = left + (cell - _width(font, text)) / 2
            draw.text((x, 2 + j * line_h), text, fill="black", font=font)
    return out


def _rotated_header(grid: Image.Image, labels: list[str], font, size: int, cell: int, padding: int) -> Image.Image:
    height = int(max(_width(font, t) for t in labels)) + 6
    out = Image.new("RGB", (grid.width, grid.height + height), "white")
    out.paste(grid.convert("RGB"), (0, height))
    for i, text in enumerate(labels):
        strip = Image.new("RGB", (height, size + 4), "white")
        ImageDraw.Draw(strip).text((2, 1), text, fill="black", font=font)
        strip = strip.rotate(90, expand=True)
        left = padding + i * (cell + padding) + (cell - strip.width) // 2
        out.paste(strip, (max(0, left), 0))
    return out
