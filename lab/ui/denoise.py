"""The Denoising-steps tab: trajectory grids, step-count sweeps, FID/quality."""
from __future__ import annotations

import gradio as gr

from lab.config import get_settings
from lab.errors import LabError
from lab.experiments.denoise.compare import SHIPPED
from lab.experiments.denoise.config import DenoiseConfig, QualityConfig, SweepConfig
from lab.experiments.denoise.quality import run_quality
from lab.experiments.denoise.sample import run_denoise, run_step_sweep
from lab.metrics.intervals import FID_STABLE_N, FRACTION_STABLE_N, interval_text, wilson
from lab.models.store import list_models, model_kind
from lab.runs import recorded
from lab.ui.common import export_box, export_files, guarded, model_dropdown, model_in, reporter, start_job, wire_stop
from lab.ui.display import STOPPED_TABLE, figure, figure_gallery, hint_table, results_table, table_of
from lab.ui.estimate import compare_estimate, gate, run_anyway_label, sampling_estimate
from lab.ui.form import Form
from lab.viz.export import save_figure, write_csv
from lab.viz.grids import print_ready, titled_trajectory
from lab.viz.plots import line_figure

TAB = "denoise"
FORMULATIONS = {"DDPM (noise prediction)": "ddpm", "Score (VE SDE: predictor–corrector, DPM-Solver, Langevin)": "score",
                "GAN (DCGAN baseline)": "gan"}
GRID = Form(DenoiseConfig)
SWEEP = Form(SweepConfig)
QUALITY = Form(QualityConfig)
FORMS = (GRID, SWEEP, QUALITY)
SAMPLER_INPUTS = ("model", "sampler", "steps", "eta", "langevin_steps", "langevin_eps", "langevin_denoise",
                  "corrector_steps", "snr", "num_images", "snapshots", "seed")


def _checked_model(model) -> str:
    if not model:
        raise LabError("Choose a model first.")
    return model_in(model)


def _stopped_files(folder) -> list[str] | None:
    return export_files(folder) if folder else None


@guarded(stopped=lambda text, folder: (None, None, text, None, _stopped_files(folder)))
def generate(model, sampler, steps, eta, langevin_steps, langevin_eps, langevin_denoise, corrector_steps, snr,
             num_images, snapshots, seed, progress=gr.Progress(), request: gr.Request = None):
    config = GRID.config(locals(), model=_checked_model(model))
    token = start_job(TAB, request)
    if model_kind(config.model) == "gan":
        return _gan_grid(config, token, progress)
    with recorded("denoise", config.__dict__, command=config.to_command()) as run:
        result = run_denoise(config, progress=reporter(progress, token))
        result.save(run)
        snapshots_, labels = result.trajectory.snapshots, result.trajectory.labels
        titled_trajectory(snapshots_, labels).save(run.add("grid-print.png"))
        titled_trajectory(snapshots_, labels, "native").save(run.add("grid-native.png"))
    info = (f"{config.num_images} images × {len(result.trajectory.labels)} snapshots in **{result.seconds:.2f} s** "
            f"({config.sampler}; columns: {', '.join(result.trajectory.labels)}). Saved in `{run.dir}`.")
    return (result.grid, result.samples_grid, info, [str(run.path("grid-print.png")), str(run.path("grid-native.png"))],
            export_files(run.dir))


