"""``python -m lab ssda``: batch adaptation + CNN evaluation (the tab of the same name) from the terminal.

    python -m lab ssda --task mnist-sketch --n-labelled 1000 --seeds 0,1,2 --epochs 10
    python -m lab ssda --task folder --target-path ~/my-sketches --editor diffusionclip-mnist-sketch
    python -m lab ssda --config runs/<run>/config.json        # repeat a saved run
    python -m lab ssda-editor --task mnist-sketch --seeds 0,1,2 --out checkpoints/diffusionclip-mnist-sketch
"""
from __future__ import annotations

from dataclasses import asdict

from lab.commands.registry import command, config_arg, saved_config, threads_arg
from lab.experiments.ssda.config import EditorSelectionConfig, SSDAConfig, TranslateConfig


def _args(p) -> None:
    config_arg(p)
    SSDAConfig.add_arguments(p, defaults={"editor": "the task's", "n_labelled": "the task's",
                                          "n_test": "the task's"})
    threads_arg(p)


def config_from(args) -> SSDAConfig:
    """The config of the command line: a saved config (--config), updated by the options given."""
    return SSDAConfig.from_args(args, base=saved_config(args.config)).validate()


@command("ssda", "Batch adaptation: translate labelled source images to the target domain, train a CNN on "
         "original vs adapted images, compare source/target accuracy", _args)
def _ssda(args, progress) -> dict:
    from lab.experiments.ssda.run import run_ssda
    from lab.runs import recorded

    config = config_from(args)
    resolved = config.resolved()
    with recorded("ssda", asdict(resolved), command=resolved.to_command()) as run:
        result = run_ssda(config, progress=progress, record=run)
        result.save(run)
    return {"run": str(run.dir), "task": config.label(), "n_labelled": result.data["n_labelled"],
            "translation": result.translation, "table": result.display_rows(), "gain_points": result.gain()}


def _editor_args(p) -> None:
    EditorSelectionConfig.add_arguments(p)
    threads_arg(p)


@command("ssda-editor", "Fine-tune the batch-adaptation task's DiffusionCLIP translator over seeds and keep the "
         "best on labelled target validation images", _editor_args)
def _ssda_editor(args, progress) -> dict:
    from lab.experiments.ssda.editor import select_editor

    config = EditorSelectionConfig.from_args(args).validate()
    return select_editor(config.task, config.out, config.seeds, config.device, progress,
                         fp16_weights=config.fp16_weights)


def _translate_args(p) -> None:
    TranslateConfig.add_arguments(p)
    threads_arg(p)


@command("translate", "translate a whole split with a saved DiffusionCLIP model into a folder (one subfolder per "
         "class); runs under accelerate launch, resumable", _translate_args)
def _translate(args, progress) -> dict:
    from lab.experiments.ssda.translate import translate_split

    return translate_split(TranslateConfig.from_args(args), progress=progress)
