"""Run records: every experiment writes its configuration and results under the runs folder as it goes.

A crash, a cancelled job or a closed browser loses nothing already written. ``run.json`` holds
the status (running / finished / cancelled / failed), the configuration, metrics and the list of
artifacts; figures and tables sit beside it.
"""
from __future__ import annotations

import hashlib
import json
import logging
import platform
import re
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from lab.config import get_settings
from lab.errors import Cancelled, LabError
from lab.viz.export import complete_figure, csv_text, zip_folder

log = logging.getLogger(__name__)


def _slug(text: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_.-]+", "-", text).strip("-")[:60] or "run"


@dataclass
class Run:
    kind: str                      # the experiment: denoise, conditional, edit, adapt, dann, discovery
    config: dict
    dir: Path
    metrics: dict = field(default_factory=dict)
    artifacts: list[str] = field(default_factory=list)
    status: str = "running"
    started: float = field(default_factory=time.time)
    command: str = ""              # the CLI command that reproduces the run

    def path(self, name: str) -> Path:
        return self.dir / name

    def add(self, name: str) -> Path:
        """Register an artifact written (or about to be written) at ``dir/name`` (subfolders are made)."""
        if name not in self.artifacts:
            self.artifacts.append(name)
        self._write()
        path = self.dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def save_json(self, name: str, obj) -> Path:
        path = self.add(name)
        path.write_text(json.dumps(obj, indent=2, default=str))
        return path

    def log_metrics(self, **metrics) -> None:
        self.metrics.update(metrics)
        self._write()

    def finish(self, status: str = "finished", error: str | None = None, note: str | None = None) -> None:
        """Record the end: its status, the error of a failed run, the note of a stopped one ("Stopped after step
        k of n")."""
        self.status = status
        self._write(error, note)
        try:  # versions.json, metrics.csv/json, REPRODUCE.md: a failure here must not lose the run
            write_sidecars(self.dir, overwrite=True)
        except Exception as err:  # noqa: BLE001
            log.warning("could not write the export files of %s: %s", self.dir, err)

    def _write(self, error: str | None = None, note: str | None = None) -> None:
        record = {"kind": self.kind, "status": self.status, "config": self.config, "metrics": self.metrics,
                  "artifacts": self.artifacts, "command": self.command,
                  "started": datetime.fromtimestamp(self.started, timezone.utc).isoformat(timespec="seconds"),
                  "seconds": round(time.time() - self.started, 2)}
        if error:
            record["error"] = error
        if note:
            record["stopped"] = note
        tmp = self.dir / "run.json.tmp"
        tmp.write_text(json.dumps(record, indent=2, default=str))
        tmp.replace(self.dir / "run.json")


def new_run(kind: str, config: dict, command: str = "", root: Path | None = None) -> Run:
    root = root or get_settings().runs_dir
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    folder = root / f"{stamp}-{_slug(kind)}"
    folder.mkdir(parents=True, exist_ok=False)
    run = Run(kind, config, folder, command=command)
    run._write()
    return run


@contextmanager
def recorded(kind: str, config: dict, command: str = "", root: Path | None = None):
    """``with recorded('denoise', cfg) as run:`` — the status ends as finished, cancelled or failed."""
    run = new_run(kind, config, command, root)
    try:
        yield run
    except (Cancelled, KeyboardInterrupt) as err:
        run.finish("cancelled", note=str(err) or "Stopped (interrupted).")
        if getattr(err, "run_dir", None) is None:
            err.run_dir = str(run.dir)  # the front end shows where what finished is kept
        raise
    except BaseException as err:
        run.finish("failed", f"{type(err).__name__}: {err}\n{traceback.format_exc(limit=5)}")
        raise
    else:
        run.finish("finished")


