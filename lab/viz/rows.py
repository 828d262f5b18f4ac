"""Names left of a grid's rows (the counterpart of ``lab.viz.grids.label_columns``)."""
from __future__ import annotations

from PIL import Image, ImageDraw, ImageFont


def label_rows(grid: Image.Image, names: list[str], cell: int, padding: int = 2, width: int = 90) -> Image.Image:
    """``grid`` with ``names`` written left of its rows (cells of ``cell`` px, ``padding`` px apart)."""
    out = Image.new("RGB", (grid.width + width, grid.height), "white")
    out.paste(grid.convert("RGB"), (width, 0))
    draw = ImageDraw.Draw(out)
    font = ImageFont.load_default(size=max(10, min(14, cell // 3)))
    for i, text in enumerate(names):
        y = padding + i * (cell + padding) + cell // 2 - 7
        draw.text((4, y), text[:14], fill="black", font=font)
    return out
