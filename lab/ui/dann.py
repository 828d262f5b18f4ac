"""The DANN-stages tab: where should the gradient reversal layer go?"""
from __future__ import annotations

import shlex
from dataclasses import asdict
from pathlib import Path

import gradio as gr
import pandas as pd

from lab.errors import LabError
from lab.experiments.dann import (OFFICE_HOME_DOMAINS, PUBLIC_REFERENCE, SEED_PLACEMENTS, SEED_REFERENCE, TASKS,
                                  DANNConfig, DANNResult, load_result, run_dann)
from lab.models.dann import BACKBONES, PLACEMENTS
from lab.runs import recorded
from lab.ui.common import (export_box, export_files, float_in, folder_in, guarded, int_in, reporter, run_folder,
                            start_job, wire_stop)
from lab.viz.export import save_figure

TAB = "dann"
INTRO = """**Domain-Adversarial Training (DANN, Ganin et al.)**: a domain discriminator sits behind a *gradient
reversal layer* (GRL: identity forward, gradient × (−λ) backward), so everything before the GRL learns features
that do not tell source from target. Where should the GRL go? Train the label network with the GRL at each
placement (labelled source, unlabelled target) and compare source and target test accuracy, mean ± std over seeds.

Placements: **stage 1** backbone output · **stage 2** after the label classifier's first dense layer · **stage 3**
after the classifier's output (the seed's three) · **layer2 / layer3** a ResNet's feature maps · **none** source only.
λ follows the paper's schedule 2/(1+exp(−10p))−1 (or stays constant; the seed used 0.001); SGD with the annealed
rate μ₀/(1+10p)^0.75 (or Adam). The proxy A-distance (PAD, 0 = indistinguishable, 2 = separable) is measured by a
linear classifier on the backbone features of both test sets. Every result says whether ImageNet weights were used."""
TASK_CHOICES = [(label, key) for key, label in TASKS.items()]
PLACEMENT_CHOICES = [(f"{key}: {label}", key) for key, label in PLACEMENTS.items()]
BACKBONE_CHOICES = [(label, key) for key, label in BACKBONES.items()]


def _int_list(text, name: str) -> list[int]:
    try:
        values = [int(v) for v in str(text).replace(";", ",").split(",") if v.strip()]
    except ValueError:
        raise LabError(f"{name} must be whole numbers separated by commas, e.g. 0, 1, 2 (got {text!r}).") from None
    if not 1 <= len(values) <= 10:
        raise LabError(f"Give 1 to 10 {name.lower()}, e.g. 0, 1, 2.")
    return values


def _limit(value, name: str, high: int) -> int | None:
    value = int_in(value, name, 0, high)
    return value or None


def _config(task, officehome_path, oh_source, oh_target, backbone, weights, placements, seeds, epochs, steps,
            batch_size, optimizer, lr, lr_schedule, lambda_schedule, lambda_max, augment, augment_scale,
            sees_target, source_limit, target_limit, eval_limit) -> DANNConfig:
    if isinstance(placements, str):
        placements = [p.strip() for p in placements.split(",") if p.strip()]
    config = DANNConfig(
        task=str(task), backbone=str(backbone), weights=str(weights), placements=list(placements or []),
        seeds=_int_list(seeds, "Seeds"),
        officehome_path=(folder_in(officehome_path, "The Office-Home folder") if str(task) == "officehome"
                         else str(officehome_path or "").strip() or None),
        officehome_source=str(oh_source), officehome_target=str(oh_target),
        epochs=int_in(epochs, "Epochs", 1, 200), steps_per_epoch=int_in(steps, "Steps per epoch", 1, 10_000),
        batch_size=int_in(batch_size, "Batch size", 2, 512), optimizer=str(optimizer),
        lr=float_in(lr, "Learning rate", 1e-6, 0.5), lr_schedule=str(lr_schedule),
        lambda_schedule=str(lambda_schedule), lambda_max=float_in(lambda_max, "λ", 0.0, 10.0),
        augment=bool(augment), augment_scale=float_in(augment_scale, "Augmentation scale", 0.0, 0.45),
        source_only_sees_target=bool(sees_target),
        source_limit=_limit(source_limit, "Source images", 1_000_000),
        target_limit=_limit(target_limit, "Target images", 1_000_000),
        eval_limit=_limit(eval_limit, "Images for the per-epoch curves", 1_000_000))
    config.validate()
    return config


