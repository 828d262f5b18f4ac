"""The Class-conditional tab: five ways to condition a diffusion model, judged by an independent classifier."""
from __future__ import annotations

import inspect
from dataclasses import replace

import gradio as gr

from lab.config import get_settings
from lab.errors import LabError
from lab.experiments.conditional.compare import run_compare
from lab.experiments.conditional.config import (
    DEFAULT_CLASSIFIER,
    DEFAULT_METHOD,
    MAX_SCALE,
    CompareConfig,
    ConditionalConfig,
    SweepConfig,
    parse_scales,
)
from lab.experiments.conditional.methods import METHODS, get
from lab.experiments.conditional.presets import PRESETS, preset
from lab.experiments.conditional.sample import run_grid
from lab.experiments.conditional.sweep import run_sweep
from lab.models.store import list_models, read_info
from lab.runs import recorded
from lab.ui.common import export_box, export_files, guarded, model_in, reporter, start_job, wire_stop
from lab.ui.display import STOPPED_TABLE, figure, figure_gallery, hint_table, results_table, table_of
from lab.ui.form import Form

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
METHOD_CHOICES = [(m.label, m.name) for m in METHODS.values()]
GRID = Form(ConditionalConfig)
SWEEP = Form(SweepConfig)
COMPARE = Form(CompareConfig)
FORMS = (GRID, SWEEP, COMPARE)


def _model(model) -> str:
    if not model:
        raise LabError("Choose a model first.")
    return model_in(model)


def _classifier(method, classifier) -> str:
    """The noisy classifier box: checked where the method uses it, else kept as it is."""
    if not get(method).uses_classifier:
        return str(classifier or DEFAULT_CLASSIFIER)
    if not classifier:
        raise LabError("Classifier guidance needs a noisy classifier: choose one (or train one with "
                       "`python -m lab train noisy-classifier --init-from ddpm-mnist --out checkpoints/noisy-classifier-mnist`).")
    return model_in(classifier, "Noisy classifier")


def _judge(judge) -> str:
    return model_in(judge, "Judge classifier") if judge and judge != "auto" else "auto"


def _files(folder):
    return export_files(folder) if folder else gr.skip()


def accuracy_verdict(accuracy: float, floor: float, classes: int) -> str:
    """Conditional accuracy in words: against the judge on real images and against chance."""
    chance = 1 / max(classes, 1)
    if accuracy >= floor - 0.02:
        return "the samples are of the requested class as often as real images are (the judge's own accuracy)"
    if accuracy <= chance + 0.05:
        return f"the label does not steer the samples (chance is {chance:.0%})"
    return f"the label steers the samples, short of the {floor:.0%} the judge reaches on real images"


@guarded(stopped=lambda text, folder: (None, text, hint_table(STOPPED_TABLE), None, _files(folder)))
def generate(method, model, classifier, scale, sampler, steps, eta, per_class, classes, judge, fid, seed,
             progress=gr.Progress(), request: gr.Request = None):
    config = GRID.config(locals(), model=_model(model), classifier=_classifier(method, classifier),
                         judge=_judge(judge)).validate()
    token = start_job(TAB, request)
    with recorded("conditional", config.__dict__, command=config.to_command()) as run:
        result = run_grid(config, progress=reporter(progress, token))
        result.save(run)
    s = result.summary()
    fid_text = (f"; FID (classifier features) **{s['fid']:.2f}** with n = {s['n']} (real-vs-real floor "
                f"{s['fid_floor']:.2f})" if s.get("fid") is not None else "")
    info = (f"**{get(config.method).label}** — {s['description']}. Conditional accuracy **{s['accuracy']:.1%}** over "
            f"n = {s['n']} samples (the judge on real test images of these classes: {s['accuracy_floor']:.1%}): "
            f"{accuracy_verdict(s['accuracy'], s['accuracy_floor'], len(s['rows']))}{fid_text}. Sampling took "
            f"{s['sampling_seconds']:.1f} s ({config.sampler}, {config.steps} steps). Judge: `{s['judge']}`. "
            f"Saved in `{run.dir}`." + "".join(f"\n\n⚠️ {note}" for note in s.get("notes", [])))
    table = table_of(result.table(), first=["class", "accuracy", "accuracy 95 % (Wilson)", "n", "FID",
                                            "FID 95 % (bootstrap)"])
    return result.grid, info, table, result.tsne, export_files(run.dir, {"tsne": result.tsne})


