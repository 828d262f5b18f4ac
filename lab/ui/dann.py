"""The DANN-stages tab: where should the gradient reversal layer go?"""
from __future__ import annotations

from argparse import ArgumentTypeError
from dataclasses import asdict
from pathlib import Path

import gradio as gr
import pandas as pd

from lab.errors import LabError
from lab.experiments.dann.config import TASKS, DANNConfig
from lab.experiments.dann.reference import PUBLIC_REFERENCE, SEED_REFERENCE
from lab.experiments.dann.results import DANNResult, features_zip, load_result
from lab.experiments.dann.run import run_dann
from lab.models.dann_registry import BACKBONES, METHODS, PLACEMENTS
from lab.runs import recorded
from lab.ui.common import (
    export_box,
    export_files,
    folder_in,
    guarded,
    reporter,
    run_folder,
    start_job,
    wire_stop,
)
from lab.ui.form import Form
from lab.viz.export import save_figure

TAB = "dann"
INTRO = """**Domain-Adversarial Training (DANN, Ganin et al.)**: a domain discriminator sits behind a *gradient
reversal layer* (GRL: identity forward, gradient × (−λ) backward), so everything before the GRL learns features
that do not tell source from target. Where should the GRL go, and which discriminator? Train the label network with
the GRL at each placement (labelled source, unlabelled target) and compare source and target test accuracy, mean ±
std over seeds. **CDAN** (Long et al. 2018) conditions the discriminator on the predictions: it sees features ⊗
softmax (a randomized map when that is large); **CDAN+E** also weights confident examples more (1 + e^(−entropy)).

Placements: **stage 1** backbone output · **stage 2** after the label classifier's first dense layer · **stage 3**
after the classifier's output (the seed's three) · **layer2 / layer3** a ResNet's feature maps · **none** source only.
λ follows the paper's schedule 2/(1+exp(−10p))−1 (or stays constant; the seed used 0.001); SGD with the annealed
rate μ₀/(1+10p)^0.75 (or Adam). The proxy A-distance (PAD, 0 = indistinguishable, 2 = separable) is measured by a
linear classifier on both test sets: on the backbone's output and on what each discriminator actually sees. Every
result says whether ImageNet weights were used and which USPS rendering it trained and tested on (the standard
LIBSVM one, or usps.h5 mapped onto it)."""
TASK_CHOICES = [(task.label, key) for key, task in TASKS.items()]
PLACEMENT_CHOICES = [(f"{key}: {placement}", key) for key, placement in PLACEMENTS.items()]
BACKBONE_CHOICES = [(str(backbone), key) for key, backbone in BACKBONES.items()]
METHOD_CHOICES = [(f"{method.label}: {method.description.split(': ', 1)[-1]}", key) for key, method in METHODS.items()
                  if key != "none"]
FORM = Form(DANNConfig)
FORMS = (FORM,)


def _seeds(text) -> list[int]:
    """The seeds box; the message quotes what was typed in full (a pasted page is then reported by its length)."""
    try:
        return FORM.spec("seeds").parse(str(text))
    except ArgumentTypeError:
        raise LabError(f"Seeds must be whole numbers separated by commas, e.g. 0, 1, 2 (got {text!r}).") from None


def _reads_folder(task) -> bool:
    return str(task) in TASKS and TASKS[str(task)].folder


def _officehome(task, path) -> str | None:
    """The Office-Home folder: judged against the allowed folders when the task reads it."""
    if _reads_folder(task):
        return folder_in(path, "The Office-Home folder")
    return str(path or "").strip() or None


def _folder(value) -> Path:
    return run_folder(value, "DANN comparison")


def _renderings(result: DANNResult) -> str:
    found = result.data.get("usps_renderings") or {}
    if not found:
        return ""
    parts = [f"{name}: **{rendering}**" for name, rendering in found.items()]
    return "USPS renderings (lab.data.usps): " + ", ".join(parts) + "."


def _info(result: DANNResult, run_dir: Path) -> str:
    pad, d = result.input_pad or {}, result.data
    lines = [f"**Verdict:** {result.verdict()}",
             f"**{result.config.label()}** with **{result.config.backbone}** — backbone weights: **{result.weights}**.",
             f"Data: {d.get('source_train')} labelled {d.get('source')} + {d.get('target_train')} unlabelled "
             f"{d.get('target')} training images at {d.get('size')} px; tested on {d.get('source_test')} / "
             f"{d.get('target_test')} test images. {_renderings(result)}",
             f"PAD between the raw test images: **{pad.get('pad', float('nan')):.2f}**; "
             f"{result.seconds / 60:.1f} min in all.",
             f"Saved in `{run_dir}` (the feature tensors beside it, offered separately below)."]
    return "\n\n".join(lines)


def _features(run_dir: Path) -> list[str]:
    found = features_zip(run_dir)
    return [str(found)] if found else []


@guarded
def compare(task, officehome_path, officehome_source, officehome_target, backbone, weights, placements, methods, seeds,
            epochs, steps_per_epoch, batch_size, optimizer, lr, lr_schedule, lambda_schedule, lambda_max, augment,
            augment_scale, source_only_sees_target, source_limit, target_limit, eval_limit, progress=gr.Progress(),
            request: gr.Request = None):
    config = FORM.config(locals(), seeds=_seeds(seeds), officehome_path=_officehome(task, officehome_path)).validate()
    token = start_job(TAB, request)
    with recorded("dann", asdict(config), command=config.to_command()) as run:
        result = run_dann(config, progress=reporter(progress, token), record=run)
        result.save(run)
        label = result.best_run_label()
        progress((0, 1), desc="t-SNE of the best run")
        tsne = result.tsne_figure(label, "domain")
        save_figure(tsne, run.path("tsne_domain"))
    labels = [result.run_label(r) for r in result.runs]
    return (_info(result, run.dir), pd.DataFrame(result.display_rows()), _reference_table(result),
            result.curves_figure("accuracy"), result.pad_figure(), tsne, gr.Dropdown(choices=labels, value=label),
            str(run.dir), export_files(run.dir), _features(run.dir))


