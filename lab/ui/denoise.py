"""The Denoising-steps tab: trajectory grids, step-count sweeps, FID/quality."""
from __future__ import annotations

import shlex

import gradio as gr
import pandas as pd

from lab.errors import LabError
from lab.experiments.denoise import DenoiseConfig, run_denoise, run_quality, run_step_sweep
from lab.metrics import FEATURE_NETWORKS
from lab.models.store import list_models
from lab.runs import recorded
from lab.ui.common import (export_box, export_files, float_in, guarded, int_in, model_dropdown, model_in, reporter,
                            start_job, wire_stop)
from lab.viz.export import save_figure, write_csv
from lab.viz.plots import line_figure

TAB = "denoise"
FORMULATIONS = {"DDPM (noise prediction)": "ddpm", "Score (DSM + annealed Langevin)": "score"}


def _config(model, sampler, steps, eta, lsteps, leps, ldenoise, n, snapshots, seed) -> DenoiseConfig:
    if not model:
        raise LabError("Choose a model first.")
    return DenoiseConfig(model=model_in(model), sampler=str(sampler), steps=int_in(steps, "Steps", 1, 1000),
                         eta=float_in(eta, "η", 0.0, 1.0), langevin_steps=int_in(lsteps, "Langevin steps per level", 1, 1000),
                         langevin_eps=float_in(leps, "Langevin ε", 1e-9, 0.1), langevin_denoise=bool(ldenoise),
                         num_images=int_in(n, "Number of images", 1, 64),
                         snapshots=int_in(snapshots, "Snapshots", 2, 50), seed=int_in(seed, "Seed", 0, 2**31 - 1))


@guarded
def generate(model, sampler, steps, eta, lsteps, leps, ldenoise, n, snapshots, seed,
             progress=gr.Progress(), request: gr.Request = None):
    config = _config(model, sampler, steps, eta, lsteps, leps, ldenoise, n, snapshots, seed)
    token = start_job(TAB, request)
    with recorded("denoise", config.__dict__, command=_command(config)) as run:
        result = run_denoise(config, progress=reporter(progress, token))
        result.save(run)
    info = (f"{config.num_images} images × {len(result.trajectory.labels)} snapshots in **{result.seconds:.2f} s** "
            f"({config.sampler}; columns: {', '.join(result.trajectory.labels)}). Saved in `{run.dir}`.")
    return result.grid, result.samples_grid, info, str(run.path("grid.png")), export_files(run.dir)


def _sampler_flags(config: DenoiseConfig) -> str:
    return (f"--model {shlex.quote(config.model)} --sampler {config.sampler} --steps {config.steps} "
            f"--eta {config.eta} --langevin-steps {config.langevin_steps} --langevin-eps {config.langevin_eps}"
            + ("" if config.langevin_denoise else " --no-denoise")
            + f" --n {config.num_images} --snapshots {config.snapshots} --seed {config.seed}")


def _command(config: DenoiseConfig) -> str:
    return f"python -m lab sample {_sampler_flags(config)}"


@guarded
def sweep(model, sampler, steps, eta, lsteps, leps, ldenoise, n, snapshots, seed, counts, metric_images,
          progress=gr.Progress(), request: gr.Request = None):
    config = _config(model, sampler, steps, eta, lsteps, leps, ldenoise, n, snapshots, seed)
    try:
        step_counts = [int(c) for c in str(counts).replace(";", ",").split(",") if c.strip()]
    except ValueError:
        raise LabError(f"Step counts must be whole numbers separated by commas, e.g. 10, 100, 1000 (got {counts!r}).")
    if not step_counts or len(step_counts) > 6:
        raise LabError("Give 1 to 6 step counts, e.g. 10, 100, 1000.")
    metric_images = int_in(metric_images, "Images for the metric", 0, 1000)
    token = start_job(TAB, request)
    command = (f"{_command(config)} --sweep {','.join(map(str, step_counts))}"
               + (f" --metric-images {metric_images}" if metric_images else ""))
    with recorded("denoise-sweep", {**config.__dict__, "step_counts": step_counts,
                                    "metric_images": metric_images}, command=command) as run:
        result = run_step_sweep(config, step_counts, metric_images=metric_images or None,
                                progress=reporter(progress, token))
        result.save(run)
        rows = result.rows()
        fig = line_figure([r["steps"] for r in rows], {"confident fraction": [r["confident_fraction"] for r in rows]},
                          "Sample quality against the number of steps", "steps T", "fraction with p > 0.9", log_x=True)
        save_figure(fig, run.path("sweep"))
        write_csv(run.add("sweep.csv"), rows)
    gallery = [(g, f"T = {t}") for g, t in zip(result.grids, result.step_counts)]
    return gallery, pd.DataFrame(rows), fig, export_files(run.dir)


