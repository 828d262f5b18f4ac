"""The DiffusionCLIP editing tab: invert, fine-tune a UNet copy with a directional CLIP loss, edit by text."""
from __future__ import annotations

import queue
import threading
import time

import gradio as gr

from lab.clip import clip_choices, load_clip
from lab.clip.vocab import check_prompt, words
from lab.errors import LabError
from lab.experiments.edit.config import EditConfig, SavedEditConfig, TradeoffConfig
from lab.experiments.edit.prompts import backbone_defaults
from lab.experiments.edit.recipes import RECIPE_FIELDS
from lab.experiments.edit.run import run_edit
from lab.experiments.edit.saved import edit_saved, saved_edit_models
from lab.models.store import list_models, load_diffusion
from lab.runs import recorded
from lab.ui.common import (
    clip_in,
    export_box,
    export_files,
    guarded,
    guarded_stream,
    model_dropdown,
    model_in,
    reporter,
    start_job,
    wire_stop,
)
from lab.ui.form import Form
from lab.viz.export import save_figure
from lab.viz.plots import line_figure

TAB = "edit"
MAX_UPLOADS = 64
UPLOAD_FIT = "Fit uploads to the model (centre-crop, resize, grey/RGB)"
FORM = Form(EditConfig)
SAVED = Form(SavedEditConfig)
TRADEOFF = Form(TradeoffConfig)
FORMS = (FORM, SAVED, TRADEOFF)


def vocabulary_text(clip, clip_pretrained) -> str:
    try:
        model = load_clip(*clip_in(clip, clip_pretrained))
    except LabError as err:
        return f"⚠️ {err}"
    if model.vocabulary is None:
        return f"**{model.spec.label}** reads any English prompt (no fixed vocabulary)."
    return (f"**{model.spec.label}** knows only these {len(model.vocabulary)} words; prompts with other words are "
            "refused: " + ", ".join(f"`{w}`" for w in model.vocabulary))


def prompt_check(clip, clip_pretrained, source, target) -> str:
    """A non-blocking note under the prompts (the run itself refuses bad prompts with an error)."""
    notes = []
    try:
        model = load_clip(*clip_in(clip, clip_pretrained))
        vocab = model.vocabulary
    except LabError:
        vocab = None
    for what, text in (("source", source), ("target", target)):
        try:
            check_prompt(text, vocab, f"{what} text")
        except LabError as err:
            notes.append(f"⚠️ {err}" if "never saw" not in str(err) else
                         f"⚠️ The {what} text has word(s) outside the CLIP's vocabulary: "
                         + ", ".join(w for w in words(str(text)) if w not in set(vocab)))
    return "\n\n".join(notes) or "✓ Both prompts can be read by this CLIP."


SUITED = ("data", "source", "target", *RECIPE_FIELDS)


def suit_backbone(model):
    """Data, prompts and the editing recipe that fit the chosen backbone (faces and the face recipe for a face
    DDPM); unchanged when unknown."""
    suits = backbone_defaults(model) if model else {}
    return tuple(suits.get(name, gr.skip()) for name in SUITED)


def _uploads(files, model_name: str, fit: bool):
    if not files:
        return None
    files = files if isinstance(files, list) else [files]
    if len(files) > MAX_UPLOADS:
        raise LabError(f"{len(files)} images were uploaded; edit at most {MAX_UPLOADS} at once.")
    from lab.data.images import images_from_paths

    model = load_diffusion(model_name)
    paths = [f if isinstance(f, str) else getattr(f, "name", None) or f.get("path") for f in files]
    return images_from_paths(paths, model.size, model.channels, fit)


def _loss_figure(history: list[dict]):
    steps = [h["step"] for h in history]
    series = {"total": [h["total"] for h in history], "1 − cos (CLIP)": [h["clip"] for h in history],
              "L1": [h["l1"] for h in history]}
    if history and "id" in history[0]:
        series["identity"] = [h["id"] for h in history]
    if history and "struct" in history[0]:
        series["structure"] = [h["struct"] for h in history]
    return line_figure(steps, series, "Fine-tuning loss", "optimiser step", "loss", markers=len(steps) < 40)


