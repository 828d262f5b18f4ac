"""The batch-adaptation tab: translate labelled source images into the target domain, train a CNN on them."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import gradio as gr

from lab.config import get_settings
from lab.errors import LabError
from lab.experiments.edit.config import NAME
from lab.experiments.edit.saved import saved_edit_models as editor_models
from lab.experiments.ssda.config import CONDITIONS, TASKS, SSDAConfig
from lab.experiments.ssda.editor import EDITOR_RECIPE, editor_recipe, finetune_editor
from lab.experiments.ssda.result import SSDAResult, load_result
from lab.experiments.ssda.run import run_ssda
from lab.models.store import read_info, resolve_model_path
from lab.runs import recorded
from lab.ui.common import (
    export_box,
    export_files,
    folder_in,
    guarded,
    int_in,
    model_in,
    reporter,
    run_folder,
    start_job,
    wire_stop,
)
from lab.ui.display import STOPPED_TABLE, figure, hint_table, results_table, table_of
from lab.ui.form import Form
from lab.viz.export import STATIC_EXPORT_NOTE, static_export_available

TAB = "ssda"
INTRO = """**Does translating labelled source images into the target domain help a classifier?** n′ labelled source
images are translated into the target domain by a DiffusionCLIP fine-tuned model (DDIM inversion with its base
model, generation with the fine-tuned UNet; fine-tune and save one in the *DiffusionCLIP editing* tab). The seed's
CNN (conv 32-64-128, each with 2×2 max-pooling, then two dense layers; sigmoid + binary cross-entropy for two
classes) is trained, same seed and epochs, on **(a)** the originals, **(b)** the adapted images, **(c)** n′ labelled
target images (the oracle) and **(d)** (a) + (b), and tested on the source and the target test sets after every
epoch; mean ± std over seeds. Translations are cached on disk, so a rerun does not redo them."""
TASK_CHOICES = [(spec.label, key) for key, spec in TASKS.items()]
CONDITION_CHOICES = [(label, key) for key, label in CONDITIONS.items()]
FORM = Form(SSDAConfig)
FORMS = (FORM,)
# widgets that open at the chosen task's values (the declared defaults are "the task's"): made from the same
# declaration, but not part of FORM, whose widgets open at the declared defaults
BY_TASK = Form(SSDAConfig)


def _seeds(text) -> list[int]:
    try:
        seeds = [int(v) for v in str(text or "").replace(";", ",").split(",") if v.strip()]
    except ValueError:
        raise LabError(f"Seeds are whole numbers separated by commas, e.g. 0,1,2 (got {text!r}).") from None
    if not seeds:
        raise LabError("Give at least one seed, e.g. 0,1,2.")
    return seeds


def _config(task, editor, target_path, values) -> SSDAConfig:
    editor = model_in(editor, "DiffusionCLIP model") if str(editor or "").strip() else ""
    target_path = folder_in(target_path, "The target folder") if task == "folder" else str(target_path or "").strip()
    return FORM.config(values, editor=editor, target_path=target_path or None,
                       seeds=_seeds(values["seeds"])).validate()


def editor_info(editor) -> str:
    if not editor or not str(editor).strip():
        return "No DiffusionCLIP model chosen: only (a) and (c) can run."
    try:
        info = read_info(resolve_model_path(str(editor)))
    except LabError as err:
        return f"⚠️ {err}"
    cfg = info.get("diffusionclip")
    if not cfg:
        return f"⚠️ {editor} is not a DiffusionCLIP fine-tuned model."
    return (f"**{editor}**: “{cfg.get('source')}” → “{cfg.get('target')}”, base {info.get('base_model')}, "
            f"t0 = {cfg.get('t0')}, fine-tuned on {info.get('data', {}).get('count', '?')} images.")


def _task_changed(task):
    spec = TASKS.get(task)
    if spec is None:
        return gr.update(), gr.update(), gr.update(), gr.update(), gr.update()
    editors = editor_models()
    value = spec.editor if spec.editor in editors else (editors[0] if editors else None)
    iterations = editor_recipe(task)["iterations"]
    return (gr.Dropdown(choices=editors, value=value), gr.Number(value=spec.n_labelled),
            gr.Textbox(visible=task == "folder"), gr.Textbox(value=spec.editor), gr.Number(value=iterations))


def _info(result: SSDAResult, run_dir: Path) -> str:
    d, t = result.data, result.translation
    lines = [f"**{result.config.label()}** — n′ = **{d.get('n_labelled')}** labelled {d.get('source')} images; "
             f"tested on {d.get('source_test')} source and {d.get('target_test')} target test images "
             f"({d.get('size')} px)."]
    if t:
        speed = f"{t['images_per_s']} images/s" if t.get("images_per_s") else "all from the cache"
        lines.append(f"Translated by **{t['editor']}** (“{t['prompts'][0]}” → “{t['prompts'][1]}”): "
                     f"{t['cached_batches']} of {t['batches']} batches from the cache, {t['seconds']} s ({speed}).")
    headline = result.headline()
    if headline:
        lines.insert(0, headline)
    else:
        lines += [f"⚠️ {w}" for w in result.warnings()]
    if not static_export_available():
        lines.append(STATIC_EXPORT_NOTE)
    lines.append(f"Saved in `{run_dir}`; repeat with `{result.config.resolved().to_command()}`.")
    return "\n\n".join(lines)


def _outputs(result: SSDAResult, run_dir: Path, stopped: str = ""):
    gallery = result.gallery() if result.adapted is not None else None
    info = (stopped + " The table and curves show the networks trained so far.\n\n" if stopped else "") \
        + _info(result, run_dir)
    return (info, table_of(result.display_rows()), result.curves_figure(), gallery, str(run_dir),
            export_files(run_dir))


def _partial(text, folder):
    """A stopped run: what it finished (it is saved after every trained network), else the line alone."""
    if folder:
        try:
            return _outputs(load_result(folder), Path(folder), stopped=text)
        except LabError:  # stopped before the first network was saved
            return text, hint_table(STOPPED_TABLE), None, None, str(folder), export_files(folder)
    return text, hint_table(STOPPED_TABLE), None, None, gr.skip(), None


@guarded(stopped=_partial)
def adapt(task, editor, target_path, n_labelled, n_test, conditions, seeds, epochs, batch_size, lr,
          progress=gr.Progress(), request: gr.Request = None):
    config = _config(task, editor, target_path, locals())
    token = start_job(TAB, request)
    resolved = config.resolved()
    with recorded("ssda", asdict(resolved), command=resolved.to_command()) as run:
        result = run_ssda(config, progress=reporter(progress, token), record=run)
        result.save(run)
    return _outputs(result, run.dir)


@guarded
def fine_tune(task, name, iterations, progress=gr.Progress(), request: gr.Request = None):
    name = str(name or "").strip()
    if not NAME.match(name):
        raise LabError(f"{name!r} is not a usable model name: letters, digits, '-', '_' and '.', up to 64 characters.")
    token = start_job(TAB, request)
    folder = finetune_editor(str(task), get_settings().checkpoint_dir / name, int_in(iterations, "Iterations", 1, 200),
                             progress=reporter(progress, token))
    return gr.Dropdown(choices=editor_models(), value=name), editor_info(folder)


@guarded
def reopen(folder):
    folder = run_folder(folder, "batch-adaptation run")
    return _outputs(load_result(folder), folder)


def build():
    gr.Markdown(INTRO)
    editors = editor_models()
    first = TASKS["mnist-sketch"]
    with gr.Row():
        with gr.Column(scale=1, min_width=320):
            task = FORM.widget("task", choices=TASK_CHOICES, info=None)
            editor = gr.Dropdown(editors, value=first.editor if first.editor in editors else None,
                                 allow_custom_value=True, label=FORM.spec("editor").label,
                                 info="Saved by the editing tab ('Save the fine-tuned model as'), or a folder.")
            about = gr.Markdown(editor_info(first.editor if first.editor in editors else None))
            with gr.Accordion("No model for this task? Fine-tune one here (the editing tab's engine)", open=False):
                faces = editor_recipe("faces-sketch")
                gr.Markdown(f"From the task's prompts, on {EDITOR_RECIPE['n_train']} source images, with the "
                            f"backbone's recipe (the shipped editors'): digits t0 = {EDITOR_RECIPE['t0']}, "
                            f"λ_struct = {EDITOR_RECIPE['lambda_struct']}, lr {EDITOR_RECIPE['lr']}, "
                            f"{EDITOR_RECIPE['iterations']} iterations; faces t0 = {faces['t0']}, λ_L1 = "
                            f"{faces['lambda_l1']}, λ_id = {faces['lambda_id']} (face-api), lr {faces['lr']}, "
                            f"{faces['iterations']} iterations. About a minute per 16 iterations on a CPU core for "
                            "28-px digits, about two for 64-px faces.")
                with gr.Row():
                    new_name = gr.Textbox(value=first.editor, label="Save as", max_lines=1)
                    new_iterations = gr.Number(value=EDITOR_RECIPE["iterations"], precision=0, label="Iterations",
                                               minimum=1, maximum=200)
                tune = gr.Button("Fine-tune and save")
            target_path = FORM.widget("target_path", visible=False, info=None)
            with gr.Row():
                n_labelled = BY_TASK.widget("n_labelled", value=first.n_labelled, label="n′ labelled source images",
                                            info=None)
                n_test = BY_TASK.widget("n_test", value=first.n_test, label="Test images per domain", info=None)
            conditions = FORM.widget("conditions", choices=CONDITION_CHOICES, label="Train the CNN on", info=None)
            seeds = FORM.widget("seeds", info=None)
            with gr.Row():
                epochs = FORM.widget("epochs", kind="number", label="Epochs", info=None)
                batch_size = FORM.widget("batch_size", kind="number", label="Batch size", info=None)
                lr = FORM.widget("lr", kind="number", label="Learning rate", info="Adam")
            with gr.Row():
                go = gr.Button("Translate and compare", variant="primary")
                stop = gr.Button("Stop", variant="stop")
        with gr.Column(scale=2):
            info = gr.Markdown()
            table = results_table("Final-epoch accuracy (mean ± std over seeds)",
                                  "Press Translate and compare: one row per training set appears here.",
                                  column_widths=["16%", "20%", "20%", "9%", "35%"])
            plot = gr.Plot(label="Accuracy per epoch: target test (solid), source test (dotted)")
            gallery = figure("Originals (top) and their translations (bottom)")
            folder = gr.Textbox(label="Run folder (paste an earlier batch-adaptation run and press Reopen)")
            reopen_btn = gr.Button("Reopen run")
            files = export_box()

    task.change(_task_changed, task, [editor, n_labelled, target_path, new_name, new_iterations], api_name=False)
    editor.change(editor_info, editor, about, api_name=False)
    outputs = [info, table, plot, gallery, folder, files]
    events = [
        go.click(adapt, [task, editor, target_path, n_labelled, n_test, conditions, seeds, epochs, batch_size, lr],
                 outputs, api_name="ssda_run"),
        reopen_btn.click(reopen, folder, outputs, api_name="ssda_reopen"),
        tune.click(fine_tune, [task, new_name, new_iterations], [editor, about], api_name="ssda_finetune"),
    ]
    wire_stop(stop, TAB)
    return events
