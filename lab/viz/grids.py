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
    """``text`` broken at spaces (or after an '=': "sigma=" / "0.05") into lines no wider than ``width``; None when
    a single piece is wider."""
    import re

    pieces = [(piece, " " if i == 0 else "") for word in text.split()
              for i, piece in enumerate(re.findall(r"[^=]*=|[^=]+", word))]
    lines, line = [], ""
    for piece, joiner in pieces:
        trial = f"{line}{joiner}{piece}" if line else piece
        if _width(font, trial) <= width:
            line = trial
        elif _width(font, piece) <= width:
            lines.append(line)
            line = piece
        else:
            return None
    return lines + [line] if line else lines


MIN_CELL = 56        # readable grids: columns narrower than this are enlarged (nearest) before titling
MAX_ENLARGED = 900   # readable grids: enlarged so titles fit upright only while they stay this narrow
PRINT_WIDTH = 1200   # the print-size PNG is at least this wide


def label_columns(grid: Image.Image, labels: list[str], cell: int, padding: int | None = None,
                  max_size: int | None = None, min_size: int | None = None, readable: bool = True) -> Image.Image:
    """A header of column labels above a grid whose columns are ``cell`` px wide, laid out from the measured text
    widths so no two labels ever overlap: one line at the largest font size that fits every label; else labels
    wrapped at spaces (or after '='); else each label turned 90° in its own column.

    ``padding`` (the gap between columns) is read from the grid's width when not given, so grids upscaled after
    ``make_grid`` (their gaps grow with them) are titled in the right places. ``readable``: a grid whose cells are
    narrower than ``MIN_CELL`` is first enlarged by a whole factor (nearest neighbour: pixels stay crisp), and
    enlarged further (while it stays under ``MAX_ENLARGED`` px) when that lets the titles stand upright. Font sizes
    follow the cell (14 px at 56-px cells, up to ``MAX_FONT`` in print-size grids)."""
    out_labels = [str(t) for t in labels]
    count = max(len(out_labels), 1)
    if padding is None:
        gap = (grid.width - count * cell) / (count + 1)
        padding = int(round(gap)) if gap >= 0 else 0
    base = -(-MIN_CELL // cell) if readable and cell < MIN_CELL else 1
    factors = [base] + ([f for f in range(base + 1, base + 4) if grid.width * f <= MAX_ENLARGED] if readable else [])
    for factor in factors:
        layout = _upright(_enlarged(grid, factor), out_labels, cell * factor, padding * factor, max_size, min_size)
        if layout is not None:
            return layout
    grid, cell, padding = _enlarged(grid, base), cell * base, padding * base
    _, min_size = _font_range(cell, max_size, min_size)
    return _rotated_header(grid, out_labels, _font(min_size), min_size, cell, padding)


def _enlarged(grid: Image.Image, factor: int) -> Image.Image:
    return grid if factor == 1 else grid.resize((grid.width * factor, grid.height * factor), Image.Resampling.NEAREST)


MAX_FONT = 28   # px: titles of wide cells (print-size grids, side-by-side grids) stop growing here


def _font_range(cell: int, max_size: int | None, min_size: int | None) -> tuple[int, int]:
    """The title font sizes to try for cells ``cell`` px wide: from a quarter of the cell (14 to ``MAX_FONT`` px)
    down to an eighth (at least 9 px)."""
    top = max_size or min(max(14, cell // 4), MAX_FONT)
    return top, min(min_size or max(9, cell // 8), top)


def _upright(grid: Image.Image, labels: list[str], cell: int, padding: int, max_size, min_size) -> Image.Image | None:
    """The titled grid with upright titles (one line, else wrapped to at most 3), or None when they do not fit."""
    top, bottom = _font_range(cell, max_size, min_size)
    sizes, room = range(top, bottom - 1, -1), cell - 2
    for size in sizes:
        font = _font(size)
        if all(_width(font, t) <= room for t in labels):
            return _header(grid, [[t] for t in labels], font, size, cell, padding)
    for size in sizes:
        font = _font(size)
        wrapped = [_wrap(t, font, room) for t in labels]
        if all(w is not None for w in wrapped) and max(len(w) for w in wrapped) <= 3:
            return _header(grid, wrapped, font, size, cell, padding)
    return None


def print_scale(width: int, min_width: int = PRINT_WIDTH) -> int:
    """The whole factor that makes an image ``width`` px wide at least ``min_width`` px wide."""
    return max(1, -(-min_width // max(width, 1)))


def print_ready(image: Image.Image, min_width: int = PRINT_WIDTH) -> Image.Image:
    """``image`` enlarged by a whole factor (nearest neighbour, pixels stay crisp) to at least ``min_width`` px."""
    factor = print_scale(image.width, min_width)
    return image if factor == 1 else image.resize((image.width * factor, image.height * factor),
                                                  Image.Resampling.NEAREST)


def titled_trajectory(snapshots: list[torch.Tensor], labels: list[str], size: str = "print") -> Image.Image:
    """The trajectory grid with its column titles at print size (≥ ``PRINT_WIDTH`` px, titles drawn at that size)
    or at native size (``size="native"``: one pixel per image pixel, titles as small as they must be)."""
    native = trajectory_grid(snapshots)
    cell = snapshots[0].shape[-1]
    if size == "native":
        return label_columns(native, labels, cell=cell, padding=2, readable=False)
    scale = print_scale(native.width)
    return label_columns(trajectory_grid(snapshots, scale=scale), labels, cell=cell * scale, readable=False)


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
