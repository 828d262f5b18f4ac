"""``python -m lab ssda``: batch adaptation + CNN evaluation (the tab of the same name) from the terminal.

    python -m lab ssda --task mnist-sketch --n-labelled 1000 --seeds 0,1,2 --epochs 10
    python -m lab ssda --task folder --target-path ~/my-sketches --editor diffusionclip-mnist-sketch
    python -m lab ssda --config runs/<run>/config.json        # repeat a saved run
"""
from __future__ import annotations

import shlex
import sys
from dataclasses import asdict
from pathlib import Path

from lab.commands.registry import command, config_values
from lab.commands.dann import _int_list


def _args(p) -> None:
    from lab.experiments.ssda import CONDITIONS, TASKS

    p.add_argument("--config", type=Path, default=None,
                   help="a saved config.json (from a run folder or the tab's export); other options override it")
    p.add_argument("--task", choices=list(TASKS), default=None, help="default: mnist-sketch")
    p.add_argument("--editor", default=None,
                   help="a saved DiffusionCLIP model (name in checkpoints/ or folder); default: the task's")
    p.add_argument("--n-labelled", type=int, default=None, help="n′, labelled source images (default: the task's)")
    p.add_argument("--n-test", type=int, default=None, help="images per test set (default: the task's)")
    p.add_argument("--target-path", default=None, help="folder task: target test images, one subfolder per class")
    p.add_argument("--conditions", default=None,
                   help=f"comma-separated training sets from {', '.join(CONDITIONS)} (default: all)")
    p.add_argument("--seeds", default=None, help="comma-separated CNN seeds (default: 0,1,2)")
    p.add_argument("--epochs", type=int, default=None, help="default: 10")
    p.add_argument("--batch-size", type=int, default=None, help="CNN batch size (default: 64)")
    p.add_argument("--lr", type=float, default=None, help="CNN learning rate, Adam (default: 1e-3)")
    p.add_argument("--translate-batch-size", type=int, default=None, help="images translated at once (default: 64)")
    p.add_argument("--data-seed", type=int, default=None, help="which n′ images are drawn (default: 0)")
    p.add_argument("--eval-on", choices=["test", "validation"], default=None,
                   help="validation: labelled target training images replace the target test set (to choose models)")
    p.add_argument("--device", default=None, help="auto (default), cpu, cuda, cuda:N, mps")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: all cores)")


def config_from(args):
    from lab.experiments.ssda import SSDAConfig

    overrides = {"task": args.task, "editor": args.editor, "n_labelled": args.n_labelled, "n_test": args.n_test,
                 "target_path": args.target_path, "epochs": args.epochs, "batch_size": args.batch_size,
                 "lr": args.lr, "translate_batch_size": args.translate_batch_size, "data_seed": args.data_seed,
                 "eval_on": args.eval_on, "device": args.device}
    values = config_values(args.config, overrides)
    if args.conditions:
        values["conditions"] = [c.strip() for c in args.conditions.split(",") if c.strip()]
    if args.seeds:
        values["seeds"] = _int_list(args.seeds)
    config = SSDAConfig.from_dict(values)
    config.validate()
    return config


def command_for(config) -> str:
    """The CLI line that repeats a run of this configuration."""
    c = config.resolved()
    parts = ["python -m lab ssda", f"--task {c.task}", f"--editor {shlex.quote(c.editor)}",
             f"--n-labelled {c.n_labelled}", f"--n-test {c.n_test}", f"--conditions {','.join(c.conditions)}",
             f"--seeds {','.join(map(str, c.seeds))}", f"--epochs {c.epochs}", f"--batch-size {c.batch_size}",
             f"--lr {c.lr}", f"--data-seed {c.data_seed}"]
    if c.eval_on != "test":
        parts.append(f"--eval-on {c.eval_on}")
    if c.target_path:
        parts.append(f"--target-path {shlex.quote(c.target_path)}")
    return " ".join(parts)


@command("ssda", "Batch adaptation: translate labelled source images to the target domain, train a CNN on "
         "original vs adapted images, compare source/target accuracy", _args)
def _ssda(args, progress) -> dict:
    from lab.experiments.ssda import run_ssda
    from lab.runs import recorded

    config = config_from(args)
    with recorded("ssda", asdict(config.resolved()), command="python -m lab " + shlex.join(sys.argv[1:])) as run:
        result = run_ssda(config, progress=progress, record=run)
        result.save(run)
    return {"run": str(run.dir), "task": config.label(), "n_labelled": result.data["n_labelled"],
            "translation": result.translation, "table": result.display_rows(), "gain_points": result.gain()}


def _editor_args(p) -> None:
    from lab.experiments.ssda import TASKS

    p.add_argument("--task", choices=[t for t in TASKS if t != "folder"], default="mnist-sketch")
    p.add_argument("--seeds", default="0,1,2", help="one fine-tuning per seed; the best on validation is kept")
    p.add_argument("--out", type=Path, required=True, help="model folder to write, e.g. checkpoints/diffusionclip-mnist-sketch")
    p.add_argument("--device", default=None, help="auto (default), cpu, cuda, cuda:N, mps")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: all cores)")


@command("ssda-editor", "Fine-tune the batch-adaptation task's DiffusionCLIP translator over seeds and keep the "
         "best on labelled target validation images", _editor_args)
def _ssda_editor(args, progress) -> dict:
    from lab.experiments.ssda_editor import select_editor

    return select_editor(args.task, args.out, _int_list(args.seeds), args.device or "auto", progress)