def compare_verdict(rows: list[dict]) -> str:
    """The comparison in words: the most accurate method, by how much, at which n."""
    measured = [r for r in rows[:-1] if r.get("conditional accuracy") is not None]   # the last row: real images
    if not measured:
        return ""
    best = max(measured, key=lambda r: r["conditional accuracy"])
    floor = rows[-1].get("conditional accuracy") or 0.0
    others = sorted((r for r in measured if r is not best), key=lambda r: -r["conditional accuracy"])
    text = (f"**{best['method']}** is the most accurate: {best['conditional accuracy']:.0%} of n = {best['n']} "
            f"samples (real images: {floor:.0%})")
    if others:
        text += "; then " + ", ".join(f"{r['method']} {r['conditional accuracy']:.0%}" for r in others)
    n = best["n"]
    if n < 100 * len(measured):
        text += (f". ⚠️ n = {n} per method: accuracies within about {100 / n ** 0.5:.0f} points of each other are "
                 "not told apart at this n")
    return text + "."


@guarded(stopped=lambda text, folder: (hint_table(STOPPED_TABLE), hint_table(STOPPED_TABLE), None, text,
                                       _files(folder)))
def compare(methods, models, method_scales, classifier, sampler, steps, eta, per_class, classes, judge, fid, seed,
            progress=gr.Progress(), request: gr.Request = None):
    config = COMPARE.config(locals(), judge=_judge(judge)).validate()
    checked = [f"{e.method}={model_in(e.model, f'{get(e.method).label} model')}" for e in config.entries()]
    guided = [m for m in config.methods if get(m).uses_classifier]
    config = replace(config, models=checked,
                     classifier=_classifier(guided[0], classifier) if guided else config.classifier)
    token = start_job(TAB, request)
    with recorded("conditional-compare", config.__dict__, command=config.to_command()) as run:
        result = run_compare(config, progress=reporter(progress, token))
        result.save(run)
    gallery = [(g, get(name).label) for g, name in result.grids]
    table = table_of(result.rows, first=["method", "conditional accuracy", "FID", "n"])
    return table, table_of(result.per_class), gallery, compare_verdict(result.rows), export_files(run.dir)


@guarded(stopped=lambda text, folder: (None, hint_table(STOPPED_TABLE), text, None, _files(folder)))
def sweep(method, model, classifier, scale, sampler, steps, eta, per_class, classes, judge, fid, seed, scales,
          progress=gr.Progress(), request: gr.Request = None):
    config = SWEEP.config(locals(), model=_model(model), classifier=_classifier(method, classifier),
                          judge=_judge(judge), scales=parse_scales(scales)).validate()
    token = start_job(TAB, request)
    with recorded("conditional-sweep", config.__dict__, command=config.to_command()) as run:
        result = run_sweep(config, progress=reporter(progress, token))
        result.save(run)
    best = result.best()
    worst = min(result.rows, key=lambda r: r["accuracy"])
    text = (f"Best accuracy **{best['accuracy']:.1%}** at {result.scale_name} = {best['scale']:g} (n = {best['n']} per "
            "scale" + (f", FID {best['FID']:.2f}" if best.get("FID") is not None else "") + f"), "
            f"{100 * (best['accuracy'] - worst['accuracy']):.1f} points above the worst scale "
            f"({result.scale_name} = {worst['scale']:g}).")
    if best["n"] < 100:
        noise = 100 / best["n"] ** 0.5
        text += (f" ⚠️ n = {best['n']} per scale: differences of less than about {noise:.0f} points are noise at "
                 "this n, and FID at small n is biased upwards (compare only at equal n).")
    gallery = [(g, f"{result.scale_name} = {name}") for g, name in result.grids]
    return (result.figure, table_of(result.rows, first=["scale", "accuracy", "FID", "n"]), text, gallery,
            export_files(run.dir, {"sweep": result.figure}))