@guarded
def quality(model, sampler, steps, eta, lsteps, leps, ldenoise, n, snapshots, seed, count, network, floor,
            progress=gr.Progress(), request: gr.Request = None):
    config = _config(model, sampler, steps, eta, lsteps, leps, ldenoise, n, snapshots, seed)
    count = int_in(count, "Samples for FID", 10, 10_000)
    token = start_job(TAB, request)
    command = (f"python -m lab evaluate {_sampler_flags(config)} --fid-n {count} --features {network}"
               + ("" if floor else " --no-floor"))
    with recorded("denoise-quality", {**config.__dict__, "n": count, "feature_network": network},
                  command=command) as run:
        result = run_quality(config, n=count, feature_network=str(network), with_floor=bool(floor),
                             progress=reporter(progress, token))
        result.save(run)
        write_csv(run.add("quality.csv"), result.rows())
    hist = result.quality.get("class_histogram")
    text = (f"**{result.fid['label']}** = {result.fid['fid']:.2f} with n = {result.n} samples against "
            f"{result.fid['n_reference']} real test images ({result.fid['feature_network']})"
            + (f"; real-vs-real floor {result.floor['fid']:.2f}" if result.floor else "")
            + (f". Predicted-class histogram: {hist}." if hist else "."))
    return pd.DataFrame(result.rows()), text, export_files(run.dir)


def _on_formulation(formulation):
    kind = FORMULATIONS[formulation]
    models = list_models(kind)
    return (gr.Dropdown(choices=models, value=models[0] if models else None),
            gr.Radio(value="ddim" if kind == "ddpm" else "langevin"))


def build() -> None:
    gr.Markdown("Watch a diffusion model turn noise into digits. Rows are images; columns are evenly spaced "
                "steps of the sampler, from pure noise (left) to the sample (right).")
    with gr.Row():
        with gr.Column(scale=1, min_width=300):
            formulation = gr.Radio(list(FORMULATIONS), value=list(FORMULATIONS)[0], label="Formulation")
            model = model_dropdown("ddpm", value="ddpm-mnist" if "ddpm-mnist" in list_models("ddpm") else None)
            sampler = gr.Radio(["ddim", "ddpm", "langevin"], value="ddim", label="Sampler",
                               info="DDPM models: ddim or ddpm; score models: langevin.")
            steps = gr.Slider(1, 1000, value=50, step=1, label="Steps (DDPM / DDIM)")
            eta = gr.Slider(0.0, 1.0, value=0.0, step=0.05, label="DDIM η (0 = deterministic)")
            with gr.Accordion("Annealed Langevin (score models)", open=False):
                lsteps = gr.Slider(1, 200, value=DenoiseConfig.langevin_steps, step=1, label="Steps per noise level")
                leps = gr.Number(value=2e-5, label="Step size ε (α_i = ε σ_i² / σ_L²)")
                ldenoise = gr.Checkbox(value=True, label="Final denoising step")
            n = gr.Slider(1, 16, value=10, step=1, label="Number of images (rows)")
            snapshots = gr.Slider(2, 20, value=10, step=1, label="Snapshots (columns)")
            seed = gr.Number(value=0, precision=0, label="Seed")
            with gr.Row():
                go = gr.Button("Generate", variant="primary")
                stop = gr.Button("Stop", variant="stop")
        with gr.Column(scale=2):
            grid = gr.Image(label="Denoising trajectory", type="pil", format="png", interactive=False)
            samples = gr.Image(label="Final samples", type="pil", format="png", interactive=False)
            info = gr.Markdown()
            download = gr.File(label="Grid as PNG (full resolution)", interactive=False)
            export = export_box()
    inputs = [model, sampler, steps, eta, lsteps, leps, ldenoise, n, snapshots, seed]
    with gr.Accordion("Step-count sweep (the seed compared T = 10, 100, 1000)", open=False):
        with gr.Row():
            counts = gr.Textbox(value="10, 100, 1000", label="Step counts T")
            metric_images = gr.Slider(0, 1000, value=0, step=10,
                                      label="Extra images for the quality measure (0: the grid's own)")
            sweep_btn = gr.Button("Run sweep")
        sweep_gallery = gr.Gallery(label="One grid per T", columns=1, height="auto", format="png")
        sweep_table = gr.Dataframe(label="Quality per T", interactive=False)
        sweep_plot = gr.Plot(label="Quality against T")
        sweep_export = export_box()
    with gr.Accordion("Quality: FID / KID and classifier measures", open=False):
        with gr.Row():
            count = gr.Slider(10, 10_000, value=500, step=10, label="Samples (n)")
            network = gr.Radio(list(FEATURE_NETWORKS), value="classifier", label="Feature network",
                               info="classifier: the lab's digit classifier; inception needs its weights (online, "
                                    "or LAB_INCEPTION_WEIGHTS); face-api: face descriptors, for face models.")
            floor = gr.Checkbox(value=True, label="Also the real-vs-real floor")
            q_btn = gr.Button("Compute")
        q_table = gr.Dataframe(label="Metrics", interactive=False)
        q_text = gr.Markdown()
        q_export = export_box()

    formulation.change(_on_formulation, formulation, [model, sampler])
    events = [
        go.click(generate, inputs, [grid, samples, info, download, export], api_name="denoise_grid"),
        sweep_btn.click(sweep, inputs + [counts, metric_images], [sweep_gallery, sweep_table, sweep_plot, sweep_export],
                        api_name="denoise_sweep"),
        q_btn.click(quality, inputs + [count, network, floor], [q_table, q_text, q_export],
                    api_name="denoise_quality"),
    ]
    wire_stop(stop, TAB)
    return events
