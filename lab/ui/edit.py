"""The DiffusionCLIP editing tab: invert, fine-tune a UNet copy with a directional CLIP loss, edit by text."""
from __future__ import annotations

import queue
import threading
import time

import gradio as gr
import torch

from lab.clip import clip_choices, load_clip
from lab.clip.vocab import check_prompt, words
from lab.data import DATASETS
from lab.errors import LabError
from lab.experiments.edit import (EditConfig, backbone_defaults, check_image, edit_command, edit_saved, run_edit,
                                 saved_edit_models)
from lab.models.store import list_models, load_diffusion
from lab.runs import recorded
from lab.ui.common import (clip_in, export_box, export_files, float_in, guarded, guarded_stream, int_in,
                            model_dropdown, model_in, reporter, start_job, wire_stop)
from lab.viz.export import save_figure
from lab.viz.plots import line_figure

TAB = "edit"
MAX_UPLOADS = 64


def vocabulary_text(clip, pretrained) -> str:
    try:
        model = load_clip(*clip_in(clip, pretrained))
    except LabError as err:
        return f"⚠️ {err}"
    if model.vocabulary is None:
        return f"**{model.spec.label}** reads any English prompt (no fixed vocabulary)."
    return (f"**{model.spec.label}** knows only these {len(model.vocabulary)} words; prompts with other words are "
            "refused: " + ", ".join(f"`{w}`" for w in model.vocabulary))


def prompt_check(clip, pretrained, source, target) -> str:
    """A non-blocking note under the prompts (the run itself refuses bad prompts with an error)."""
    notes = []
    try:
        model = load_clip(*clip_in(clip, pretrained))
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


def suit_backbone(model):
    """Data and prompts that fit the chosen backbone (faces for a face DDPM); unchanged when unknown."""
    suits = backbone_defaults(model) if model else {}
    if not suits:
        return gr.skip(), gr.skip(), gr.skip()
    return suits["data"], suits["source"], suits["target"]


def _config(model, clip, pretrained, source, target, data, n_train, t0, n_inv, n_train_step, n_test, lam_clip,
            lam_l1, lam_id, lam_struct, iterations, lr, batch, variant, edit_n, save_as, seed) -> EditConfig:
    if not model:
        raise LabError("Choose a DDPM backbone first.")
    clip, pretrained = clip_in(clip, pretrained)
    return EditConfig(
        model=model_in(model, "Diffusion backbone"), clip=clip, clip_pretrained=pretrained, source=str(source or ""),
        target=str(target or ""),
        data=str(data), n_train=int_in(n_train, "Fine-tuning images", 1, 1000), t0=int_in(t0, "t0", 1, 999),
        n_inv_step=int_in(n_inv, "Inversion steps", 1, 1000),
        n_train_step=int_in(n_train_step, "Fine-tuning generation steps", 1, 200),
        n_test_step=int_in(n_test, "Editing steps", 1, 1000), lambda_clip=float_in(lam_clip, "λ_clip", 0, 100),
        lambda_l1=float_in(lam_l1, "λ_L1", 0, 100), lambda_id=float_in(lam_id, "λ_id", 0, 100),
        lambda_struct=float_in(lam_struct, "λ_struct", 0, 100),
        iterations=int_in(iterations, "Iterations", 1, 1000), lr=float_in(lr, "Learning rate", 1e-8, 0.5),
        batch_size=int_in(batch, "Batch size", 1, 256), variant=str(variant), edit_n=int_in(edit_n, "Images to edit", 0, 1000),
        save_as=str(save_as).strip() or None if save_as else None, seed=int_in(seed, "Seed", 0, 2**31 - 1))


def _uploads(files, model_name: str, fit: bool):
    if not files:
        return None
    files = files if isinstance(files, list) else [files]
    if len(files) > MAX_UPLOADS:
        raise LabError(f"{len(files)} images were uploaded; edit at most {MAX_UPLOADS} at once.")
    from lab.data.sources import open_image

    model = load_diffusion(model_name)
    out = []
    for f in files:
        path = f if isinstance(f, str) else getattr(f, "name", None) or f.get("path")
        try:
            out.append(check_image(open_image(path), model.size, model.channels, fit))
        except LabError as err:
            raise LabError(f"{path.rsplit('/', 1)[-1]}: {err}") from None
    return torch.stack(out)


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


