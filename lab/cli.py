"""``python -m lab <command>``: the same engine functions the app calls, from a terminal."""
from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
from pathlib import Path

import torch

from lab.errors import Cancelled, LabError
from lab.progress import TqdmProgress

COMMANDS: dict = {}  # name -> (help, add_arguments, run)


def command(name: str, help: str, arguments):
    """Register ``run(args, progress) -> dict | None`` as ``python -m lab <name>``;
    ``arguments(parser)`` adds its options."""
    def register(fn):
        COMMANDS[name] = (help, arguments, fn)
        return fn
    return register


def common_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default=None, help="auto (default), cpu, cuda, cuda:N, mps")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: all cores)")
    p.add_argument("--seed", type=int, default=0)


def data_args(p: argparse.ArgumentParser, default: str = "mnist") -> None:
    from lab.data import DATASETS, STYLES

    p.add_argument("--data", default=default, choices=DATASETS)
    p.add_argument("--split", default="train", choices=["train", "test"])
    p.add_argument("--size", type=int, default=None, help="image size in pixels (default: the dataset's)")
    p.add_argument("--channels", type=int, default=None, choices=[1, 3])
    p.add_argument("--limit", type=int, default=None, help="a seeded class-balanced subset of this many")
    p.add_argument("--style", default="plain", choices=STYLES)
    p.add_argument("--path", default=None, help="folder of images for --data folder")


def config_values(path: Path | None, overrides: dict) -> dict:
    """A saved config.json (from a run folder or a tab's export, if ``path``), updated by the options given."""
    values = {}
    if path is not None:
        try:
            values = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise LabError(f"Cannot read the config {path}: {err}.") from None
        if not isinstance(values, dict):
            raise LabError(f"{path} is not a configuration (a JSON object of settings).")
    values.update({k: v for k, v in overrides.items() if v is not None})
    return values


TRAINERS: dict = {}  # kind -> (run(args, progress, config) -> dict, add_arguments or None)


def trainer(kind: str, arguments=None):
    """Register ``run(args, progress, config)`` as ``python -m lab train <kind>``; ``arguments(parser)``
    adds the kind's own options (their names must not clash with other kinds')."""
    def register(fn):
        TRAINERS[kind] = (fn, arguments)
        return fn
    return register


def _train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("kind", choices=sorted(TRAINERS))
    p.add_argument("--out", required=True, type=Path, help="model folder to write (resumed if it has a checkpoint)")
    data_args(p)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--ema", type=float, default=None, help="EMA decay (0 turns EMA off)")
    p.add_argument("--bf16", action="store_true",
                   help="bf16 autocast on CPU too (CUDA always uses AMP); faster on CPUs with AVX512-BF16/AMX")
    p.add_argument("--checkpoint-every", type=int, default=1000)
    p.add_argument("--no-resume", action="store_true", help="start afresh even if a checkpoint exists")
    common_args(p)
    for _, arguments in TRAINERS.values():
        if arguments is not None:
            arguments(p)


def _score_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sigma-max", type=float, default=2.0, help="score: largest noise level")
    p.add_argument("--sigma-min", type=float, default=0.02, help="score: smallest noise level")
    p.add_argument("--levels", type=int, default=10, help="score: number of noise levels")


def _data_kwargs(args) -> dict:
    return dict(data=args.data, split=args.split, size=args.size, channels=args.channels, limit=args.limit,
                style=args.style, path=args.path)


def _command_line() -> str:
    return "python -m lab " + shlex.join(sys.argv[1:])


@trainer("ddpm")
def _train_ddpm(args, progress, config) -> dict:
    from lab.train.recipes import train_diffusion

    return {"saved": str(train_diffusion("ddpm", args.out, **_data_kwargs(args), config=config,
                                         resume=not args.no_resume, command=_command_line(), progress=progress,
                                         init_from=getattr(args, "init_from", None)))}


@trainer("score", _score_args)
def _train_score(args, progress, config) -> dict:
    from lab.train.recipes import train_diffusion

    return {"saved": str(train_diffusion("score", args.out, **_data_kwargs(args), config=config,
                                         sigma_max=args.sigma_max, sigma_min=args.sigma_min, levels=args.levels,
                                         resume=not args.no_resume, command=_command_line(), progress=progress))}


@trainer("classifier")
def _train_classifier(args, progress, config) -> dict:
    from lab.train.recipes import train_classifier

    return {"saved": str(train_classifier(args.out, **_data_kwargs(args), config=config, resume=not args.no_resume,
                                          command=_command_line(), progress=progress))}


# classifiers train for fewer steps, without EMA
TRAIN_DEFAULTS = {"classifier": dict(steps=3000, warmup=100, ema_decay=None)}


@command("train", "train a model (DDPM, score model, classifier, ...) and save a model folder", _train_args)
def _train(args, progress) -> dict:
    from lab.train.loop import TrainConfig

    defaults = TrainConfig(**TRAIN_DEFAULTS.get(args.kind, {}))
    ema = defaults.ema_decay if args.ema is None else (args.ema or None)
    config = TrainConfig(steps=args.steps or defaults.steps, batch_size=args.batch_size,
                         lr=args.lr or defaults.lr, warmup=defaults.warmup if args.warmup is None else args.warmup,
                         ema_decay=ema, checkpoint_every=args.checkpoint_every, seed=args.seed,
                         device=args.device or "auto", cpu_bf16=args.bf16)
    run, _ = TRAINERS[args.kind]
    return run(args, progress, config)


def build_parser() -> argparse.ArgumentParser:
    from lab.commands import load_all

    load_all()

    parser = argparse.ArgumentParser(prog="python -m lab", description="Diffusion Domain Lab from the terminal.")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, arguments, fn) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        arguments(p)
        p.set_defaults(run=fn)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    progress = TqdmProgress()
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
    if result is not None:
        print(json.dumps(result, indent=2, default=str))
    return 0