def _on_method(method):
    m = get(method)
    choices = m.models()
    return (gr.Dropdown(choices=choices, value=m.default_model if m.default_model in choices else
                        (choices[0] if choices else None)),
            gr.Dropdown(visible=m.uses_classifier),
            gr.Slider(value=m.default_scale, label=m.scale_label, interactive=m.scale_name is not None))


def _on_model(method, model, classifier):
    """Classifier guidance: a noisy classifier trained on the chosen DDPM's data and size, when the one in the
    box is not (the pair must read the same images). Only shipped models are looked at (each card read once);
    typed folders are checked when the run starts."""
    if not get(method).uses_classifier:
        return gr.skip()
    root = get_settings().checkpoint_dir
    data = {n: (d.get("name"), d.get("size")) for n in list_models()
            for d in [read_info(root / n).get("data", {})]}
    if model not in data or data.get(classifier) == data[model]:
        return gr.skip()
    fitting = [c for c in list_models("noisy-classifier") if data.get(c) == data[model]]
    return gr.Dropdown(value=fitting[0]) if fitting else gr.skip()


def _on_preset(name: str, fields: tuple[str, ...]):
    """The preset's values in the widgets of ``fields`` (the others unchanged), the classifier box shown when the
    preset's method uses one, and a line saying what was set (and which of its models are missing)."""
    p = preset(name)
    method = get(p.values.get("method", DEFAULT_METHOD))
    updates = []
    for f in fields:
        if f == "classifier":
            updates.append(gr.Dropdown(visible=method.uses_classifier, **({"value": p.values[f]} if f in p.values
                                                                          else {})))
        elif f == "scale":
            updates.append(gr.Slider(value=p.values.get(f, method.default_scale), label=method.scale_label,
                                     interactive=method.scale_name is not None))
        else:
            updates.append(p.values[f] if f in p.values else gr.skip())
    shipped = list_models()
    missing = [v for k, v in p.values.items() if k in ("model", "classifier") and v not in shipped]
    text = f"Preset **{p.label}**: {p.note}. Press Generate."
    if missing:
        text += (f" ⚠️ {', '.join(missing)} is not in the checkpoint folder: put it there (or train it with the "
                 "command on its model card) before generating.")
    return [*updates, text]


def _dropdown(form: Form, name: str, choices, **kwargs) -> gr.Dropdown:
    """A drop-down of shipped models for setting ``name`` (any folder can be typed in), at its default."""
    s = form.spec(name)
    value = s.default if s.default in choices or not choices else choices[0]
    return form.add(name, gr.Dropdown(**{"choices": choices, "value": value, "label": s.label,
                                         "allow_custom_value": True, **kwargs}))


def _inputs(form: Form, handler) -> list:
    """The form's widgets in the order of the handler's parameters (which are named after the settings)."""
    return [form.components[p] for p in inspect.signature(handler).parameters if p in form.components]