def _command(config: DANNConfig) -> str:
    parts = ["python -m lab dann", f"--task {config.task}", f"--backbone {config.backbone}",
             f"--weights {config.weights}", f"--placements {','.join(config.placements)}",
             f"--seeds {','.join(map(str, config.seeds))}", f"--epochs {config.epochs}",
             f"--steps-per-epoch {config.steps_per_epoch}", f"--batch-size {config.batch_size}",
             f"--optimizer {config.optimizer}", f"--lr {config.lr}", f"--lr-schedule {config.lr_schedule}",
             f"--lambda-schedule {config.lambda_schedule}", f"--lambda {config.lambda_max}",
             f"--augment-scale {config.augment_scale}", f"--eval-limit {config.eval_limit or 0}"]
    if config.task == "officehome":
        parts += [f"--officehome {shlex.quote(config.officehome_path or '')}",
                  f"--officehome-source {config.officehome_source}", f"--officehome-target {config.officehome_target}"]
    for flag, on in (("--no-augment", not config.augment), ("--source-only-sees-target", config.source_only_sees_target)):
        if on:
            parts.append(flag)
    for flag, value in (("--source-limit", config.source_limit), ("--target-limit", config.target_limit)):
        if value:
            parts.append(f"{flag} {value}")
    return " ".join(parts)


def _folder(value) -> Path:
    return run_folder(value, "DANN comparison")


def _info(result: DANNResult, run_dir: Path) -> str:
    best, pad, d = result.best(), result.input_pad or {}, result.data
    lines = [f"**{result.config.label()}** with **{result.config.backbone}** — backbone weights: **{result.weights}**.",
             f"Data: {d.get('source_train')} labelled {d.get('source')} + {d.get('target_train')} unlabelled "
             f"{d.get('target')} training images at {d.get('size')} px; tested on {d.get('source_test')} / "
             f"{d.get('target_test')} test images.",
             f"PAD between the raw test images: **{pad.get('pad', float('nan')):.3f}** (domain error "
             f"{pad.get('domain_error', float('nan')):.3f})."]
    if best:
        lines.append(f"Best placement on the target: **{best['placement']}** ({best['target_acc_mean'] * 100:.2f} % "
                     f"target accuracy, {best['seeds']} seed(s)); {result.seconds / 60:.1f} min in all.")
    lines.append(f"Saved in `{run_dir}`.")
    return "\n\n".join(lines)


@guarded
def compare(task, officehome_path, oh_source, oh_target, backbone, weights, placements, seeds, epochs, steps,
            batch_size, optimizer, lr, lr_schedule, lambda_schedule, lambda_max, augment, augment_scale,
            sees_target, source_limit, target_limit, eval_limit, progress=gr.Progress(), request: gr.Request = None):
    config = _config(task, officehome_path, oh_source, oh_target, backbone, weights, placements, seeds, epochs,
                     steps, batch_size, optimizer, lr, lr_schedule, lambda_schedule, lambda_max, augment,
                     augment_scale, sees_target, source_limit, target_limit, eval_limit)
    token = start_job(TAB, request)
    with recorded("dann", asdict(config), command=_command(config)) as run:
        result = run_dann(config, progress=reporter(progress, token), record=run)
        result.save(run)
        label = result.best_run_label()
        progress((0, 1), desc="t-SNE of the best run")
        tsne = result.tsne_figure(label, "domain")
        save_figure(tsne, run.path("tsne_domain"))
    labels = [result.run_label(r) for r in result.runs]
    return (_info(result, run.dir), pd.DataFrame(result.display_rows()), result.curves_figure("accuracy"), tsne,
            gr.Dropdown(choices=labels, value=label), str(run.dir), export_files(run.dir))


@guarded
def curves(run_folder, metric):
    if not run_folder or not str(run_folder).strip():
        return None  # nothing run yet: switching the curve only matters after a comparison
    return load_result(_folder(run_folder)).curves_figure(str(metric))


@guarded
def tsne(run_folder, label, color_by, progress=gr.Progress()):
    folder = _folder(run_folder)
    result = load_result(folder)
    progress((0, 1), desc="t-SNE")
    fig = result.tsne_figure(str(label) if label else None, str(color_by))
    save_figure(fig, folder / f"tsne_{color_by}")
    return fig, export_files(folder)