def list_runs(root: Path | None = None, kind: str | None = None) -> list[dict]:
    """Past runs, newest first, each the content of its run.json plus its folder."""
    root = root or get_settings().runs_dir
    if not root.is_dir():
        return []
    out = []
    for folder in sorted((p for p in root.iterdir() if p.is_dir()), reverse=True):
        try:
            record = read_record(folder)
        except LabError:
            continue
        if kind is None or record.get("kind") == kind:
            out.append(record)
    return out


def read_saved_run(folder: Path, what: str) -> tuple[dict, dict]:
    """(result.json, config.json) of a saved run folder; a LabError naming ``what`` run when either is unreadable."""
    try:
        return (json.loads((folder / "result.json").read_text()),
                json.loads((folder / "config.json").read_text()))
    except (OSError, json.JSONDecodeError) as err:
        raise LabError(f"{folder} is not a {what} run folder (no readable result.json/config.json).") from err


# --- export: versions, metrics, how to reproduce, the run as one zip ----------------------------------------------

PACKAGES = ("torch", "torchvision", "diffusers", "transformers", "accelerate", "safetensors", "gradio", "open_clip_torch",
            "torch-fidelity", "numpy", "scipy", "scikit-learn", "pandas", "pillow", "plotly", "kaleido")
MODEL_MARKERS = ("training.json", "model_index.json")
EXPORT_SUFFIXES = (".png", ".svg", ".pdf", ".html", ".csv", ".json")
_HASHES: dict[tuple, str] = {}


def library_versions() -> dict[str, str]:
    """Python, the lab and every installed library the experiments use (importlib.metadata: nothing is imported)."""
    from importlib import metadata

    import lab

    out = {"python": platform.python_version(), "platform": platform.platform(), "lab": lab.__version__}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def _short_hash(file: Path) -> str:
    stat = file.stat()
    key = (str(file.resolve()), stat.st_mtime_ns, stat.st_size)
    if key not in _HASHES:
        digest = hashlib.sha256()
        with file.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        _HASHES[key] = digest.hexdigest()[:16]
    return _HASHES[key]


def _model_folder(value: str) -> Path | None:
    """The model folder a config value names (a shipped model's name or a folder with a model card), else None."""
    text = value.strip()
    if not text or len(text) > 500 or "\n" in text:
        return None
    candidates = [Path(text).expanduser()] if ("/" in text or text.startswith((".", "~"))) else []
    if "/" not in text:
        candidates.append(get_settings().checkpoint_dir / text)
    for folder in candidates:
        try:
            if folder.is_dir() and any((folder / m).exists() for m in MODEL_MARKERS):
                return folder
        except OSError:
            continue
    return None


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _strings(v)


def checkpoints_used(config: dict) -> list[dict]:
    """Every model folder the configuration names: its name, path and short sha256 of its *.safetensors files."""
    out, seen = [], set()
    for text in _strings(config):
        folder = _model_folder(text)
        if folder is None or folder.resolve() in seen:
            continue
        seen.add(folder.resolve())
        weights = {str(f.relative_to(folder)): _short_hash(f) for f in sorted(folder.rglob("*.safetensors"))
                   if "checkpoint" not in f.relative_to(folder).parts}
        out.append({"name": folder.name, "given_as": text, "path": str(folder.resolve()), "sha256": weights})
    return out