@guarded_stream
def edit_run(files, fit, model, clip, pretrained, source, target, data, n_train, t0, n_inv, n_train_step, n_test,
             lam_clip, lam_l1, lam_id, lam_struct, iterations, lr, batch, variant, edit_n, save_as, seed,
             progress=gr.Progress(), request: gr.Request = None):
    config = _config(model, clip, pretrained, source, target, data, n_train, t0, n_inv, n_train_step, n_test,
                     lam_clip, lam_l1, lam_id, lam_struct, iterations, lr, batch, variant, edit_n, save_as, seed)
    config.validate()
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
                  command=edit_command(config)) as run:
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
def edit_with_saved_model(name, files, fit, data, split, n, progress=gr.Progress(), request: gr.Request = None):
    if not name or not str(name).strip():
        raise LabError("Choose a saved DiffusionCLIP model (fine-tune one above with 'Save the fine-tuned model as').")
    name = model_in(name, "Saved DiffusionCLIP model")
    if data not in DATASETS or data == "folder":
        raise LabError(f"Choose a dataset from the list, not {data!r}.")
    if split not in ("train", "test"):
        raise LabError(f"Choose the train or test split, not {split!r}.")
    n = int_in(n, "Images to edit", 1, 256)
    uploads = _uploads(files, name, bool(fit))
    token = start_job(TAB, request)
    config = {"model": name, "data": data, "split": split, "n": n, "uploads": 0 if uploads is None else len(uploads)}
    command = f"python -m lab edit --with-saved {name} --data {data} --edit-split {split} --edit-n {n}"
    with recorded("edit-saved", config, command=command) as run:
        out = edit_saved(name, data, split, n, uploads, progress=reporter(progress, token))
        out["grid"].save(run.add("edit_grid.png"))
        torch.save({"originals": out["originals"], "edited": out["edited"]}, run.add("images.pt"))
    cfg = out["model"].info["diffusionclip"]
    return out["grid"], (f"Edited {len(out['edited'])} image(s) with **{name}** (“{cfg.get('source')}” → "
                         f"“{cfg.get('target')}”, t0 = {cfg.get('t0')}) in {out['seconds']:.1f} s. Saved in "
                         f"`{run.dir}`; repeat with `{command}`."), export_files(run.dir)


