"""The Class-conditional tab: five ways to condition a diffusion model, judged by an independent classifier."""
from __future__ import annotations

import shlex

import gradio as gr
import pandas as pd

from lab.errors import LabError
from lab.experiments.conditional import (DEFAULT_CLASSIFIER, DEFAULT_MODELS, DEFAULT_SCALES, MAX_SCALE, METHODS,
                                         SCALE_NAME, ConditionalConfig, MethodEntry, config_dict, models_for,
                                         parse_scales, run_compare, run_grid, run_sweep)
from lab.models.store import list_models
from lab.runs import recorded
from lab.ui.common import (export_box, export_files, float_in, guarded, int_in, model_in, reporter, start_job,
                            wire_stop)

TAB = "conditional"
INTRO = """Generate one row per class with each conditioning method and see whether the samples really are of
the class asked for. Every column starts from the same noise, so rows differ only by their label.
**Conditional accuracy** is the share of samples that an independently trained classifier (the *judge*, never
used by any method) assigns to the requested class; FID uses the judge's features, per class against the real
test images of that class, with n given.

1. **Label embedding** — the label's embedding is added to the time embedding (diffusers `num_class_embeds`).
2. **Conditional normalization** — per-class γ/β in the resnet blocks' norms (BatchNorm as in the seed, or GroupNorm).
3. **Auxiliary classifier** — the seed's reading: an *unconditional* denoiser with a classifier head trained jointly on
   its bottleneck. The denoiser never sees the label, so at s = 0 (the seed's setting) the label cannot change the samples;
   s > 0 steers sampling by the head's own gradient (self-guidance).
4. **Classifier guidance** — an unconditional DDPM plus a noise-aware classifier p(y | x_t, t):
   ε̂ = ε − s·√(1−ᾱ_t)·∇ log p(y | x_t).
5. **Classifier-free guidance** — label dropout in training; ε̂ = ε(∅) + w·(ε(y) − ε(∅)); w = 0 is unconditional, w = 1 method 1."""
METHOD_CHOICES = [(label, key) for key, label in METHODS.items()]


def _config(method, model, classifier, scale, sampler, steps, eta, per_class, classes, judge, fid, seed,
            max_per_class: int = 200) -> ConditionalConfig:
    if method not in METHODS:
        raise LabError(f"Unknown method {method!r}: choose one of {', '.join(METHODS)}.")
    if not model:
        raise LabError("Choose a model first.")
    if method == "classifier-guidance" and not classifier:
        raise LabError("Classifier guidance needs a noisy classifier: choose one (or train one with "
                       "`python -m lab train noisy-classifier --init-from ddpm-mnist --out checkpoints/noisy-classifier-mnist`).")
    return ConditionalConfig(
        method=str(method), model=str(model) if model == "-" else model_in(model),
        classifier=(model_in(classifier, "Noisy classifier") if method == "classifier-guidance"
                    else str(classifier or DEFAULT_CLASSIFIER)),
        scale=float_in(scale, f"Guidance scale {SCALE_NAME.get(method, '')}".strip(), 0.0, 100.0),
        sampler=str(sampler), steps=int_in(steps, "Steps", 1, 1000), eta=float_in(eta, "η", 0.0, 1.0),
        per_class=int_in(per_class, "Samples per class", 1, max_per_class), classes=str(classes or "all"),
        judge=model_in(judge, "Judge classifier") if judge and judge != "auto" else "auto", fid=bool(fid),
        seed=int_in(seed, "Seed", 0, 2**31 - 1))


def _common_flags(config: ConditionalConfig) -> str:
    return (f"--sampler {config.sampler} --steps {config.steps} --eta {config.eta} --per-class {config.per_class} "
            f"--classes {shlex.quote(config.classes)} --judge {shlex.quote(config.judge)} --seed {config.seed}"
            + ("" if config.fid else " --no-fid"))


def _command(config: ConditionalConfig) -> str:
    extra = f" --classifier {shlex.quote(config.classifier)}" if config.method == "classifier-guidance" else ""
    return (f"python -m lab conditional --method {config.method} --model {shlex.quote(config.model)}{extra} "
            f"--scale {config.scale} {_common_flags(config)}")