def build():
    gr.Markdown(INTRO)
    with gr.Row():
        with gr.Column(scale=1, min_width=320):
            task = gr.Dropdown(TASK_CHOICES, value="usps-mnist", label="Task (source → target)")
            with gr.Accordion("Office-Home folder", open=False) as oh_box:
                officehome_path = gr.Textbox(label="Folder holding Art/, Clipart/, Product/, Real_World/",
                                             placeholder="/data/OfficeHomeDataset_10072016")
                with gr.Row():
                    oh_source = gr.Dropdown(OFFICE_HOME_DOMAINS, value="Clipart", label="Source domain")
                    oh_target = gr.Dropdown(OFFICE_HOME_DOMAINS, value="Real_World", label="Target domain")
            backbone = gr.Radio(BACKBONE_CHOICES, value="lenet", label="Backbone")
            weights = gr.Radio(["auto", "imagenet", "scratch"], value="auto", label="ResNet start",
                               info="auto: ImageNet weights when they can be had (online or cached), else from "
                                    "scratch. The result says which.")
            placements = gr.CheckboxGroup(PLACEMENT_CHOICES, value=list(SEED_PLACEMENTS), label="GRL placements")
            seeds = gr.Textbox(value="0", label="Seeds (comma-separated: mean ± std over them)")
            with gr.Row():
                epochs = gr.Number(value=5, precision=0, label="Epochs", minimum=1, maximum=200)
                steps = gr.Number(value=200, precision=0, label="Steps per epoch", minimum=1, maximum=10_000)
                batch_size = gr.Number(value=64, precision=0, label="Batch per domain", minimum=2, maximum=512)
            with gr.Accordion("Optimisation, λ, data", open=False):
                with gr.Row():
                    optimizer = gr.Radio(["sgd", "adam"], value="sgd", label="Optimizer")
                    lr = gr.Number(value=0.01, label="Learning rate μ₀")
                    lr_schedule = gr.Radio(["annealed", "constant"], value="annealed", label="LR schedule",
                                           info="annealed: μ₀/(1+10p)^0.75")
                with gr.Row():
                    lambda_schedule = gr.Radio(["dann", "constant"], value="dann", label="λ schedule",
                                               info="dann: λ·(2/(1+exp(−10p))−1)")
                    lambda_max = gr.Number(value=1.0, label="λ (max, or the constant; the seed: 0.001)")
                with gr.Row():
                    augment = gr.Checkbox(value=True, label="Augment source (random affine)")
                    augment_scale = gr.Number(value=0.15, label="± scale of the warps")
                sees_target = gr.Checkbox(value=False, label="Source-only run also forwards target batches "
                                                             "(BatchNorm sees both domains)")
                with gr.Row():
                    source_limit = gr.Number(value=0, precision=0, label="Source images (0 = all)")
                    target_limit = gr.Number(value=0, precision=0, label="Target images (0 = all)")
                    eval_limit = gr.Number(value=2000, precision=0, label="Test images per epoch (0 = all)")
            with gr.Row():
                go = gr.Button("Compare placements", variant="primary")
                stop = gr.Button("Stop", variant="stop")
        with gr.Column(scale=2):
            info = gr.Markdown()
            table = gr.Dataframe(label="Ours: accuracy per placement (mean ± std over seeds, full test sets)",
                                 interactive=False)
            metric = gr.Radio([("Test accuracy", "accuracy"), ("Discriminator accuracy", "domain")],
                              value="accuracy", label="Curves")
            curve_plot = gr.Plot(label="Per epoch")
            with gr.Row():
                run_choice = gr.Dropdown([], label="t-SNE of run", allow_custom_value=True)
                color_by = gr.Radio(["domain", "class"], value="domain", label="Colour by")
                tsne_btn = gr.Button("Show t-SNE")
            tsne_plot = gr.Plot(label="t-SNE of backbone features (both test sets)")
            gr.Dataframe(pd.DataFrame(SEED_REFERENCE),
                         label="The seed's reported numbers (ResNet-50, USPS → MNIST) — for reference, not ours",
                         interactive=False)
            gr.Markdown(PUBLIC_REFERENCE)
            run_folder = gr.Textbox(label="Run folder (paste an earlier DANN run to re-plot it)")
            files = export_box()

    inputs = [task, officehome_path, oh_source, oh_target, backbone, weights, placements, seeds, epochs, steps,
              batch_size, optimizer, lr, lr_schedule, lambda_schedule, lambda_max, augment, augment_scale,
              sees_target, source_limit, target_limit, eval_limit]
    task.change(lambda t: gr.Accordion(open=t == "officehome"), task, oh_box, api_name=False)
    events = [
        go.click(compare, inputs, [info, table, curve_plot, tsne_plot, run_choice, run_folder, files],
                 api_name="dann_compare"),
        metric.change(curves, [run_folder, metric], curve_plot, api_name="dann_curves"),
        tsne_btn.click(tsne, [run_folder, run_choice, color_by], [tsne_plot, files], api_name="dann_tsne"),
    ]
    wire_stop(stop, TAB)
    return events
