"""The registry of ``python -m lab <command>``: each module of ``lab.commands`` registers its commands here.

Command modules stay light at import (configs and argparse only; the engine is imported when a command runs),
so ``python -m lab --help`` and argument errors answer at once.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from lab.errors import LabError


@dataclass(frozen=True)
class Command:
    help: str
    arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable  # run(args, progress) -> dict | None


COMMANDS: dict[str, Command] = {}


def command(name: str, help: str, arguments):
    """Register ``run(args, progress) -> dict | None`` as ``python -m lab <name>``; ``arguments(parser)`` adds its
    options."""
    def register(fn):
        COMMANDS[name] = Command(help, arguments, fn)
        return fn
    return register


def common_args(p: argparse.ArgumentParser) -> None:
    """--device, --threads, --seed for a command whose config does not declare them (yet)."""
    p.add_argument("--device", default=None, help="auto (default), cpu, cuda, cuda:N, mps")
    threads_arg(p)
    p.add_argument("--seed", type=int, default=0)


def threads_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: all cores)")


def config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, default=None,
                   help="a saved config.json (from a run folder or a tab's export); the options given override it")


def command_line() -> str:
    """The command line this process was started with, as ``python -m lab ...``."""
    return "python -m lab " + shlex.join(sys.argv[1:])


def config_values(path: Path | None, overrides: dict) -> dict:
    """A saved config.json (if ``path``), updated by the options given (those not None)."""
    return {**saved_config(path), **{k: v for k, v in overrides.items() if v is not None}}


def saved_config(path: Path | None) -> dict:
    """The settings of a saved config.json (empty without ``path``)."""
    if path is None:
        return {}
    try:
        values = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise LabError(f"Cannot read the config {path}: {err}.") from None
    if not isinstance(values, dict):
        raise LabError(f"{path} is not a configuration (a JSON object of settings).")
    return values