def _reference_table(result: DANNResult):
    rows = result.reference_rows()
    label = ("Ours beside the seed's (ResNet-50, USPS → MNIST, DANN)" if result.config.backbone == "resnet50"
             else "Ours beside the published figures (same task and backbone)")
    if not rows:
        return gr.Dataframe(pd.DataFrame(SEED_REFERENCE), label="Nothing reported for this task and backbone; "
                            "the seed's numbers (ResNet-50, USPS → MNIST) — for reference, not ours")
    return gr.Dataframe(pd.DataFrame(rows), label=label)


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
            task = FORM.widget("task", choices=TASK_CHOICES)
            with gr.Accordion("Office-Home folder", open=False) as oh_box:
                officehome_path = FORM.widget("officehome_path", placeholder="/data/OfficeHomeDataset_10072016")
                with gr.Row():
                    officehome_source = FORM.widget("officehome_source")
                    officehome_target = FORM.widget("officehome_target")
            backbone = FORM.widget("backbone", kind="radio", choices=BACKBONE_CHOICES)
            weights = FORM.widget("weights", kind="radio", info="auto: ImageNet weights when they can be had "
                                  "(online or cached), else from scratch. The result says which.")
            placements = FORM.add("placements", gr.CheckboxGroup(
                PLACEMENT_CHOICES, value=list(FORM.spec("placements").default), label=FORM.spec("placements").label))
            methods = FORM.widget("methods", choices=METHOD_CHOICES,
                                  info="Each ticked method is a row at every placement but none (source only).")
            seeds = FORM.widget("seeds", label="Seeds (comma-separated: mean ± std over them)")
            with gr.Row():
                epochs = FORM.widget("epochs", kind="number")
                steps_per_epoch = FORM.widget("steps_per_epoch", kind="number")
                batch_size = FORM.widget("batch_size", kind="number")
            with gr.Accordion("Optimisation, λ, data", open=False):
                with gr.Row():
                    optimizer = FORM.widget("optimizer", kind="radio")
                    # no range on the box itself: a NaN is reported as "not a number", the range by the config
                    lr = FORM.widget("lr", kind="number", minimum=None, maximum=None)
                    lr_schedule = FORM.widget("lr_schedule", kind="radio", info="annealed: μ₀/(1+10p)^0.75")
                with gr.Row():
                    lambda_schedule = FORM.widget("lambda_schedule", kind="radio",
                                                  info="dann: λ·(2/(1+exp(−10p))−1)")
                    lambda_max = FORM.widget("lambda_max", kind="number")
                with gr.Row():
                    augment = FORM.widget("augment")
                    augment_scale = FORM.widget("augment_scale", kind="number")
                source_only_sees_target = FORM.widget("source_only_sees_target")
                with gr.Row():
                    source_limit = FORM.widget("source_limit", kind="number")
                    target_limit = FORM.widget("target_limit", kind="number")
                    eval_limit = FORM.widget("eval_limit", kind="number")
            with gr.Row():
                go = gr.Button("Compare placements", variant="primary")
                stop = gr.Button("Stop", variant="stop")
        with gr.Column(scale=2):
            info = gr.Markdown()
            table = gr.Dataframe(label="Ours: target accuracy per placement and method (mean ± std over seeds, full "
                                       "test sets)", interactive=False, wrap=True)
            reference = gr.Dataframe(pd.DataFrame(SEED_REFERENCE), label="The seed's reported numbers (ResNet-50, "
                                     "USPS → MNIST) — for reference, not ours", interactive=False)
            gr.Markdown(PUBLIC_REFERENCE)
            metric = gr.Radio([("Test accuracy", "accuracy"), ("Discriminator accuracy", "domain")],
                              value="accuracy", label="Curves")
            curve_plot = gr.Plot(label="Per epoch")
            pad_plot = gr.Plot(label="Proxy A-distance per row: what each discriminator sees, and the target accuracy")
            with gr.Row():
                run_choice = gr.Dropdown([], label="t-SNE of run", allow_custom_value=True)
                color_by = gr.Radio(["domain", "class"], value="domain", label="Colour by")
                tsne_btn = gr.Button("Show t-SNE")
            tsne_plot = gr.Plot(label="t-SNE of backbone features (both test sets)")
            run_folder = gr.Textbox(label="Run folder (paste an earlier DANN run to re-plot it)")
            files = export_box()
            feature_files = gr.File(label="Feature tensors (backbone, and what each discriminator saw; float16) — "
                                          "large, so not in the run's zip", file_count="multiple", interactive=False)

    inputs = [task, officehome_path, officehome_source, officehome_target, backbone, weights, placements, methods,
              seeds, epochs, steps_per_epoch, batch_size, optimizer, lr, lr_schedule, lambda_schedule, lambda_max, augment,
              augment_scale, source_only_sees_target, source_limit, target_limit, eval_limit]
    task.change(lambda t: gr.Accordion(open=_reads_folder(t)), task, oh_box, api_name=False)
    events = [
        go.click(compare, inputs, [info, table, reference, curve_plot, pad_plot, tsne_plot, run_choice, run_folder,
                                   files, feature_files], api_name="dann_compare"),
        metric.change(curves, [run_folder, metric], curve_plot, api_name="dann_curves"),
        tsne_btn.click(tsne, [run_folder, run_choice, color_by], [tsne_plot, files], api_name="dann_tsne"),
    ]
    wire_stop(stop, TAB)
    return events