def _metrics_text(result, run) -> str:
    m = result.metrics
    lines = [f"**CLIP direction cos(ΔI, ΔT)**: before {m['clip_direction_before']:+.3f} (reconstruction) → "
             f"after **{m['clip_direction_after']:+.3f}** (edited)",
             f"**Inversion MSE** (original vs. reconstruction): {m['inversion_mse']:.4f}; L1 edited vs. original "
             f"{m['l1_to_original']:.3f}"]
    if "identity_label_kept" in m:
        lines.append(f"**Identity preserved**: digit label kept for {100 * m['identity_label_kept']:.0f} % of the "
                     f"images; classifier-feature cosine {m['identity_feature_cos']:.3f}")
    elif "identity_same_face" in m:
        lines.append(f"**Identity preserved**: the same person (face-api descriptor distance < 0.6) in "
                     f"{100 * m['identity_same_face']:.0f} % of the images; descriptor cosine "
                     f"{m['identity_feature_cos']:.3f}")
    else:
        lines.append("**Identity**: not measured for this model (no identity network).")
    lines.append(f"{m['n_train']} fine-tuning images ({'inverted latents from the cache' if m['cache_hit'] else 'inverted and cached'}), "
                 f"{m['optimizer_steps']} optimiser steps in {m['finetune_seconds']:.1f} s; {m['n_edited']} images "
                 f"edited in {m['edit_seconds']:.1f} s. Run saved in `{run.dir}`.")
    if result.saved_to:
        lines.append(f"Fine-tuned model saved to `{result.saved_to}` (reopen it in any model box).")
    lines += [f"⚠️ {n}" for n in result.notes]
    return "\n\n".join(lines)


def _config(model, clip, clip_pretrained, values) -> EditConfig:
    if not model:
        raise LabError("Choose a DDPM backbone first.")
    clip, clip_pretrained = clip_in(clip, clip_pretrained)
    return FORM.config(values, model=model_in(model, "Diffusion backbone"), clip=clip,
                       clip_pretrained=clip_pretrained).validate()


@guarded_stream
def edit_run(files, fit, model, clip, clip_pretrained, source, target, data, n_train, t0, n_inv_step, n_train_step,
             n_test_step, lambda_clip, lambda_l1, lambda_id, lambda_struct, identity, clip_views, iterations, lr,
             batch_size, variant, edit_n, save_as, seed, progress=gr.Progress(), request: gr.Request = None):
    config = _config(model, clip, clip_pretrained, locals())
    uploads = _uploads(files, config.model, bool(fit))
    token = start_job(TAB, request)
    steps: queue.Queue = queue.Queue()
    state: dict = {"progress": (0, 1, "Loading")}

    def report(done, total, desc):
        token.check()
        state["progress"] = (done, total, desc)

    def work():
        try:
            state["result"] = run_edit(config, uploads=uploads, progress=report,
                                       on_step=lambda done, total, parts: steps.put(parts))
        except BaseException as err:  # noqa: BLE001 — handed to the request thread
            state["error"] = err

    with recorded("edit", {**config.__dict__, "uploads": 0 if uploads is None else len(uploads)},
                  command=config.to_command()) as run:
        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        history, last = [], 0.0
        while thread.is_alive() or not steps.empty():
            try:
                history.append(steps.get(timeout=0.5))
            except queue.Empty:
                pass
            done, total, desc = state["progress"]
            progress((done, max(total, 1)), desc=desc)
            if history and time.time() - last > 1.0:
                last = time.time()
                yield gr.skip(), _loss_figure(history), gr.skip(), gr.skip()
        thread.join()
        if "error" in state:
            raise state["error"]
        result = state["result"]
        result.save(run)
        fig = _loss_figure(result.history)
        save_figure(fig, run.path("losses"))
    yield result.grid, fig, _metrics_text(result, run), export_files(run.dir)


@guarded
def tradeoff(files, fit, model, clip, clip_pretrained, source, target, data, n_train, t0, n_inv_step, n_train_step,
             n_test_step, lambda_clip, lambda_l1, lambda_id, lambda_struct, identity, clip_views, iterations, lr,
             batch_size, variant, edit_n, save_as, seed, sweep_param, sweep_values, progress=gr.Progress(),
             request: gr.Request = None):
    """The same edit for a few values of one loss weight, judged: style reached against label kept."""
    import pandas as pd

    from lab.experiments.edit.tradeoff import run_tradeoff

    if files:
        raise LabError("The trade-off sweep judges dataset images against their labels: clear the uploads and "
                       "choose a dataset.")
    values = {k: v for k, v in locals().items() if k != "save_as"}
    if not model:
        raise LabError("Choose a DDPM backbone first.")
    clip, clip_pretrained = clip_in(clip, clip_pretrained)
    config = TRADEOFF.config(values, model=model_in(model, "Diffusion backbone"), clip=clip,
                             clip_pretrained=clip_pretrained, save_as=None).validate()
    token = start_job(TAB, request)
    with recorded("edit-tradeoff", config.__dict__, command=config.to_command()) as run:
        result = run_tradeoff(config, progress=reporter(progress, token))
        result.save(run)
    fig = result.figure()
    table = pd.DataFrame([{k: v for k, v in r.items() if k != "command"} for r in result.rows])
    return fig, result.verdict(), table, export_files(run.dir, {"tradeoff": fig})


