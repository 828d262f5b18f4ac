"""Figure and run export: PNG/SVG/PDF through kaleido (needs a Chrome/Chromium), HTML and CSV always."""
from __future__ import annotations

import csv
import io
import logging
import shutil
import zipfile
from functools import lru_cache
from pathlib import Path

log = logging.getLogger(__name__)
STATIC_FORMATS = ("png", "svg", "pdf")
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


@lru_cache(maxsize=1)
def static_export_available() -> bool:
    """kaleido is importable and a Chrome-family browser is on PATH (Debian: apt-get install chromium)."""
    try:
        import kaleido  # noqa: F401
    except ImportError:
        return False
    return any(shutil.which(b) for b in BROWSERS)


STATIC_EXPORT_NOTE = ("PNG/SVG/PDF export of charts needs a Chrome or Chromium browser (Debian/Ubuntu: "
                      "apt-get install chromium; a Space lists it in packages.txt). HTML and CSV are exported.")


def save_figure(fig, stem: Path, formats=("html", "png", "svg", "pdf", "json"), scale: float = 2.0) -> list[Path]:
    """Write a plotly figure as ``stem.<fmt>`` for each format it can; return the files written. ``json`` is the
    figure itself (the History tab rebuilds it with plotly.io.from_json); the static formats are written in one
    browser session."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    unknown = [f for f in formats if f not in (*STATIC_FORMATS, "html", "json")]
    if unknown:
        raise ValueError(f"unknown figure format {unknown[0]}")
    written = []
    static = [f for f in formats if f in STATIC_FORMATS]
    if static and static_export_available():
        import plotly.io as pio

        paths = [stem.with_suffix(f".{fmt}") for fmt in static]
        try:
            pio.write_images([fig] * len(static), paths, format=list(static),
                             scale=[scale if fmt == "png" else 1.0 for fmt in static])
        except Exception as err:  # a browser that fails to start must not lose the run
            log.warning("static export of %s failed: %s", stem, err)
        written += [p for p in paths if p.exists()]
    for fmt in formats:
        path = stem.with_suffix(f".{fmt}")
        if fmt == "html":
            fig.write_html(path, include_plotlyjs="cdn")
        elif fmt == "json":
            path.write_text(fig.to_json())
        else:
            continue
        written.append(path)
    order = {f: i for i, f in enumerate(formats)}
    return sorted(written, key=lambda p: order[p.suffix[1:]])


def complete_figure(fig, stem: Path) -> list[Path]:
    """Write only the formats of a figure that are not there yet: HTML and JSON always, PNG/SVG/PDF (where a browser
    is available) when neither a PNG nor an SVG of it exists."""
    formats = [f for f in ("html", "json") if not stem.with_suffix(f".{f}").exists()]
    if not any(stem.with_suffix(f".{f}").exists() for f in ("png", "svg")):
        formats = ["png", "svg", "pdf", *formats]
    return save_figure(fig, stem, tuple(formats)) if formats else []


def write_csv(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fields = list(dict.fromkeys(k for row in rows for k in row))
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return path


def csv_text(rows: list[dict]) -> str:
    buf = io.StringIO()
    fields = list(dict.fromkeys(k for row in rows for k in row))
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def zip_folder(folder: Path, dest: Path | None = None) -> Path:
    """Zip a run folder (everything in it) to ``dest`` (default: beside it, ``<name>.zip``)."""
    dest = dest or folder.with_suffix(".zip")
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        for file in sorted(folder.rglob("*")):
            if file.is_file() and file != dest:
                zf.write(file, file.relative_to(folder))
    return dest