def _compare_command(entries: list[MethodEntry], config: ConditionalConfig) -> str:
    """The CLI compares all five methods; a comparison of some of them has no CLI equivalent ("")."""
    if [e.method for e in entries] != list(METHODS):
        return ""
    cg = next(e for e in entries if e.method == "classifier-guidance")
    models = ",".join(f"{e.method}={e.model}" for e in entries)
    scales = ",".join(f"{e.method}={e.scale}" for e in entries)
    return (f"python -m lab conditional --compare --models {shlex.quote(models)} --scales {shlex.quote(scales)} "
            f"--classifier {shlex.quote(cg.classifier)} {_common_flags(config)}")


@guarded
def generate(method, model, classifier, scale, sampler, steps, eta, per_class, classes, judge, fid, seed,
             progress=gr.Progress(), request: gr.Request = None):
    config = _config(method, model, classifier, scale, sampler, steps, eta, per_class, classes, judge, fid, seed)
    token = start_job(TAB, request)
    with recorded("conditional", config_dict(config), command=_command(config)) as run:
        result = run_grid(config, progress=reporter(progress, token))
        result.save(run)
    s = result.summary()
    fid_text = (f"; FID (classifier features) **{s['fid']:.2f}** with n = {s['n']} (real-vs-real floor "
                f"{s['fid_floor']:.2f})" if s.get("fid") is not None else "")
    info = (f"**{METHODS[config.method]}** — {s['description']}. Conditional accuracy **{s['accuracy']:.1%}** over "
            f"n = {s['n']} samples (the judge on real test images of these classes: {s['accuracy_floor']:.1%})"
            f"{fid_text}. Sampling took {s['sampling_seconds']:.1f} s ({config.sampler}, {config.steps} steps). "
            f"Judge: `{s['judge']}`. Saved in `{run.dir}`.")
    return result.grid, info, pd.DataFrame(result.table()), result.tsne, export_files(run.dir, {"tsne": result.tsne})


def _entries(le_model, cn_model, aux_model, aux_scale, cg_model, cg_classifier, cg_scale, cfg_model, cfg_scale,
             include) -> list[MethodEntry]:
    chosen = {
        "label-embed": MethodEntry("label-embed", le_model, 1.0),
        "condnorm": MethodEntry("condnorm", cn_model, 1.0),
        "auxclf": MethodEntry("auxclf", aux_model, float_in(aux_scale, "Auxiliary-classifier s", 0, 100)),
        "classifier-guidance": MethodEntry("classifier-guidance", cg_model,
                                           float_in(cg_scale, "Classifier-guidance s", 0, 100), cg_classifier),
        "cfg": MethodEntry("cfg", cfg_model, float_in(cfg_scale, "Classifier-free w", 0, 100)),
    }
    include = list(include or [])
    unknown = [m for m in include if m not in chosen]
    if unknown:
        raise LabError(f"Unknown method(s) {', '.join(map(str, unknown))}: choose among {', '.join(METHODS)}.")
    if not include:
        raise LabError("Tick at least one method to compare.")
    entries = [chosen[m] for m in METHODS if m in include]
    for e in entries:
        if not e.model:
            raise LabError(f"Choose a model for {METHODS[e.method]}.")
        e.model = model_in(e.model, f"{METHODS[e.method]} model")
        if e.method == "classifier-guidance":
            e.classifier = model_in(e.classifier, "Noisy classifier")
    return entries