def build() -> None:
    gr.Markdown("**DiffusionCLIP** (Kim et al. 2022): images are inverted to x_t0 by deterministic DDIM; a copy of the "
                "diffusion UNet is fine-tuned so that its generation from x_t0 moves the image in CLIP space along the "
                "direction from the source text to the target text, while an L1 and an identity loss keep the rest. "
                "Columns: original, inversion reconstruction (original model), edited (fine-tuned model).")
    ddpms = list_models("ddpm")
    clips = clip_choices()
    with gr.Row():
        with gr.Column(scale=1, min_width=320):
            model = model_dropdown("ddpm", label="Diffusion backbone (DDPM)",
                                   value="ddpm-mnist" if "ddpm-mnist" in ddpms else None)
            with gr.Row():
                clip = gr.Dropdown(clips, value=clips[0] if clips else None, label="CLIP", allow_custom_value=True,
                                   info="clip-lab (shipped), a folder, or an open_clip name such as ViT-B-32.")
                pretrained = gr.Textbox(value="", label="Pretrained tag or weights file",
                                        info="for open_clip names, e.g. openai (online)")
            vocab = gr.Markdown(vocabulary_text(clips[0], "") if clips else "")
            source = gr.Textbox(value="a digit", label="Source text", max_lines=1)
            target = gr.Textbox(value="a sketch of a digit", label="Target text", max_lines=1)
            with gr.Row():
                prompt_note = gr.Markdown()
                check = gr.Button("Check prompts", size="sm", scale=0)
            with gr.Tabs():
                with gr.Tab("Dataset images"):
                    data = gr.Dropdown([d for d in DATASETS if d != "folder"], value="mnist", label="Data (train split)")
                    n_train = gr.Slider(1, 200, value=8, step=1, label="Fine-tuning images")
                    edit_n = gr.Slider(0, 200, value=8, step=1, label="Test images to edit afterwards")
                with gr.Tab("Upload"):
                    files = gr.File(file_count="multiple", file_types=["image"], type="filepath",
                                    label="Images to fine-tune on and edit (instead of dataset images)")
                    fit = gr.Checkbox(value=False, label="Fit uploads to the model (centre-crop, resize, grey/RGB)")
            with gr.Accordion("Steps, weights, optimisation", open=False):
                t0 = gr.Slider(1, 999, value=400, step=1, label="t0 (how far to invert)")
                n_inv = gr.Slider(1, 200, value=20, step=1, label="Inversion steps (n_inv_step)")
                n_train_step = gr.Slider(1, 40, value=6, step=1, label="Generation steps while fine-tuning")
                n_test = gr.Slider(1, 200, value=20, step=1, label="Generation steps when editing")
                lam_clip = gr.Number(value=1.0, label="λ_clip (directional CLIP loss)")
                lam_l1 = gr.Number(value=0.1, label="λ_L1 (to the original)")
                lam_id = gr.Number(value=0.5, label="λ_id (identity: digit-classifier features; face-api "
                                                    "descriptor for RGB faces)")
                lam_struct = gr.Number(value=0.0, label="λ_struct (edge maps: keeps shapes, lets brightness change)")
                iterations = gr.Slider(1, 50, value=3, step=1, label="Iterations (passes over the images)")
                lr = gr.Number(value=2e-4, label="Learning rate")
                batch = gr.Slider(1, 64, value=8, step=1, label="Fine-tuning batch size")
                variant = gr.Radio(["full", "eff"], value="full", label="Variant",
                                   info="full: gradient through all steps; eff: one step at a time (less memory)")
                seed = gr.Number(value=0, precision=0, label="Seed")
            save_as = gr.Textbox(value="", label="Save the fine-tuned model as (optional name)",
                                 info="written to the checkpoints folder; the batch-adaptation tab can open it")
            with gr.Row():
                go = gr.Button("Fine-tune and edit", variant="primary")
                stop = gr.Button("Stop", variant="stop")
        with gr.Column(scale=2):
            grid = gr.Image(label="original | reconstruction | edited", type="pil", format="png", interactive=False)
            plot = gr.Plot(label="Loss")
            info = gr.Markdown()
            export = export_box()
    model.change(suit_backbone, model, [data, source, target], api_name="edit_backbone")
    clip.change(vocabulary_text, [clip, pretrained], vocab, api_name="edit_vocabulary")
    for box in (source, target):
        box.blur(prompt_check, [clip, pretrained, source, target], prompt_note, api_name=False)
    check.click(prompt_check, [clip, pretrained, source, target], prompt_note, api_name="edit_check")
    inputs = [files, fit, model, clip, pretrained, source, target, data, n_train, t0, n_inv, n_train_step, n_test,
              lam_clip, lam_l1, lam_id, lam_struct, iterations, lr, batch, variant, edit_n, save_as, seed]
    gr.Markdown("### Edit with a saved fine-tuned model\nNo fine-tuning: invert with the saved model's base DDPM, "
                "generate with the fine-tuned UNet.")
    saved = saved_edit_models()
    with gr.Row():
        with gr.Column(scale=1, min_width=320):
            saved_model = gr.Dropdown(saved, value=saved[0] if saved else None, allow_custom_value=True,
                                      label="Saved DiffusionCLIP model")
            saved_files = gr.File(file_count="multiple", file_types=["image"], type="filepath",
                                  label="Images to edit (empty: dataset images)")
            saved_fit = gr.Checkbox(value=False, label="Fit uploads to the model (centre-crop, resize, grey/RGB)")
            with gr.Row():
                saved_data = gr.Dropdown([d for d in DATASETS if d != "folder"], value="mnist", label="Dataset")
                saved_split = gr.Radio(["test", "train"], value="test", label="Split")
                saved_n = gr.Slider(1, 256, value=16, step=1, label="Images")
            saved_go = gr.Button("Edit with the saved model")
        with gr.Column(scale=2):
            saved_grid = gr.Image(label="original | edited", type="pil", format="png", interactive=False)
            saved_info = gr.Markdown()
            saved_export = export_box()
    events = [go.click(edit_run, inputs, [grid, plot, info, export], api_name="edit_run"),
              saved_go.click(edit_with_saved_model, [saved_model, saved_files, saved_fit, saved_data, saved_split,
                                                     saved_n], [saved_grid, saved_info, saved_export],
                             api_name="edit_saved")]
    wire_stop(stop, TAB)
    return events
