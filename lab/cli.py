"""``python -m lab <command>``: the same engine functions the app calls, from a terminal.

The commands live in ``lab.commands`` (one module per experiment, registered in ``lab.commands.registry``);
this module only builds the parser and runs one, turning the engine's errors into messages and exit codes.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from lab.errors import Cancelled, LabError


def build_parser() -> argparse.ArgumentParser:
    from lab.commands import load_all
    from lab.commands.registry import COMMANDS

    load_all()
    parser = argparse.ArgumentParser(prog="python -m lab", description="Diffusion Domain Lab from the terminal.")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, cmd in COMMANDS.items():
        p = sub.add_parser(name, help=cmd.help, description=cmd.help)
        cmd.arguments(p)
        p.set_defaults(run=cmd.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    from lab.device import set_threads
    from lab.progress import TqdmProgress

    set_threads(getattr(args, "threads", None))
    main_process = os.environ.get("RANK", "0") == "0"  # under `accelerate launch`, only the main process reports
    progress = TqdmProgress(disable=not main_process)
    try:
        result = args.run(args, progress)
    except Cancelled as err:
        print(f"\nstopped: {err}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("\nstopped: interrupted; finished results and checkpoints are kept.", file=sys.stderr)
        return 130
    except LabError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        progress.close()
    if result is not None and main_process:
        print(json.dumps(result, indent=2, default=str))
    return 0