@guarded
def compare(le_model, cn_model, aux_model, aux_scale, cg_model, cg_classifier, cg_scale, cfg_model, cfg_scale,
            include, sampler, steps, eta, per_class, classes, judge, fid, seed,
            progress=gr.Progress(), request: gr.Request = None):
    entries = _entries(le_model, cn_model, aux_model, aux_scale, cg_model, cg_classifier, cg_scale, cfg_model,
                       cfg_scale, include)
    config = _config("cfg", "-", DEFAULT_CLASSIFIER, 0, sampler, steps, eta, per_class, classes, judge, fid, seed)
    token = start_job(TAB, request)
    with recorded("conditional-compare", {**config_dict(config), "entries": [e.__dict__ for e in entries]},
                  command=_compare_command(entries, config)) as run:
        result = run_compare(entries, config, progress=reporter(progress, token))
        result.save(run)
    gallery = [(g, METHODS[name]) for g, name in result.grids]
    return pd.DataFrame(result.rows), pd.DataFrame(result.per_class), gallery, export_files(run.dir)


@guarded
def sweep(method, model, classifier, scale, sampler, steps, eta, per_class, classes, judge, fid, seed, scales,
          progress=gr.Progress(), request: gr.Request = None):
    config = _config(method, model, classifier, scale, sampler, steps, eta, per_class, classes, judge, fid, seed)
    values = parse_scales(scales)
    token = start_job(TAB, request)
    with recorded("conditional-sweep", {**config_dict(config), "scales": values},
                  command=f"{_command(config)} --sweep {','.join(map(str, values))}") as run:
        result = run_sweep(config, values, progress=reporter(progress, token))
        result.save(run)
    best = result.best()
    text = (f"Best accuracy {best['accuracy']:.1%} at {result.scale_name} = {best['scale']:g} (n = {best['n']} per scale"
            + (f", FID {best['FID']:.2f}" if best.get("FID") is not None else "") + ").")
    gallery = [(g, f"{result.scale_name} = {name}") for g, name in result.grids]
    return (result.figure, pd.DataFrame(result.rows), text, gallery,
            export_files(run.dir, {"sweep": result.figure}))


def _on_method(method):
    choices = models_for(method)
    default = DEFAULT_MODELS.get(method)
    value = default if default in choices else (choices[0] if choices else None)
    has_scale = method in SCALE_NAME
    label = {"cfg": "Guidance weight w (0 = unconditional, 1 = plain conditional)",
             "classifier-guidance": "Classifier scale s (0 = unconditional DDPM)",
             "auxclf": "Self-guidance scale s (0 = the seed's setting: head unused)"}.get(
        method, "Guidance scale (not used by this method)")
    return (gr.Dropdown(choices=choices, value=value),
            gr.Dropdown(visible=method == "classifier-guidance"),
            gr.Slider(value=DEFAULT_SCALES.get(method, 1.0), label=label, interactive=has_scale))


def _dropdown(choices, value, label, **kwargs) -> gr.Dropdown:
    return gr.Dropdown(choices=choices, value=value if value in choices else (choices[0] if choices else value),
                       label=label, allow_custom_value=True, **kwargs)


