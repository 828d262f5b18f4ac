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


def save_figure(fig, stem: Path, formats=("html", "png", "svg", "pdf"), scale: float = 2.0) -> list[Path]:
    """Write a plotly figure as ``stem.<fmt>`` for each format it can; return the files written."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in formats:
        path = stem.with_suffix(f".{fmt}")
        if fmt == "html":
            fig.write_html(path, include_plotlyjs="cdn")
        elif fmt in STATIC_FORMATS:
            if not static_export_available():
                continue
            try:
                fig.write_image(path, scale=scale if fmt == "png" else 1.0)
            except Exception as err:  # a browser that fails to start must not lose the run
                log.warning("static export to %s failed: %s", path, err)
                continue
        elif fmt == "json":
            path.write_text(fig.to_json())
        else:
            raise ValueError(f"unknown figure format {fmt}")
        written.append(path)
    return written


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