def _gan_grid(config: DenoiseConfig, token, progress):
    """A GAN has no denoising trajectory: its samples, one network call each."""
    from lab.device import resolve_device
    from lab.models.gan import gan_samples, load_generator
    from lab.viz.grids import image_grid

    with recorded("denoise-gan", config.__dict__) as run:
        reporter(progress, token)(0, 1, "Generating")
        g = load_generator(config.model, resolve_device(config.device))
        samples = gan_samples(g, config.num_images, seed=config.seed)
        native = image_grid(samples, nrow=min(10, config.num_images))
        grid = image_grid(samples, nrow=min(10, config.num_images), scale=max(1, 128 // g.config.image_size))
        grid.save(run.add("samples.png"))
        print_ready(native).save(run.add("samples-print.png"))
        native.save(run.add("samples-native.png"))
    info = (f"{config.num_images} samples of the GAN **{config.model}** (one generator call each, z ~ N(0, I)); a "
            f"GAN has no denoising trajectory, so the grid shows only the samples. Saved in `{run.dir}`.")
    return (None, grid, info, [str(run.path("samples-print.png")), str(run.path("samples-native.png"))],
            export_files(run.dir))


def _hidden() -> gr.Button:
    return gr.Button(visible=False)


DOWNLOAD_LABEL = "Grid as PNG: print size (≥ 1,200 px wide, crisp pixels) and native size (1 px per image pixel)"


def _stopped_with(count: int, text_at: int, table_at: int):
    """The outputs of a stopped job of ``count`` outputs: the text at ``text_at``, the run's files before the
    Run-anyway button (last, hidden), the table at ``table_at`` saying it was not filled, nothing else (no result
    of an earlier run is left standing beside "stopped")."""
    def outputs(text, folder):
        out = [None] * count
        out[text_at], out[table_at] = text, hint_table(STOPPED_TABLE)
        out[-2], out[-1] = _stopped_files(folder), _hidden()
        return tuple(out)
    return outputs


def _sweep_rows(result) -> list[dict]:
    """The sweep's rows with the 95 % (Wilson) interval of each confident fraction."""
    rows = result.rows()
    for r in rows:
        if r.get("confident_fraction") is not None:
            r["95 % interval"] = interval_text(wilson(r["confident_fraction"], r.get("n", 0)), digits=2)
    return rows


def sweep_verdict(rows: list[dict]) -> str:
    """The sweep in words: the best T and whether the sample is large enough to tell the step counts apart."""
    measured = [r for r in rows if r.get("confident_fraction") is not None]
    if not measured:
        return ""
    best = max(measured, key=lambda r: r["confident_fraction"])
    n = min(r.get("n", 0) for r in measured)
    text = (f"Highest confident fraction **{best['confident_fraction']:.0%}** at T = {best['steps']} (n = {n} images "
            "per T; 95 % interval in the table).")
    lows = [wilson(r["confident_fraction"], r.get("n", 0))[0] for r in measured]
    highs = [wilson(r["confident_fraction"], r.get("n", 0))[1] for r in measured]
    if len(measured) > 1 and max(lows) <= min(highs):
        text += (f" ⚠️ At n = {n} the intervals of all T overlap: this sweep cannot tell the step counts apart. "
                 f"Raise 'Extra images for the quality measure' (≥ {FRACTION_STABLE_N}) before reading a ranking.")
    elif n < FRACTION_STABLE_N:
        text += f" ⚠️ n = {n} is small: differences within the intervals are noise."
    return text


def _sweep(values, confirmed, progress, request):
    config = SWEEP.config(values, model=_checked_model(values["model"]))
    images = config.num_images + (config.metric_images if config.metric_images > config.num_images else 0)
    seconds, how = sampling_estimate(config, images, config.step_counts)
    ask = gate(seconds, how, confirmed, lower="the extra images", per_unit=seconds / max(images, 1))
    if ask:
        return gr.skip(), gr.skip(), gr.skip(), ask, gr.skip(), gr.Button(visible=True, value=run_anyway_label(seconds))
    token = start_job(TAB, request)
    with recorded("denoise-sweep", config.__dict__, command=config.to_command()) as run:
        result = run_step_sweep(config, progress=reporter(progress, token))
        result.save(run)
        rows = _sweep_rows(result)
        fig = line_figure([r["steps"] for r in rows], {"confident fraction": [r["confident_fraction"] for r in rows]},
                          "Sample quality against the number of steps", "steps T", "fraction with p > 0.9", log_x=True)
        save_figure(fig, run.path("sweep"))
        write_csv(run.add("sweep.csv"), rows)
    gallery = [(g, f"T = {t}") for g, t in zip(result.grids, result.step_counts)]
    table = table_of(rows, first=["steps", "confident_fraction", "95 % interval", "n"])
    return gallery, table, fig, sweep_verdict(rows), export_files(run.dir), _hidden()


@guarded(stopped=_stopped_with(6, 3, 1))
def sweep(model, sampler, steps, eta, langevin_steps, langevin_eps, langevin_denoise, corrector_steps, snr,
          num_images, snapshots, seed, step_counts, metric_images, progress=gr.Progress(), request: gr.Request = None):
    return _sweep(locals(), False, progress, request)


@guarded(stopped=_stopped_with(6, 3, 1))
def sweep_anyway(model, sampler, steps, eta, langevin_steps, langevin_eps, langevin_denoise, corrector_steps, snr,
                 num_images, snapshots, seed, step_counts, metric_images, progress=gr.Progress(),
                 request: gr.Request = None):
    return _sweep(locals(), True, progress, request)


KID_NOTE = ("KID is in quality.csv / quality.json, not in this table: with the lab's classifier features "
            "torch-fidelity's KID is on another scale than the Inception KID of papers, and as an unbiased estimate it "
            "falls around and below 0 for two sets that are alike (a floor below zero means: indistinguishable at "
            "this n).")


def fid_verdict(fid: float, floor: float | None, n: int) -> str:
    """FID in words: how many times the real-vs-real floor at the same n, and whether n is enough."""
    text = ""
    if floor:
        ratio = fid / floor
        reading = ("close to real test images in these features" if ratio <= 2 else
                   "clearly distinguishable from real test images" if ratio <= 5 else "far from real test images")
        text = f" That is **{ratio:.1f}× the real-vs-real floor**: the samples are {reading}."
    if n < FID_STABLE_N:
        text += (f" ⚠️ n = {n} is small: FID is biased upwards at small n; compare FIDs only at equal n and use "
                 f"n ≥ {FID_STABLE_N:,} for a figure to quote.")
    return text


def _quality(values, confirmed, progress, request):
    config = QUALITY.config(values, model=_checked_model(values["model"]))
    seconds, how = sampling_estimate(config, config.fid_n)
    ask = gate(seconds, how, confirmed, per_unit=seconds / config.fid_n)
    if ask:
        return gr.skip(), ask, gr.skip(), gr.Button(visible=True, value=run_anyway_label(seconds))
    token = start_job(TAB, request)
    with recorded("denoise-quality", config.__dict__, command=config.to_command()) as run:
        result = run_quality(config, n=config.fid_n, feature_network=config.features, with_floor=config.floor,
                             progress=reporter(progress, token))
        result.save(run)
        write_csv(run.add("quality.csv"), result.rows())
    hist = result.quality.get("class_histogram")
    label = result.fid["label"]
    text = (f"**{label}** = {result.fid['fid']:.2f} with n = {result.n} samples against "
            f"{result.fid['n_reference']} real test images ({result.fid['feature_network']})"
            + (f"; real-vs-real floor {result.floor['fid']:.2f}." if result.floor else ".")
            + fid_verdict(result.fid["fid"], result.floor["fid"] if result.floor else None, result.n)
            + (f" Predicted-class histogram: {hist}." if hist else "") + f"\n\n{KID_NOTE}")
    table = table_of(result.rows(), first=[label, "real-vs-real floor", "n"], drop=["KID"])
    return table, text, export_files(run.dir), _hidden()


@guarded(stopped=_stopped_with(4, 1, 0))
def quality(model, sampler, steps, eta, langevin_steps, langevin_eps, langevin_denoise, corrector_steps, snr,
            num_images, snapshots, seed, fid_n, features, floor, progress=gr.Progress(), request: gr.Request = None):
    return _quality(locals(), False, progress, request)


@guarded(stopped=_stopped_with(4, 1, 0))
def quality_anyway(model, sampler, steps, eta, langevin_steps, langevin_eps, langevin_denoise, corrector_steps, snr,
                   num_images, snapshots, seed, fid_n, features, floor, progress=gr.Progress(),
                   request: gr.Request = None):
    return _quality(locals(), True, progress, request)


def _compare(fid_n, features, seed, confirmed, progress, request):
    from lab.experiments.denoise.compare import run_compare

    config = QUALITY.config({"fid_n": fid_n, "features": features, "seed": seed})
    seconds, how = compare_estimate(config)
    ask = gate(seconds, how, confirmed, per_unit=seconds / config.fid_n)
    if ask:
        return gr.skip(), ask, gr.skip(), gr.Button(visible=True, value=run_anyway_label(seconds))
    token = start_job(TAB, request)
    settings = {"models": list(SHIPPED), "n": config.fid_n, "features": config.features, "seed": config.seed}
    with recorded("denoise-compare", settings) as run:
        result = run_compare(n=config.fid_n, features=config.features, seed=config.seed,
                             progress=reporter(progress, token))
        write_csv(run.add("compare.csv"), result.rows)
        run.log_metrics(**{f"fid_{r['model']}": r["fid"] for r in result.rows}, fid_floor=result.floor)
    table = table_of(result.rows, first=["model", "fid", "fid_floor", "calls_per_sample"])
    return table, result.verdict(), export_files(run.dir), _hidden()


@guarded(stopped=_stopped_with(4, 1, 0))
def compare(fid_n, features, seed, progress=gr.Progress(), request: gr.Request = None):
    """The DDPM, the score model and the GAN at the same n, features and floor."""
    return _compare(fid_n, features, seed, False, progress, request)


@guarded(stopped=_stopped_with(4, 1, 0))
def compare_anyway(fid_n, features, seed, progress=gr.Progress(), request: gr.Request = None):
    return _compare(fid_n, features, seed, True, progress, request)


def fid_curve(model):
    """FID as the selected model trained (``--fid-every``), from its training.json; None when not recorded."""
    from lab.models.store import read_info, resolve_model_path

    try:
        where = resolve_model_path(model_in(model)) if model else None
    except LabError:
        return None, ""
    info = read_info(where) if where is not None and not isinstance(where, str) else {}
    curve = info.get("fid_curve")
    if not curve:
        return None, (f"{model} was trained without FID checkpoints: train with `--fid-every K --fid-n N` to record "
                      "the curve." if model else "")
    how = info.get("fid_curve_settings", {})
    fig = line_figure([c["step"] for c in curve], {"FID": [c["fid"] for c in curve]},
                      f"FID as {model} trained (n = {how.get('n', '?')}, {how.get('sampler', '')})", "training step",
                      f"FID ({how.get('features', 'classifier features')})")
    return fig, (f"{len(curve)} measurements from step {curve[0]['step']} to {curve[-1]['step']}: FID "
                 f"{curve[0]['fid']:.1f} → {curve[-1]['fid']:.1f}.")


def _on_formulation(formulation):
    from lab.experiments.denoise.compare import sampler_settings
    from lab.models.store import read_info

    kind = FORMULATIONS[formulation]
    models = list_models(kind)
    first = models[0] if models else None
    settings = sampler_settings(read_info(get_settings().checkpoint_dir / first)) if first else {}
    sampler = settings.get("sampler", "ddim" if kind == "ddpm" else "pc")
    return (gr.Dropdown(choices=models, value=first),
            gr.Radio(value=sampler if kind != "gan" else "ddim", interactive=kind != "gan"),
            gr.Slider(value=settings.get("steps", DenoiseConfig.steps)),
            gr.update(value=settings.get("corrector_steps", DenoiseConfig.corrector_steps)))


def build() -> None:
    gr.Markdown("Watch a generative model turn noise into digits. Rows are images; columns are evenly spaced "
                "steps of the sampler, from pure noise (left) to the sample (right). Three formulations: a DDPM "
                "(noise prediction), a score model (variance-exploding SDE) and, as the seed's baseline, a GAN.")
    with gr.Row():
        with gr.Column(scale=1, min_width=300):
            formulation = gr.Radio(list(FORMULATIONS), value=list(FORMULATIONS)[0], label="Formulation")
            model = GRID.add("model", model_dropdown("ddpm", value="ddpm-mnist" if "ddpm-mnist" in
                                                     list_models("ddpm") else None))
            sampler = GRID.widget("sampler", kind="radio",
                                  info="DDPM models: ddim or ddpm; score models: pc (predictor–corrector), dpm "
                                       "(DPM-Solver on the probability-flow ODE), dpm-sde (on the "
                                       "reverse SDE) or langevin.")
            steps = GRID.widget("steps")
            eta = GRID.widget("eta")
            with gr.Accordion("Predictor–corrector (score models)", open=False):
                corrector_steps = GRID.widget("corrector_steps")
                snr = GRID.widget("snr")
            with gr.Accordion("Annealed Langevin (score models)", open=False):
                langevin_steps = GRID.widget("langevin_steps")
                langevin_eps = GRID.widget("langevin_eps")
                langevin_denoise = GRID.widget("langevin_denoise")
            num_images = GRID.widget("num_images")
            snapshots = GRID.widget("snapshots")
            seed = GRID.widget("seed", kind="number")
            with gr.Row():
                go = gr.Button("Generate", variant="primary")
                stop = gr.Button("Stop", variant="stop")
        with gr.Column(scale=2):
            grid = figure("Denoising trajectory")
            samples = figure("Final samples")
            info = gr.Markdown()
            download = gr.File(label=DOWNLOAD_LABEL, file_count="multiple", interactive=False)
            export = export_box()
    inputs = [model, sampler, steps, eta, langevin_steps, langevin_eps, langevin_denoise, corrector_steps, snr,
              num_images, snapshots, seed]
    SWEEP.share(GRID)
    QUALITY.share(GRID)
    with gr.Accordion("Step-count sweep (the seed compared T = 10, 100, 1000 sampling steps)", open=False):
        with gr.Row():
            step_counts = SWEEP.widget("step_counts")
            metric_images = SWEEP.widget("metric_images")
            sweep_btn = gr.Button("Run sweep")
        sweep_text = gr.Markdown()
        sweep_anyway_btn = gr.Button("Run anyway", visible=False)
        sweep_gallery = figure_gallery("One grid per T")
        sweep_table = results_table("Quality per T", "Run the sweep: one row per step count T appears here.")
        sweep_plot = gr.Plot(label="Quality against T")
        sweep_export = export_box()
    with gr.Accordion("Quality: FID / KID and classifier measures", open=False):
        with gr.Row():
            fid_n = QUALITY.widget("fid_n")
            features = QUALITY.widget("features", kind="radio",
                                      info="classifier: the lab's classifier of the model's domain; inception needs "
                                           "its weights (online, or LAB_INCEPTION_WEIGHTS); face-api: face "
                                           "descriptors, for face models.")
            floor = QUALITY.widget("floor")
        with gr.Row():
            q_btn = gr.Button("Compute for this model")
            compare_btn = gr.Button(f"Compare {', '.join(SHIPPED)} (same n, features and floor)")
        q_text = gr.Markdown()
        with gr.Row():
            q_anyway_btn = gr.Button("Run anyway", visible=False)
            compare_anyway_btn = gr.Button("Run anyway", visible=False)
        q_table = results_table("Metrics", "Compute the quality (or compare the models): the FID table appears here.")
        q_export = export_box()
    with gr.Accordion("FID as the selected model trained", open=False):
        curve_plot = gr.Plot(label="FID during training")
        curve_text = gr.Markdown()

    sweep_outputs = [sweep_gallery, sweep_table, sweep_plot, sweep_text, sweep_export, sweep_anyway_btn]
    formulation.change(_on_formulation, formulation, [model, sampler, steps, corrector_steps])
    model.change(fid_curve, model, [curve_plot, curve_text], api_name="denoise_fid_curve")
    events = [
        go.click(generate, inputs, [grid, samples, info, download, export], api_name="denoise_grid"),
        sweep_btn.click(sweep, inputs + [step_counts, metric_images], sweep_outputs, api_name="denoise_sweep"),
        sweep_anyway_btn.click(sweep_anyway, inputs + [step_counts, metric_images], sweep_outputs,
                               api_name="denoise_sweep_anyway"),
        q_btn.click(quality, inputs + [fid_n, features, floor], [q_table, q_text, q_export, q_anyway_btn],
                    api_name="denoise_quality"),
        q_anyway_btn.click(quality_anyway, inputs + [fid_n, features, floor], [q_table, q_text, q_export, q_anyway_btn],
                           api_name="denoise_quality_anyway"),
        compare_btn.click(compare, [fid_n, features, seed], [q_table, q_text, q_export, compare_anyway_btn],
                          api_name="denoise_compare"),
        compare_anyway_btn.click(compare_anyway, [fid_n, features, seed],
                                 [q_table, q_text, q_export, compare_anyway_btn], api_name="denoise_compare_anyway"),
    ]
    wire_stop(stop, TAB)
    return events