def flatten(value, prefix: str = "") -> dict:
    """Nested dicts/lists as one level of dotted keys (``a.b.0``); scalars as they are."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(value, (list, tuple)) and value and any(isinstance(v, (dict, list, tuple)) for v in value):
        out = {}
        for i, v in enumerate(value):
            out.update(flatten(v, f"{prefix}.{i}" if prefix else str(i)))
        return out
    if isinstance(value, (list, tuple)):
        value = ", ".join(map(str, value))
    return {prefix or "value": value}


def read_record(run_dir: Path) -> dict:
    """The run.json of a run folder, with its folder and id; a LabError when there is none."""
    try:
        record = json.loads((Path(run_dir) / "run.json").read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise LabError(f"{run_dir} is not a run folder (no readable run.json).") from err
    return {**record, "dir": str(run_dir), "id": Path(run_dir).name}


def _sidecar(record: dict, name: str) -> str:
    """``name``, or ``run_<name>`` when the experiment itself wrote a file of that name (discovery's metrics.csv)."""
    return f"run_{name}" if name in record.get("artifacts", []) else name


def reproduce_text(record: dict) -> str:
    lines = [f"# Reproduce run {record.get('id', '')}", "",
             f"Kind: **{record.get('kind')}**, status: **{record.get('status')}**, started {record.get('started')} "
             f"({record.get('seconds')} s).", ""]
    if record.get("command"):
        lines += ["From the repository root (same library versions: see versions.json):", "", "```bash",
                  record["command"], "```", "",
                  "The configuration is in run.json (`config`); checkpoints used and their sha256 in versions.json."]
    else:
        lines += ["This run has **no CLI equivalent**: repeat it in the app with the configuration in run.json "
                  "(`config`)."]
    if record.get("error"):
        lines += ["", "The run ended with:", "", "```", str(record["error"]).strip(), "```"]
    return "\n".join(lines) + "\n"


def write_sidecars(run_dir: Path, overwrite: bool = False) -> list[Path]:
    """versions.json, metrics.csv, metrics.json and REPRODUCE.md beside run.json (only the missing ones unless
    ``overwrite``); returns the files written."""
    run_dir = Path(run_dir)
    record = read_record(run_dir)
    written = []

    def write(name: str, make) -> None:
        path = run_dir / name
        if overwrite or not path.exists():
            path.write_text(make())
            written.append(path)

    write("versions.json", lambda: json.dumps({"libraries": library_versions(),
                                               "checkpoints": checkpoints_used(record.get("config") or {})},
                                              indent=2, default=str))
    rows = [{"metric": k, "value": v} for k, v in flatten(record.get("metrics") or {}).items()]
    write(_sidecar(record, "metrics.csv"), lambda: csv_text(rows) if rows else "metric,value\r\n")
    write(_sidecar(record, "metrics.json"), lambda: json.dumps(record.get("metrics") or {}, indent=2, default=str))
    write("REPRODUCE.md", lambda: reproduce_text(record))
    return written


def bundle_run(run_dir: Path) -> Path:
    """The whole run folder as one zip beside it (``<runs>/<id>.zip``): figures, tables, run.json (configuration
    and metrics), metrics.csv/json, versions.json and REPRODUCE.md (the CLI command). Reused while up to date."""
    run_dir = Path(run_dir)
    write_sidecars(run_dir)
    dest = run_dir.with_suffix(".zip")
    if dest.exists():
        newest = max((f.stat().st_mtime for f in run_dir.rglob("*") if f.is_file()), default=0.0)
        if dest.stat().st_mtime >= newest:
            return dest
    return zip_folder(run_dir, dest)


def export_files(run_dir: Path, figures: dict | None = None) -> list[Path]:
    """What a tab offers for download after a run: its figures (each plotly figure in ``figures`` — stem → figure —
    completed to HTML, JSON and, where a browser is available, PNG/SVG/PDF), its PNG/SVG/PDF/HTML/CSV/JSON files,
    then the zip of the whole run."""
    run_dir = Path(run_dir)
    for stem, fig in (figures or {}).items():
        if fig is not None:
            complete_figure(fig, run_dir / stem)
    return downloadable(run_dir) + [bundle_run(run_dir)]


def downloadable(run_dir: Path) -> list[Path]:
    """A run's figures (PNG/SVG/PDF/HTML), tables (CSV) and JSON records, by name; a figure's own JSON (beside its
    HTML, for reopening) is left to the zip."""
    run_dir = Path(run_dir)
    return sorted(f for f in run_dir.iterdir() if f.is_file() and f.suffix.lower() in EXPORT_SUFFIXES
                  and not (f.suffix.lower() == ".json" and f.with_suffix(".html").exists()))