@guarded
def edit_with_saved_model(with_saved, files, fit, data, edit_split, edit_n, progress=gr.Progress(),
                          request: gr.Request = None):
    if not with_saved or not str(with_saved).strip():
        raise LabError("Choose a saved DiffusionCLIP model (fine-tune one above with 'Save the fine-tuned model as').")
    config = SAVED.config(locals(), with_saved=model_in(with_saved, "Saved DiffusionCLIP model")).validate()
    uploads = _uploads(files, config.with_saved, bool(fit))
    token = start_job(TAB, request)
    command = config.to_command()
    with recorded("edit-saved", {**config.__dict__, "uploads": 0 if uploads is None else len(uploads)},
                  command=command) as run:
        result = edit_saved(config, uploads, progress=reporter(progress, token))
        result.save(run)
    cfg = result.settings
    return result.grid, (f"Edited {len(result.edited)} image(s) with **{config.with_saved}** (“{cfg.get('source')}” → "
                         f"“{cfg.get('target')}”, t0 = {cfg.get('t0')}) in {result.seconds:.1f} s. Saved in "
                         f"`{run.dir}`; repeat with `{command}`."), export_files(run.dir)


def build() -> None:
    gr.Markdown("**DiffusionCLIP** (Kim et al. 2022): images are inverted to x_t0 by deterministic DDIM; a copy of the "
                "diffusion UNet is fine-tuned so that its generation from x_t0 moves the image in CLIP space along the "
                "direction from the source text to the target text, while an L1 and an identity loss keep the rest. "
                "Columns: original, inversion reconstruction (original model), edited (fine-tuned model).")
    ddpms = list_models("ddpm")
    clips = clip_choices()
    default_clip = EditConfig.clip if EditConfig.clip in clips else (clips[0] if clips else None)
    with gr.Row():
        with gr.Column(scale=1, min_width=320):
            model = FORM.add("model", model_dropdown("ddpm", label=FORM.spec("model").label,
                                                     value=EditConfig.model if EditConfig.model in ddpms else None))
            with gr.Row():
                clip = FORM.add("clip", gr.Dropdown(
                    clips, value=default_clip, label="CLIP", allow_custom_value=True,
                    info="clip-lab (shipped), a folder, or an open_clip name such as ViT-B-32."))
                clip_pretrained = FORM.widget("clip_pretrained", info="for open_clip names, e.g. openai (online)")
            vocab = gr.Markdown(vocabulary_text(default_clip, "") if default_clip else "")
            source = FORM.widget("source", info=None)
            target = FORM.widget("target", info=None)
            with gr.Row():
                prompt_note = gr.Markdown()
                check = gr.Button("Check prompts", size="sm", scale=0)
            with gr.Tabs():
                with gr.Tab("Dataset images"):
                    data = FORM.widget("data")
                    n_train = FORM.widget("n_train")
                    edit_n = FORM.widget("edit_n")
                with gr.Tab("Upload"):
                    files = gr.File(file_count="multiple", file_types=["image"], type="filepath",
                                    label="Images to fine-tune on and edit (instead of dataset images)")
                    fit = gr.Checkbox(value=False, label=UPLOAD_FIT)
            with gr.Accordion("Steps, weights, optimisation", open=False):
                t0 = FORM.widget("t0", label="t0 (how far to invert)")
                n_inv_step = FORM.widget("n_inv_step")
                n_train_step = FORM.widget("n_train_step")
                n_test_step = FORM.widget("n_test_step")
                lambda_clip = FORM.widget("lambda_clip", kind="number")
                lambda_l1 = FORM.widget("lambda_l1", kind="number")
                lambda_id = FORM.widget("lambda_id", kind="number")
                lambda_struct = FORM.widget("lambda_struct", kind="number")
                identity = FORM.widget("identity")
                clip_views = FORM.widget("clip_views")
                iterations = FORM.widget("iterations")
                lr = FORM.widget("lr", kind="number")
                batch_size = FORM.widget("batch_size")
                variant = FORM.widget("variant", kind="radio",
                                      info="full: gradient through all steps; eff: one step at a time (less memory)")
                seed = FORM.widget("seed", kind="number")
            save_as = FORM.widget("save_as", info="written to the checkpoints folder; the batch-adaptation tab can "
                                                  "open it")
            with gr.Row():
                go = gr.Button("Fine-tune and edit", variant="primary")
                stop = gr.Button("Stop", variant="stop")
        with gr.Column(scale=2):
            grid = gr.Image(label="original | reconstruction | edited", type="pil", format="png", interactive=False)
            plot = gr.Plot(label="Loss")
            info = gr.Markdown()
            export = export_box()
    suited = {"data": data, "source": source, "target": target, "t0": t0, "lambda_clip": lambda_clip,
              "lambda_l1": lambda_l1, "lambda_id": lambda_id, "lambda_struct": lambda_struct, "identity": identity,
              "clip_views": clip_views, "iterations": iterations, "lr": lr, "n_train": n_train}
    model.change(suit_backbone, model, [suited[name] for name in SUITED], api_name="edit_backbone")
    clip.change(vocabulary_text, [clip, clip_pretrained], vocab, api_name="edit_vocabulary")
    for box in (source, target):
        box.blur(prompt_check, [clip, clip_pretrained, source, target], prompt_note, api_name=False)
    check.click(prompt_check, [clip, clip_pretrained, source, target], prompt_note, api_name="edit_check")
    inputs = [files, fit, model, clip, clip_pretrained, source, target, data, n_train, t0, n_inv_step, n_train_step,
              n_test_step, lambda_clip, lambda_l1, lambda_id, lambda_struct, identity, clip_views, iterations, lr,
              batch_size, variant, edit_n, save_as, seed]
    TRADEOFF.share(FORM)
    with gr.Accordion("Trade-off sweep: what each loss weight costs (style reached against label kept)", open=False):
        gr.Markdown("The same edit for a few values of one weight, each judged by independent classifiers (a style "
                    "judge and a label judge, trained once on the data and cached): the top right is the goal.")
        with gr.Row():
            sweep_param = TRADEOFF.widget("sweep_param", kind="radio")
            sweep_values = TRADEOFF.widget("sweep_values")
            sweep_go = gr.Button("Run the sweep")
        sweep_plot = gr.Plot(label="Style reached against label kept")
        sweep_text = gr.Markdown()
        sweep_table = gr.Dataframe(label="One row per value", interactive=False, wrap=True)
        sweep_export = export_box()
    gr.Markdown("### Edit with a saved fine-tuned model\nNo fine-tuning: invert with the saved model's base DDPM, "
                "generate with the fine-tuned UNet.")
    saved = saved_edit_models()
    first = SavedEditConfig.with_saved
    with gr.Row():
        with gr.Column(scale=1, min_width=320):
            with_saved = SAVED.add("with_saved", gr.Dropdown(
                saved, value=first if first in saved else (saved[0] if saved else None), allow_custom_value=True,
                label=SAVED.spec("with_saved").label))
            saved_files = gr.File(file_count="multiple", file_types=["image"], type="filepath",
                                  label="Images to edit (empty: dataset images)")
            saved_fit = gr.Checkbox(value=False, label=UPLOAD_FIT)
            with gr.Row():
                saved_data = SAVED.widget("data", info=None)
                saved_split = SAVED.widget("edit_split", kind="radio", info=None)
                saved_n = SAVED.widget("edit_n", info=None)
            saved_go = gr.Button("Edit with the saved model")
        with gr.Column(scale=2):
            saved_grid = gr.Image(label="original | edited", type="pil", format="png", interactive=False)
            saved_info = gr.Markdown()
            saved_export = export_box()
    events = [go.click(edit_run, inputs, [grid, plot, info, export], api_name="edit_run"),
              saved_go.click(edit_with_saved_model, [with_saved, saved_files, saved_fit, saved_data, saved_split,
                                                     saved_n], [saved_grid, saved_info, saved_export],
                             api_name="edit_saved"),
              sweep_go.click(tradeoff, inputs + [sweep_param, sweep_values], [sweep_plot, sweep_text, sweep_table,
                                                                          sweep_export], api_name="edit_tradeoff")]
    wire_stop(stop, TAB)
    return events
