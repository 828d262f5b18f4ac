"""Names left of a grid's rows (the counterpart of ``lab.viz.grids.label_columns``)."""
from __future__ import annotations

from PIL import Image, ImageDraw, ImageFont


def label_rows(grid: Image.Image, names: list[str], cell: int, padding: int = 2, width: int = 90) -> Image.Image:
    """``grid`` with ``names`` written left of its rows (cells of ``cell`` px, ``padding`` px apart); the label
    column is at least ``width`` px and wide enough for the longest name, which is never cut."""
    font = ImageFont.load_default(size=max(10, min(14, cell // 3)))
    width = max(width, 8 + int(max((font.getlength(t) for t in names), default=0)))
    out = Image.new("RGB", (grid.width + width, grid.height), "white")
    out.paste(grid.convert("RGB"), (width, 0))
    draw = ImageDraw.Draw(out)
    for i, text in enumerate(names):
        y = padding + i * (cell + padding) + cell // 2 - 7
        draw.text((4, y), text, fill="black", font=font)
    return out
