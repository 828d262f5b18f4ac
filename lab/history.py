"""Past runs: list them, reopen one (its images, figures, configuration, metrics, files), compare two side by side.

The engine of the History tab (no gradio here): everything is read back from the runs folder, so runs made by the
app, by the CLI or by a crashed process are all listed — the last with the status they had when they stopped.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from lab.runs import downloadable, flatten, list_runs, read_record

KEY_METRICS = 4          # metrics shown in the list, per run
MAX_IMAGES = 48          # PNGs reopened in the gallery


def _short(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def key_metrics(metrics: dict, count: int = KEY_METRICS) -> str:
    """The first few scalar metrics as ``name = value; ...``."""
    scalars = [(k, v) for k, v in flatten(metrics or {}).items()
               if isinstance(v, (int, float, str)) and not isinstance(v, bool) and v != ""]
    return "; ".join(f"{k} = {_short(v)}" for k, v in scalars[:count])


def run_rows(kind: str | None = None, root: Path | None = None) -> list[dict]:
    """One row per past run, newest first: id, kind, status, started, seconds, key metrics."""
    return [{"id": r["id"], "kind": r.get("kind", ""), "status": r.get("status", ""), "started": r.get("started", ""),
             "seconds": r.get("seconds"), "metrics": key_metrics(r.get("metrics") or {})}
            for r in list_runs(root, kind or None)]


def run_kinds(root: Path | None = None) -> list[str]:
    return sorted({r.get("kind", "") for r in list_runs(root)} - {""})


def _is_figure_json(path: Path) -> bool:
    """A plotly figure saved by save_figure (stem.json beside stem.html), not a result file."""
    if not path.with_suffix(".html").exists():
        return False
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return isinstance(data, dict) and "data" in data and "layout" in data


def _ordered(folder: Path, record: dict, suffix: str) -> list[Path]:
    """The run's files with ``suffix`` in the order the run wrote them (its artifacts), then any others by name."""
    named = [folder / a for a in record.get("artifacts", []) if a.endswith(suffix)]
    others = sorted(f for f in folder.glob(f"*{suffix}") if f not in named)
    return [f for f in named + others if f.is_file()]


@dataclass
class SavedRun:
    record: dict
    folder: Path
    images: list[Path] = field(default_factory=list)       # PNGs (grids, galleries, chart pictures)
    figures: list[Path] = field(default_factory=list)      # plotly figures as JSON (rebuild with from_json)
    files: list[Path] = field(default_factory=list)        # what can be downloaded (figures, tables)

    @property
    def id(self) -> str:
        return self.folder.name

    def figure(self, name: str | None = None):
        """A saved plotly figure (the first, or the one whose stem is ``name``), rebuilt; None when there is none."""
        import plotly.io as pio

        chosen = [f for f in self.figures if name is None or f.stem == name]
        return pio.from_json(chosen[0].read_text()) if chosen else None

    def summary(self) -> str:
        r = self.record
        lines = [f"**{self.id}** — {r.get('kind')}, **{r.get('status')}**, started {r.get('started')}, "
                 f"{r.get('seconds')} s."]
        if r.get("command"):
            lines.append(f"Reproduce with `{r['command']}`.")
        else:
            lines.append("No CLI equivalent: the configuration below repeats it in the app.")
        if r.get("stopped"):
            lines.append(f"{r['stopped']} What had finished is below.")
        if r.get("error"):
            lines.append(f"Ended with: `{str(r['error']).splitlines()[0]}`")
        return "\n\n".join(lines)


def open_run(folder: Path) -> SavedRun:
    """A past run read back from its folder (a LabError when it has no run.json)."""
    folder = Path(folder)
    record = read_record(folder)
    images = _ordered(folder, record, ".png")[:MAX_IMAGES]
    figures = [f for f in _ordered(folder, record, ".json") if _is_figure_json(f)]
    return SavedRun(record, folder, images, figures, downloadable(folder))


def _cell(value):
    if value is None:
        return ""
    return value if isinstance(value, (int, float, str)) else json.dumps(value, default=str)


def compare_records(a: dict, b: dict) -> list[dict]:
    """Every configuration and metric key of two runs: value in A, value in B, and whether they differ."""
    def fields(record: dict) -> dict:
        out = {"kind": record.get("kind"), "status": record.get("status"), "seconds": record.get("seconds"),
               "command": record.get("command")}
        out.update({f"config.{k}": v for k, v in flatten(record.get("config") or {}).items()})
        out.update({f"metrics.{k}": v for k, v in flatten(record.get("metrics") or {}).items()})
        return out

    fa, fb = fields(a), fields(b)
    keys = list(dict.fromkeys([*fa, *fb]))
    return [{"key": k, "A": _cell(fa.get(k)), "B": _cell(fb.get(k)), "differs": fa.get(k) != fb.get(k)}
            for k in keys]