def build() -> None:
    gr.Markdown(INTRO)
    cond_models = list_models("conditional")
    noisy = list_models("noisy-classifier")
    judges = ["auto"] + list_models("classifier")
    with gr.Row():
        with gr.Column(scale=1, min_width=320):
            method = gr.Radio(METHOD_CHOICES, value="cfg", label="Method")
            model = _dropdown(models_for("cfg"), DEFAULT_MODELS["cfg"], "Model",
                              info="A shipped model or a model folder; classifier guidance: the unconditional DDPM.")
            classifier = _dropdown(noisy, DEFAULT_CLASSIFIER, "Noisy classifier (classifier guidance)", visible=False)
            scale = gr.Slider(0, MAX_SCALE, value=DEFAULT_SCALES["cfg"], step=0.5,
                              label="Guidance weight w (0 = unconditional, 1 = plain conditional)")
            sampler = gr.Radio(["ddim", "ddpm"], value="ddim", label="Sampler")
            steps = gr.Slider(1, 1000, value=50, step=1, label="Sampling steps")
            eta = gr.Slider(0.0, 1.0, value=0.0, step=0.05, label="DDIM η (0 = deterministic)")
            per_class = gr.Slider(1, 200, value=10, step=1,
                                  label="Samples per class (the grid shows up to 10; the metrics use all)")
            classes = gr.Textbox(value="all", label="Classes (rows)", info="'all', or names/numbers: 0, 3, 8")
            judge = _dropdown(judges, "auto", "Judge classifier",
                              info="auto: the shipped classifier trained on the model's data and labels.")
            fid = gr.Checkbox(value=True, label="FID per class (judge features)")
            seed = gr.Number(value=0, precision=0, label="Seed")
            with gr.Row():
                go = gr.Button("Generate", variant="primary")
                stop = gr.Button("Stop", variant="stop")
        with gr.Column(scale=2):
            grid = gr.Image(label="One row per class (same noise in each column)", type="pil", format="png",
                            interactive=False)
            info = gr.Markdown()
            table = gr.Dataframe(label="Per class: conditional accuracy, FID (n)", interactive=False)
            tsne = gr.Plot(label="t-SNE of the samples' judge features, coloured by requested class")
            files = export_box()
    single = [method, model, classifier, scale, sampler, steps, eta, per_class, classes, judge, fid, seed]

    with gr.Accordion("Compare the five methods on the same data and noise", open=False):
        with gr.Row():
            le_model = _dropdown([m for m in cond_models], DEFAULT_MODELS["label-embed"], "1 · label-embedding model")
            cn_model = _dropdown(cond_models, DEFAULT_MODELS["condnorm"], "2 · conditional-norm model")
            aux_model = _dropdown(cond_models, DEFAULT_MODELS["auxclf"], "3 · auxiliary-classifier model")
            aux_scale = gr.Number(value=DEFAULT_SCALES["auxclf"], label="3 · s")
        with gr.Row():
            cg_model = _dropdown(list_models("ddpm"), DEFAULT_MODELS["classifier-guidance"], "4 · unconditional DDPM")
            cg_classifier = _dropdown(noisy, DEFAULT_CLASSIFIER, "4 · noisy classifier")
            cg_scale = gr.Number(value=DEFAULT_SCALES["classifier-guidance"], label="4 · s")
            cfg_model = _dropdown(cond_models, DEFAULT_MODELS["cfg"], "5 · CFG model")
            cfg_scale = gr.Number(value=DEFAULT_SCALES["cfg"], label="5 · w")
        include = gr.CheckboxGroup(METHOD_CHOICES, value=list(METHODS), label="Methods to compare")
        gr.Markdown("Uses the sampler, steps, samples per class, classes, judge and seed set above.")
        compare_btn = gr.Button("Compare")
        compare_table = gr.Dataframe(label="Conditional accuracy, FID and sampling time per method", interactive=False)
        compare_classes = gr.Dataframe(label="Conditional accuracy per class", interactive=False)
        compare_gallery = gr.Gallery(label="One grid per method", columns=3, height="auto", format="png")
        compare_files = export_box()

    with gr.Accordion("Guidance-scale sweep (the method, model and settings above)", open=False):
        with gr.Row():
            scales = gr.Textbox(value="0, 1, 2, 3, 5", label="Scales (w or s)")
            sweep_btn = gr.Button("Run sweep")
        sweep_plot = gr.Plot(label="Accuracy and FID against the scale")
        sweep_text = gr.Markdown()
        sweep_table = gr.Dataframe(label="Per scale", interactive=False)
        sweep_gallery = gr.Gallery(label="One grid per scale", columns=3, height="auto", format="png")
        sweep_files = export_box()

    method.change(_on_method, method, [model, classifier, scale])
    events = [
        go.click(generate, single, [grid, info, table, tsne, files], api_name="conditional_grid"),
        compare_btn.click(compare, [le_model, cn_model, aux_model, aux_scale, cg_model, cg_classifier, cg_scale,
                                    cfg_model, cfg_scale, include] + single[4:],
                          [compare_table, compare_classes, compare_gallery, compare_files],
                          api_name="conditional_compare"),
        sweep_btn.click(sweep, single + [scales], [sweep_plot, sweep_table, sweep_text, sweep_gallery, sweep_files],
                        api_name="conditional_sweep"),
    ]
    wire_stop(stop, TAB)
    return events
