"""The DiffusionCLIP models that translate the batch-adaptation tasks: fine-tune one from a task's prompts, or
fine-tune one per seed and keep the best on labelled target *validation* images (``python -m lab ssda-editor``).
"""
from __future__ import annotations

import shutil
from pathlib import Path

from lab.errors import LabError
from lab.experiments.edit.config import EditConfig
from lab.experiments.edit.recipes import recipe_for
from lab.experiments.edit.run import run_edit
from lab.experiments.edit.saved import save_tuned
from lab.experiments.ssda.config import TASKS, EditorSelectionConfig, SSDAConfig
from lab.experiments.ssda.run import run_ssda
from lab.models.store import load_diffusion, read_info, store_half, update_metrics, write_info
from lab.progress import ProgressFn

# the generation settings of the shipped editors; the loss weights, t0, views, iterations and lr are the
# backbone's recipe (lab/experiments/edit/recipes.py: digits or faces), chosen on validation images only
GENERATION = dict(n_inv_step=20, n_train_step=6, n_test_step=20, batch_size=8)


def editor_recipe(task: str) -> dict:
    """The EditConfig settings a task's translator is fine-tuned with: its backbone's recipe + ``GENERATION``."""
    return {**recipe_for(TASKS[task].source), **GENERATION}


EDITOR_RECIPE = editor_recipe("mnist-sketch")   # the digits' (what the tab's fine-tune box shows first)


def finetune_editor(task: str, folder: str | Path, iterations: int | None = None, seed: int = 0,
                    device: str = "auto", progress: ProgressFn | None = None) -> Path:
    """Fine-tune a DiffusionCLIP model from the task's prompts with ``editor_recipe(task)`` (the editing tab's
    engine) on the task's source images and save it to ``folder``."""
    if task not in TASKS or task == "folder":
        raise LabError(f"Fine-tune for one of {', '.join(t for t in TASKS if t != 'folder')}, not {task!r}.")
    spec = TASKS[task]
    recipe = {**editor_recipe(task), **({"iterations": iterations} if iterations else {})}
    config = EditConfig(model=spec.base_model, source=spec.source_prompt, target=spec.target_prompt, data=spec.source,
                        edit_n=8, seed=seed, device=device, **recipe)
    result = run_edit(config, progress=progress)
    return save_tuned(result, Path(folder), load_diffusion(spec.base_model, device))


def select_editor(task: str, out: str | Path, seeds: list[int], device: str = "auto",
                  progress: ProgressFn | None = None, fp16_weights: bool = False) -> dict:
    """Fine-tune one editor per seed and keep, as ``out``, the one whose translations teach the CNN most about
    the target domain on a *validation* set (labelled target training images; the test sets are never seen).
    DiffusionCLIP on these small models is seed-sensitive, so the card lists every candidate's score.
    ``fp16_weights``: the kept UNet is stored in half precision (it loads back as fp32)."""
    out = Path(out)
    command = EditorSelectionConfig(task=task, seeds=list(seeds), out=str(out), device=device,
                                    fp16_weights=fp16_weights).to_command()
    scratch = out.parent / f".{out.name}-candidates"
    rows = []
    for seed in seeds:
        folder = finetune_editor(task, scratch / f"seed{seed}", seed=seed, device=device, progress=progress)
        score = run_ssda(SSDAConfig(task=task, editor=str(folder), n_labelled=500, n_test=1000, seeds=[0], epochs=5,
                                    conditions=["original", "adapted"], eval_on="validation", device=device))
        acc = {r["training set"]: r["target_acc_mean"] for r in score.rows()}
        rows.append({"seed": seed, "validation_acc_original": round(acc["original"], 4),
                     "validation_acc_adapted": round(acc["adapted"], 4)})
    best = max(rows, key=lambda r: r["validation_acc_adapted"])
    if out.exists():
        shutil.rmtree(out)
    shutil.move(str(scratch / f"seed{best['seed']}"), str(out))
    shutil.rmtree(scratch, ignore_errors=True)
    if fp16_weights:
        store_half(out)
    info = read_info(out)
    info["command"] = command
    info["command_note"] = (
        f"One DiffusionCLIP fine-tuning per seed ({', '.join(map(str, seeds))}) with the recipe of "
        f"`lab.experiments.ssda.editor.editor_recipe('{task}')`; kept: seed {best['seed']}, the one whose translations of 500 "
        "labelled source images gave the highest target accuracy of a CNN (5 epochs) on 1,000 labelled target "
        "*training* images (a validation set; no test image is used). Candidates: "
        + "; ".join(f"seed {r['seed']}: {r['validation_acc_adapted']:.3f} (originals {r['validation_acc_original']:.3f})"
                    for r in rows) + ".")
    info["selection"] = rows
    write_info(out, info)
    update_metrics(out, {"validation_acc_adapted": best["validation_acc_adapted"],
                         "validation_acc_original": best["validation_acc_original"]})
    return {"saved": str(out), "kept_seed": best["seed"], "candidates": rows}
