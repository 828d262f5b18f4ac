"""Run records: every experiment writes its configuration and results under the runs folder as it goes.

A crash, a cancelled job or a closed browser loses nothing already written. ``run.json`` holds
the status (running / finished / cancelled / failed), the configuration, metrics and the list of
artifacts; figures and tables sit beside it.
"""
from __future__ import annotations

import json
import re
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from lab.config import get_settings
from lab.errors import Cancelled, LabError


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

    def finish(self, status: str = "finished", error: str | None = None) -> None:
        self.status = status
        self._write(error)

    def _write(self, error: str | None = None) -> None:
        record = {"kind": self.kind, "status": self.status, "config": self.config, "metrics": self.metrics,
                  "artifacts": self.artifacts, "command": self.command,
                  "started": datetime.fromtimestamp(self.started, timezone.utc).isoformat(timespec="seconds"),
                  "seconds": round(time.time() - self.started, 2)}
        if error:
            record["error"] = error
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
    except (Cancelled, KeyboardInterrupt):
        run.finish("cancelled")
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
            record = json.loads((folder / "run.json").read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if kind is None or record.get("kind") == kind:
            out.append({**record, "dir": str(folder), "id": folder.name})
    return out


def read_saved_run(folder: Path, what: str) -> tuple[dict, dict]:
    """(result.json, config.json) of a saved run folder; a LabError naming ``what`` run when either is unreadable."""
    try:
        return (json.loads((folder / "result.json").read_text()),
                json.loads((folder / "config.json").read_text()))
    except (OSError, json.JSONDecodeError) as err:
        raise LabError(f"{folder} is not a {what} run folder (no readable result.json/config.json).") from err