def build() -> None:
    gr.Markdown(INTRO)
    noisy = list_models("noisy-classifier")
    default = get(DEFAULT_METHOD)
    gr.Markdown("**Ready-made settings** — press one to fill the form below, then Generate:")
    with gr.Row():
        presets = {p.name: gr.Button(p.label, size="sm") for p in PRESETS.values()}
    preset_text = gr.Markdown()
    with gr.Row():
        with gr.Column(scale=1, min_width=320):
            method = GRID.widget("method", kind="radio", choices=METHOD_CHOICES, info=None)
            model = _dropdown(GRID, "model", default.models(),
                              info="A shipped model or a model folder; classifier guidance: the unconditional DDPM.")
            classifier = _dropdown(GRID, "classifier", noisy, visible=False)
            scale = GRID.widget("scale", kind="slider", minimum=0, maximum=MAX_SCALE, label=default.scale_label,
                                info=None)
            GRID.widget("sampler", kind="radio")
            GRID.widget("steps")
            GRID.widget("eta")
            GRID.widget("per_class")
            GRID.widget("classes", info="'all', or names/numbers: 0, 3, 8")
            _dropdown(GRID, "judge", ["auto"] + list_models("classifier"),
                      info="auto: the shipped classifier trained on the model's data and labels.")
            GRID.widget("fid")
            GRID.widget("seed", kind="number")
            with gr.Row():
                go = gr.Button("Generate", variant="primary")
                stop = gr.Button("Stop", variant="stop")
        with gr.Column(scale=2):
            grid = figure("One row per class (same noise in each column)")
            info = gr.Markdown()
            table = results_table("Per class: conditional accuracy, FID (n), 95 % intervals",
                                  "Press Generate: one row per class appears here.")
            tsne = gr.Plot(label="t-SNE of the samples' judge features, coloured by requested class")
            files = export_box()
    SWEEP.share(GRID)
    COMPARE.share(GRID)

    with gr.Accordion("Compare the five methods on the same data and noise", open=False):
        with gr.Row():
            COMPARE.widget("methods", choices=METHOD_CHOICES)
            pairs = [f"{m.name}={name}" for m in METHODS.values() for name in m.models()]
            COMPARE.add("models", gr.Dropdown(
                choices=list(dict.fromkeys(pairs + list(COMPARE.spec("models").default))),
                value=list(COMPARE.spec("models").default), multiselect=True, allow_custom_value=True,
                label=COMPARE.spec("models").label,
                info="One METHOD=MODEL per method (type a folder as METHOD=PATH); a method not named runs its "
                     "shipped model."))
        with gr.Row():
            COMPARE.widget("method_scales")
            _dropdown(COMPARE, "classifier", noisy, label="4 · noisy classifier")
        gr.Markdown("Uses the sampler, steps, samples per class, classes, judge and seed set above.")
        compare_btn = gr.Button("Compare")
        compare_text = gr.Markdown()
        compare_table = results_table("Conditional accuracy, FID and sampling time per method",
                                      "Press Compare: one row per method appears here.")
        compare_classes = results_table("Conditional accuracy per class", "Press Compare to fill this table.")
        compare_gallery = figure_gallery("One grid per method", columns=2)
        compare_files = export_box()

    with gr.Accordion("Guidance-scale sweep (the method, model and settings above)", open=False):
        with gr.Row():
            SWEEP.widget("scales")
            sweep_btn = gr.Button("Run sweep")
        sweep_plot = gr.Plot(label="Accuracy and FID against the scale")
        sweep_text = gr.Markdown()
        sweep_table = results_table("Per scale", "Run the sweep: one row per scale appears here.")
        sweep_gallery = figure_gallery("One grid per scale", columns=2)
        sweep_files = export_box()

    method.input(_on_method, method, [model, classifier, scale])   # a user's choice (a preset sets its own model)
    model.input(_on_model, [method, model, classifier], classifier)
    fields = tuple(f for f in dict.fromkeys(["classifier", "scale"] + [k for p in PRESETS.values() for k in p.values])
                   if f in GRID.components)   # settings without a widget here (batch size) keep their default
    for name, button in presets.items():
        button.click(lambda n=name: _on_preset(n, fields), None,
                     [GRID.components[f] for f in fields] + [preset_text], api_name=f"conditional_preset_{name}")
    events = [
        go.click(generate, _inputs(GRID, generate), [grid, info, table, tsne, files], api_name="conditional_grid"),
        compare_btn.click(compare, _inputs(COMPARE, compare),
                          [compare_table, compare_classes, compare_gallery, compare_text, compare_files],
                          api_name="conditional_compare"),
        sweep_btn.click(sweep, _inputs(SWEEP, sweep), [sweep_plot, sweep_table, sweep_text, sweep_gallery, sweep_files],
                        api_name="conditional_sweep"),
    ]
    wire_stop(stop, TAB)
    return events
