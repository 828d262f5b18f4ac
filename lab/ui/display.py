"""How results are shown: figures whole at first sight, tables rounded for reading with a hint before the first
run, and the page's own CSS and script (served by ``app.launch_kwargs``).

    gallery = figure_gallery("One grid per T")           # every image whole, its caption under it
    table = results_table("Quality per T", "Run the sweep to fill this table.")
    return table_of(rows, first=["steps", "confident fraction"])   # key columns first, floats rounded

Full precision stays in the run's CSV/JSON: only what the page shows is rounded.
"""
from __future__ import annotations

import math
from typing import Iterable

import gradio as gr
import pandas as pd

FIGURES = "lab-figures"      # CSS class of galleries whose images are shown whole
FIGURE = "lab-figure"        # CSS class of single images (their label must not cover them)
SIGNIFICANT = 4              # significant digits of a float shown in a table

CSS = f"""
.{FIGURES} .grid-wrap {{ max-height: none !important; min-height: 0 !important; height: auto !important;
  overflow: visible !important; padding-top: 2.2em !important; }}
.{FIGURES} .grid-container {{ grid-template-rows: none !important; grid-auto-rows: auto !important;
  align-items: start; }}
.{FIGURES} .thumbnail-item {{ aspect-ratio: auto !important; height: auto !important; display: flex !important;
  flex-direction: column; align-items: center; overflow: visible !important; }}
.{FIGURES} .thumbnail-lg > img {{ width: auto !important; max-width: 100% !important; height: auto !important;
  object-fit: contain !important; }}
.{FIGURES} .caption-label {{ position: static !important; max-width: 100% !important; white-space: normal !important;
  align-self: stretch; text-align: center !important; }}
.{FIGURE} img {{ object-fit: contain !important; }}
.{FIGURE} .image-container, .{FIGURE} [data-testid="image"] {{ padding-top: 1.9em; }}
.lab-range-note {{ color: var(--color-accent); font-size: var(--text-sm); margin-top: 4px; }}
"""

# Gradio's slider clamps a typed number into its range when the box loses focus, without a word: this note says
# so beside the slider (the listener runs before the slider's own, so it still sees the typed value)
JS = r"""
() => {
  const fmt = (v) => Number.isInteger(v) ? v.toLocaleString('en-US') : String(v);
  const check = (input) => {
    const lo = parseFloat(input.min), hi = parseFloat(input.max), v = parseFloat(input.value);
    const box = input.closest('.wrap') || input.parentElement;
    let note = box.querySelector(':scope > .lab-range-note');
    const inside = isNaN(v) || ((isNaN(lo) || v >= lo) && (isNaN(hi) || v <= hi));
    if (inside) { if (note) note.remove(); return; }
    const used = (!isNaN(hi) && v > hi) ? hi : lo;
    if (!note) {
      note = document.createElement('div');
      note.className = 'lab-range-note';
      note.setAttribute('role', 'status');
      box.appendChild(note);
    }
    note.textContent = `You typed ${fmt(v)}; this slider goes from ${fmt(lo)} to ${fmt(hi)}, so ${fmt(used)} is used.`;
  };
  document.addEventListener('blur', (event) => {
    const t = event.target;
    if (t instanceof HTMLInputElement && t.dataset.testid === 'number-input') check(t);
  }, true);
}
"""


def figure_gallery(label: str, columns: int = 1, **kwargs) -> gr.Gallery:
    """A gallery of result figures: each image whole (never cropped), its caption under it; a click zooms."""
    return gr.Gallery(**{"label": label, "columns": columns, "object_fit": "contain", "preview": False,
                         "format": "png", "elem_classes": [FIGURES], "interactive": False, **kwargs})


def figure(label: str, **kwargs) -> gr.Image:
    """One result image (a grid), shown whole with its label above it rather than over it."""
    return gr.Image(**{"label": label, "type": "pil", "format": "png", "interactive": False,
                       "elem_classes": [FIGURE], **kwargs})


def results_table(label: str, hint: str, **kwargs) -> gr.Dataframe:
    """A read-only table that, before the first run, shows one line saying how to fill it."""
    return gr.Dataframe(**{"value": hint_table(hint), "label": label, "interactive": False, "wrap": True, **kwargs})


def hint_table(hint: str) -> pd.DataFrame:
    """An empty table whose only line is ``hint`` (instead of Gradio's placeholder headers "1 2 3")."""
    return pd.DataFrame(columns=[hint])


STOPPED_TABLE = "Stopped before this table was filled: run again to fill it."


def rounded(value):
    """A number as a table shows it: floats to ``SIGNIFICANT`` significant digits (0.800000011920929 → 0.8),
    NaN/inf as empty; anything else unchanged."""
    if isinstance(value, bool) or not isinstance(value, float):
        return value
    if not math.isfinite(value):
        return None
    return float(f"{value:.{SIGNIFICANT}g}")


def rounded_tree(value):
    """``value`` (JSON-like: dicts, lists, numbers) with every float ``rounded`` — for a JSON view on the page."""
    if isinstance(value, dict):
        return {k: rounded_tree(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [rounded_tree(v) for v in value]
    return rounded(value)


def table_of(rows: Iterable[dict] | pd.DataFrame, first: Iterable[str] = (), drop: Iterable[str] = ()) -> pd.DataFrame:
    """Rows as a table to show: the ``first`` columns (those present) lead, ``drop`` ones are left out, floats are
    rounded (``rounded``)."""
    frame = rows.copy() if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    frame = frame.drop(columns=[c for c in drop if c in frame.columns])
    lead = [c for c in first if c in frame.columns]
    frame = frame[lead + [c for c in frame.columns if c not in lead]]
    for column in frame.columns:
        if frame[column].dtype == object or pd.api.types.is_float_dtype(frame[column]):
            frame[column] = pd.Series([rounded(v) for v in frame[column]], index=frame.index, dtype=object)
    return frame
