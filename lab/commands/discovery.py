"""``python -m lab discovery <action>``: the Domain-discovery experiment from the terminal.

  reconstruct  invert unseen (and in-domain) images at each t0 and generate them back: MSE / PSNR
  stats        norms and pairwise angles of the inverted latents vs Gaussian noise, separability
  discover     new latents (slerp / mix / gaussian) through the geometric filter, generated; FID, copies
  finetune     the tuning baseline: fine-tune a copy on the few-shot set, sample, the same metrics

Example: python -m lab discovery discover --model ddpm-mnist --target fashion --shots 100 --count 500

Each action's options come from its settings (``lab.experiments.discovery.config``); ``--files`` (image files
as the unseen domain, which sets ``--target upload``) and ``--threads`` are the command's own.
"""
from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass
from typing import Callable

from lab.commands.registry import command, threads_arg
from lab.experiments.discovery.config import BaselineSettings, DiscoveryConfig, DiscoverySettings, ReconstructSettings


@dataclass(frozen=True)
class Action:
    config: type
    help: str
    run: Callable   # run(config, files, command, progress) -> dict


ACTIONS: dict[str, Action] = {}


def action(name: str, config: type, help: str):
    """Register ``run(config, files, command, progress)`` as ``python -m lab discovery <name>``."""
    def register(fn):
        ACTIONS[name] = Action(config, help, fn)
        return fn
    return register


@action("reconstruct", ReconstructSettings, "invert unseen (and in-domain) images at each t0 and generate them "
                                            "back: MSE / PSNR")
def _reconstruct(config: ReconstructSettings, files, cmd: str, progress) -> dict:
    from lab.experiments.discovery.reconstruct import run_reconstruct
    from lab.runs import recorded

    with recorded("discovery-reconstruct", config.__dict__, command=cmd) as run:
        result = run_reconstruct(config, config.t0s, config.n_images, files=files, progress=progress)
        result.save(run)
    _print_notes(result.notes)
    return {"run": str(run.dir), "rows": result.rows}


@action("stats", DiscoveryConfig, "norms and pairwise angles of the inverted latents vs Gaussian noise, "
                                  "separability")
def _stats(config: DiscoveryConfig, files, cmd: str, progress) -> dict:
    from lab.experiments.discovery.stats import run_stats
    from lab.runs import recorded

    with recorded("discovery-stats", config.__dict__, command=cmd) as run:
        result = run_stats(config, files=files, progress=progress)
        result.save(run)
    _print_notes(result.notes)
    return {"run": str(run.dir), "rows": result.rows, "separability": result.separability}


@action("discover", DiscoverySettings, "new latents (slerp / mix / gaussian) through the geometric filter, "
                                       "generated; FID, copies")
def _discover(config: DiscoverySettings, files, cmd: str, progress) -> dict:
    from lab.experiments.discovery.discover import run_discover
    from lab.runs import recorded

    with recorded("discovery", config.__dict__, command=cmd) as run:
        result = run_discover(config, files=files, progress=progress)
        result.save(run)
    _print_notes(result.notes)
    return {"run": str(run.dir), "samples": str(run.path("discovered.png")), **_short(result.summary())}


@action("finetune", BaselineSettings, "the tuning baseline: fine-tune a copy on the few-shot set, sample, the "
                                      "same metrics")
def _finetune(config: BaselineSettings, files, cmd: str, progress) -> dict:
    from lab.experiments.discovery.baseline import run_finetune
    from lab.runs import recorded

    with recorded("discovery-finetune", config.__dict__, command=cmd) as run:
        result = run_finetune(config, files=files, progress=progress)
        result.info["command"] = cmd
        result.save(run, keep_model=config.save)
    _print_notes(result.notes)
    return {"run": str(run.dir), "samples": str(run.path("finetuned_samples.png")),
            "train_seconds": round(result.train_seconds, 1), "sample_seconds": round(result.sample_seconds, 1),
            "rows": result.rows()}


def _arguments(p) -> None:
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, a in ACTIONS.items():
        q = sub.add_parser(name, help=a.help, description=a.help)
        a.config.add_arguments(q)
        q.add_argument("--files", nargs="+", default=None,
                       help="image files as the unseen domain (sets --target upload)")
        threads_arg(q)


@command("discovery", "reconstruct and expand an unseen domain with a frozen diffusion model (Zhu et al.)",
         _arguments)
def _discovery(args, progress) -> dict:
    a = ACTIONS[args.action]
    files = args.files
    config = a.config.from_dict({**a.config.given(args), **({"target": "upload"} if files else {})}).validate()
    cmd = config.to_command("--files " + shlex.join(map(str, files)) if files else "")
    return a.run(config, files, cmd, progress)


def _short(summary: dict) -> dict:
    metrics = summary.get("metrics") or {}
    fid, floor = metrics.get("fid"), metrics.get("floor")
    out = {k: summary[k] for k in ("accepted", "proposed", "acceptance", "targets", "t0_used", "seconds")}
    if metrics:
        out.update({"fid": fid and fid["fid"], "fid_n": fid and fid["n"], "fid_floor": floor and floor["fid"],
                    "nn_copy_fraction": metrics["copies"]["nn_copy_fraction"], "diversity": metrics["diversity"]})
    return out


def _print_notes(notes: list[str]) -> None:
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
