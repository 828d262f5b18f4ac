"""Class-conditional sampling: five ways to condition a diffusion model, judged on the same data.

``run_grid`` samples one row per class (the same noise in every row of a column, so only the
label differs), then measures conditional accuracy (an independently trained classifier, the
*judge*, agrees with the requested class), FID on the judge's features per class and overall
(against the real test images of that class) and a t-SNE of the samples' features.
``run_compare`` does this for several methods on the same noise; ``run_sweep`` over guidance scales.

Methods: ``label-embed`` (ε(x, t, y)), ``condnorm`` (ε(x, t, y) through conditional norms),
``auxclf`` (unconditional ε steered by its jointly trained head, scale s), ``classifier-guidance``
(an unconditional DDPM + a noisy classifier, scale s), ``cfg`` (classifier-free guidance, weight w).
"""
from __future__ import annotations

import time
from functools import lru_cache
from dataclasses import asdict, dataclass, field, replace

import torch
from PIL import Image, ImageDraw, ImageFont

from lab.device import resolve_device
from lab.diffusion import guidance
from lab.diffusion.samplers import ddim_sample, ddpm_sample
from lab.errors import LabError
from lab.models.conditional import LabelSpec, load_conditional, load_noisy_classifier
from lab.progress import ProgressFn
from lab.seeding import randn
from lab.viz.grids import image_grid

METHODS = {
    "label-embed": "1 · Label embedding (added to the time embedding)",
    "condnorm": "2 · Conditional normalization",
    "auxclf": "3 · Auxiliary classifier (self-guidance by its head)",
    "classifier-guidance": "4 · Classifier guidance (noisy classifier)",
    "cfg": "5 · Classifier-free guidance",
}
SCALE_NAME = {"auxclf": "s", "classifier-guidance": "s", "cfg": "w"}   # methods with a guidance scale
DEFAULT_MODELS = {"label-embed": "cfg-mnist", "condnorm": "condnorm-mnist", "auxclf": "auxclf-mnist",
                  "classifier-guidance": "ddpm-mnist", "cfg": "cfg-mnist"}
DEFAULT_CLASSIFIER = "noisy-classifier-mnist"
# the best scales of the shipped MNIST models in bench/conditional.py's sweeps (docs/RESULTS.md): larger ones
# raise FID for little or no accuracy
DEFAULT_SCALES = {"auxclf": 30.0, "classifier-guidance": 30.0, "cfg": 3.0}
MAX_SAMPLES = 20_000
MAX_SCALE = 100.0


@dataclass
class ConditionalConfig:
    method: str = "cfg"
    model: str = "cfg-mnist"                 # classifier-guidance: the unconditional DDPM
    classifier: str = DEFAULT_CLASSIFIER     # classifier-guidance only: the noisy classifier
    scale: float = 3.0                       # w (cfg) or s (classifier-guidance, auxclf); others ignore it
    sampler: str = "ddim"                    # ddim | ddpm
    steps: int = 50
    eta: float = 0.0
    per_class: int = 10                      # samples per class (grid columns; metrics use them all)
    grid_columns: int = 10                   # at most this many of them are shown per row
    classes: str = "all"                     # rows: 'all' or names/numbers separated by commas
    judge: str = "auto"                      # the independent classifier; auto = the one trained on the data
    fid: bool = True
    tsne: bool = True
    seed: int = 0
    device: str = "auto"
    batch_size: int = 250

    def validate(self) -> None:
        if self.method not in METHODS:
            raise LabError(f"Unknown method {self.method!r}: choose one of {', '.join(METHODS)}.")
        if self.sampler not in ("ddim", "ddpm"):
            raise LabError(f"Sampler {self.sampler!r} is not available here: use ddim or ddpm.")
        if not 1 <= self.steps <= 1000:
            raise LabError(f"Sampling steps must be between 1 and 1000, not {self.steps}.")
        if not 0 <= self.eta <= 1:
            raise LabError(f"DDIM η must be between 0 and 1, not {self.eta}.")
        if not 1 <= self.per_class <= MAX_SAMPLES:
            raise LabError(f"Samples per class must be between 1 and {MAX_SAMPLES}, not {self.per_class}.")
        if self.grid_columns < 1:
            raise LabError("The grid needs at least one column.")
        if self.batch_size < 1:
            raise LabError("Batch size must be at least 1.")
        guidance.check_scale(self.scale, f"guidance scale {SCALE_NAME.get(self.method, '')}".strip())
        if self.scale > MAX_SCALE:
            raise LabError(f"A guidance scale above {MAX_SCALE:g} only saturates the samples; got {self.scale}.")

    @property
    def scale_used(self) -> float | None:
        return self.scale if self.method in SCALE_NAME else None


def models_for(method: str) -> list[str]:
    """Shipped model folders that can run ``method`` (classifier guidance: the unconditional DDPMs)."""
    from lab.config import get_settings
    from lab.models.store import list_models, read_info

    if method == "classifier-guidance":
        return list_models("ddpm")
    names = []
    for name in list_models("conditional"):
        info = read_info(get_settings().checkpoint_dir / name)
        found, dropout = info.get("method"), float(info.get("p_uncond") or 0)
        if found == method or (method == "cfg" and found in ("label-embed", "condnorm") and dropout > 0):
            names.append(name)
    return names


# --- preparing a method --------------------------------------------------------------------------

@dataclass
class Conditioner:
    """A method ready to sample: ``eps_for(labels)`` is the ε-callable for a batch of labels."""

    method: str
    scale: float | None
    spec: LabelSpec
    scheduler: object
    size: int
    channels: int
    device: torch.device
    data: dict                     # what the model was trained on (name, condition_on, ...)
    eps_for: object = field(repr=False)
    description: str = ""


def _expect(model, methods: tuple[str, ...], name: str, method: str):
    found = model.model.config.method
    if found not in methods:
        need = {"label-embed": "label-embed or cfg", "condnorm": "condnorm", "auxclf": "auxclf"}
        raise LabError(f"{name!r} is a {found} model; method {METHODS[method]!r} needs a "
                       f"{' / '.join(need[m] for m in methods)} model.")


def prepare(config: ConditionalConfig) -> Conditioner:
    """Load the models a method needs and wrap them as an ε-callable factory."""
    config.validate()
    device = resolve_device(config.device)
    m, s = config.method, config.scale
    if m == "classifier-guidance":
        from lab.models.store import load_diffusion

        base = load_diffusion(config.model, device=device)
        if base.kind != "ddpm":
            raise LabError(f"Classifier guidance steers an ε-prediction DDPM; {config.model!r} is a {base.kind} model.")
        clf = load_noisy_classifier(config.classifier, device=device)
        _check_pair(base, clf, config)
        unet, net, spec = base.unet, clf.net, clf.spec
        return Conditioner(m, s, spec, base.scheduler, base.size, base.channels, device,
                           clf.info.get("data", {}) or base.info.get("data", {}),
                           lambda labels: guidance.classifier_guided(unet, net, labels, s, base.scheduler, spec),
                           f"{config.model} guided by {config.classifier}, s = {s:g}")
    model = load_conditional(config.model, device=device)
    spec, net = model.spec, model.model
    if m == "label-embed":
        _expect(model, ("label-embed",), config.model, m)
        factory, what = (lambda labels: guidance.conditional(net, labels)), "ε(x, t, y)"
    elif m == "condnorm":
        _expect(model, ("condnorm",), config.model, m)
        factory, what = (lambda labels: guidance.conditional(net, labels)), f"conditional {net.config.norm} norm"
    elif m == "auxclf":
        _expect(model, ("auxclf",), config.model, m)
        factory = lambda labels: guidance.self_guided(net, labels, s, model.scheduler, spec)  # noqa: E731
        what = f"self-guidance by its head, s = {s:g}"
    else:
        _expect(model, ("label-embed", "condnorm"), config.model, m)
        if not model.has_null:
            raise LabError(f"{config.model!r} was trained without label dropout, so it has no unconditional "
                           "branch for classifier-free guidance: train one with `python -m lab train cfg` "
                           "(or use method 1 with it).")
        factory = lambda labels: guidance.classifier_free(net, labels, s, spec)  # noqa: E731
        what = f"classifier-free guidance, w = {s:g}"
    return Conditioner(m, config.scale_used, spec, model.scheduler, model.size, model.channels, device,
                       model.info.get("data", {}), factory, f"{config.model}: {what}")


def _check_pair(base, clf, config: ConditionalConfig) -> None:
    size, channels = int(clf.net.config.unet_config["sample_size"]), int(clf.net.config.unet_config["in_channels"])
    if (size, channels) != (base.size, base.channels):
        raise LabError(f"The noisy classifier {config.classifier!r} reads {size} px / {channels} channel(s) but "
                       f"{config.model!r} makes {base.size} px / {base.channels}: pick a matching pair.")
    a, b = clf.scheduler.config, base.scheduler.config
    keys = ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule")
    if any(a.get(k) != b.get(k) for k in keys):
        raise LabError(f"The noisy classifier {config.classifier!r} was trained on another noise schedule than "
                       f"{config.model!r} ({', '.join(f'{k}={a.get(k)}/{b.get(k)}' for k in keys)}).")


# --- sampling ------------------------------------------------------------------------------------

def sample_labelled(cond: Conditioner, labels: torch.Tensor, noise: torch.Tensor, config: ConditionalConfig,
                    progress: ProgressFn | None = None, desc: str = "Sampling") -> torch.Tensor:
    """Samples for ``labels`` from ``noise`` (one x_T per label), in batches; [-1, 1] on the CPU."""
    out, n = [], len(labels)
    batches = max(1, -(-n // config.batch_size))
    for b in range(batches):
        sl = slice(b * config.batch_size, min(n, (b + 1) * config.batch_size))
        x = noise[sl].to(cond.device)
        eps = cond.eps_for(labels[sl].to(cond.device))
        g = torch.Generator().manual_seed(config.seed * 104_729 + b + 1)

        def step(i, total, _desc, b=b):
            if progress is not None:
                progress(b * total + i, batches * total, desc)

        if config.sampler == "ddpm":
            traj = ddpm_sample(eps, x, cond.scheduler, config.steps, generator=g, snapshots=2, progress=step)
        else:
            traj = ddim_sample(eps, x, cond.scheduler, config.steps, eta=config.eta, generator=g, snapshots=2,
                               progress=step)
        out.append(traj.samples.cpu())
    return torch.cat(out)


def paired_batch(spec: LabelSpec, rows: list[int], per_class: int, size: int, channels: int,
                 seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(labels, noise) row by row: every row reuses the same ``per_class`` noise images, so the only
    difference between rows of one column is the label."""
    bank = randn((per_class, channels, size, size), seed)
    labels = spec.row_labels(rows).repeat_interleave(per_class, dim=0)
    return labels, bank.repeat(len(rows), 1, 1, 1)


# --- the judge and the metrics -------------------------------------------------------------------

def find_judge(data: dict, spec: LabelSpec, judge: str = "auto") -> str:
    """The judge classifier: given, or the shipped one trained on the same data and labels."""
    from lab.models.store import list_models, read_info, resolve_model_path

    if judge and judge != "auto":
        return str(resolve_model_path(judge))
    name = data.get("name")
    for candidate in list_models("classifier"):
        info = read_info(resolve_model_path(candidate))
        d = info.get("data", {})
        names = tuple(info.get("labels", {}).get("names") or d.get("classes") or ())
        if d.get("name") == name and names == spec.names:
            return str(resolve_model_path(candidate))
    target = data.get("condition_on", "class")
    extra = f" --condition-on {target}" if target not in ("class", None) else ""
    raise LabError(f"No judge classifier for {name or 'this data'} ({', '.join(spec.names)}) among the shipped "
                   f"models. Train one: `python -m lab train judge --data {name}{extra} --out "
                   f"checkpoints/classifier-{name}`, or choose one.")


def judge_outputs(judge, images: torch.Tensor, batch_size: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, 128-d features) of the judge ConvNet for [-1, 1] images, quantized to 8 bits first exactly as
    ``lab.metrics.fid`` feeds torch-fidelity, so the FIDs below equal ``fid_kid``'s."""
    from lab.metrics.classify import outputs

    return outputs(judge, images, batch_size, features=True, quantize=True)


def fid_from_features(a: torch.Tensor, b: torch.Tensor) -> float | None:
    """FID between two feature sets with torch-fidelity's own statistics and formula (None below 2 each)."""
    from threadpoolctl import threadpool_limits
    from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_features_to_statistics, fid_statistics_to_metric

    if len(a) < 2 or len(b) < 2:
        return None
    with threadpool_limits(limits=1, user_api="blas"):  # a 128×128 eigen-problem: threads only cost here
        stats = fid_features_to_statistics(a.float()), fid_features_to_statistics(b.float())
        return float(fid_statistics_to_metric(*stats, verbose=False)[KEY_METRIC_FID])


def real_by_row(data: dict, spec: LabelSpec, rows: list[int], size: int, channels: int,
                per_row: int = 1000, split: str = "test") -> dict[int, torch.Tensor]:
    """Up to ``per_row`` real images of each requested class (attribute present), [-1, 1]."""
    from lab.train.conditional import conditional_data

    name = data.get("name")
    if not name:
        raise LabError("This model does not say which data it was trained on, so there is no real reference.")
    d = conditional_data(name.split("-")[0], split, size, channels, None, data.get("style", "plain"),
                         condition_on=data.get("condition_on") if data.get("condition_on") != "class" else None)
    out = {}
    for r in rows:
        hit = d.labels == r if spec.kind == "class" else d.labels[:, r] > 0
        idx = hit.nonzero().squeeze(1)
        g = torch.Generator().manual_seed(r)
        idx = idx[torch.randperm(len(idx), generator=g)[:per_row]]
        out[r] = d.images.subset(idx).to_float()
    return out


def real_reference(judge_path: str, data: dict, spec: LabelSpec, rows: list[int], size: int, channels: int,
                   per_row: int = 1000, split: str = "test") -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """The judge's (logits, features) of the real images of each row; cached per judge, data and rows."""
    from pathlib import Path

    weights = sorted(Path(judge_path).glob("*.safetensors"))
    stamp = weights[0].stat().st_mtime if weights else 0.0
    key = (str(judge_path), stamp, data.get("name"), data.get("style", "plain"), data.get("condition_on"),
           spec, tuple(rows), size, channels, per_row, split)
    return _real_reference(key)


@lru_cache(maxsize=8)
def _real_reference(key) -> dict:
    from lab.models.store import load_classifier

    judge_path, _, name, style, condition_on, spec, rows, size, channels, per_row, split = key
    data = {"name": name, "style": style, "condition_on": condition_on}
    judge = load_classifier(judge_path)
    images = real_by_row(data, spec, list(rows), size, channels, per_row, split)
    return {r: judge_outputs(judge, x) for r, x in images.items()}


@dataclass
class Metrics:
    n: int                                   # samples measured
    accuracy: float                          # overall conditional accuracy
    per_class: list[dict]                    # class, n, accuracy, FID, n_reference
    fid: float | None
    fid_floor: float | None                  # real train vs real test, same n
    accuracy_floor: float                    # the judge on real test images of the same classes
    judge: str
    features: torch.Tensor = field(repr=False, default=None)   # the judge's 128-d features of the samples
    predicted: torch.Tensor = field(repr=False, default=None)  # the judge's top class
    correct: torch.Tensor = field(repr=False, default=None)    # the judge agrees with the requested label


def measure(samples: torch.Tensor, labels: torch.Tensor, rows: list[int], spec: LabelSpec, data: dict,
            judge_path: str, fid: bool = True, progress: ProgressFn | None = None) -> Metrics:
    """Conditional accuracy and FID (judge features, torch-fidelity's formula) per class and overall."""
    from lab.models.store import load_classifier

    judge = load_classifier(judge_path)
    if judge.config.num_classes != spec.num:
        raise LabError(f"The judge {judge_path} has {judge.config.num_classes} outputs, the model {spec.num} "
                       f"labels ({', '.join(spec.names)}): choose a judge of the same labels.")
    size, channels = samples.shape[-1], samples.shape[1]
    if progress is not None:
        progress(0, 2, "Judging the samples")
    logits, feats = judge_outputs(judge, samples)
    correct = spec.correct(logits, labels)
    real = real_reference(judge_path, data, spec, rows, size, channels)
    per_class, real_hits, real_n = [], 0.0, 0
    for r in rows:
        mine = (labels == r) if spec.kind == "class" else (labels[:, r] > 0) & (labels.abs().sum(1) == 1)
        real_logits, real_feats = real[r]
        want = spec.row_labels([r]).repeat(len(real_logits), *([1] * (spec.row_labels([r]).ndim - 1)))
        real_ok = spec.correct(real_logits, want).float()
        real_hits, real_n = real_hits + real_ok.sum().item(), real_n + len(real_ok)
        row = {"class": spec.names[r], "n": int(mine.sum()), "accuracy": round(correct[mine].float().mean().item(), 4),
               "accuracy (real)": round(real_ok.mean().item(), 4)}
        if fid:
            value = fid_from_features(feats[mine], real_feats)
            row["FID"] = None if value is None else round(value, 3)
            row["n reference"] = len(real_feats)
        per_class.append(row)
    overall = floor = None
    if fid:
        if progress is not None:
            progress(1, 2, "FID")
        real_all = torch.cat([real[r][1] for r in rows])
        overall = fid_from_features(feats, real_all)
        train = real_reference(judge_path, data, spec, rows, size, channels,
                               per_row=max(2, len(samples) // len(rows)), split="train")
        floor = fid_from_features(torch.cat([train[r][1] for r in rows]), real_all)
    if progress is not None:
        progress(2, 2, "Measured")
    return Metrics(len(samples), correct.float().mean().item(), per_class, overall, floor,
                   real_hits / max(real_n, 1), judge_path, feats, logits.argmax(1), correct)


# --- figures -------------------------------------------------------------------------------------

def label_rows(grid: Image.Image, names: list[str], cell: int, padding: int = 2, width: int = 90) -> Image.Image:
    """Add the class names left of a grid's rows."""
    out = Image.new("RGB", (grid.width + width, grid.height), "white")
    out.paste(grid.convert("RGB"), (width, 0))
    draw = ImageDraw.Draw(out)
    font = ImageFont.load_default(size=max(10, min(14, cell // 3)))
    for i, text in enumerate(names):
        y = padding + i * (cell + padding) + cell // 2 - 7
        draw.text((4, y), text[:14], fill="black", font=font)
    return out


def tsne_figure(features: torch.Tensor, requested: list[str], correct: list[bool], judged: list[str], title: str,
                seed: int = 0):
    """t-SNE (scikit-learn) of the judge's features, coloured by requested class; ✕ = the judge disagrees."""
    from lab.viz.plots import scatter_figure, tsne_2d

    if len(features) < 5:
        raise LabError("A t-SNE needs at least 5 samples.")
    points = tsne_2d(features.numpy(), seed=seed)
    symbols = ["circle" if ok else "x" for ok in correct]
    hover = [f"requested {a}, {b}" for a, b in zip(requested, judged)]
    fig = scatter_figure(points, requested, title, symbols=symbols, hover=hover)
    fig.update_layout(legend_title_text="requested class")
    return fig


def sweep_figure(rows: list[dict], scale_name: str, title: str):
    """Conditional accuracy (left axis) and FID (right axis) against the guidance scale."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from lab.viz.plots import LAYOUT

    fig = make_subplots(specs=[[{"secondary_y": True}]])
    x = [r["scale"] for r in rows]
    fig.add_trace(go.Scatter(x=x, y=[r["accuracy"] for r in rows], name="conditional accuracy",
                             mode="lines+markers"), secondary_y=False)
    if any(r.get("FID") is not None for r in rows):
        fig.add_trace(go.Scatter(x=x, y=[r.get("FID") for r in rows], name="FID (classifier features)",
                                 mode="lines+markers", line=dict(dash="dash")), secondary_y=True)
    fig.update_layout(title=title, **LAYOUT)
    fig.update_xaxes(title_text=f"guidance scale {scale_name}")
    fig.update_yaxes(title_text="conditional accuracy", range=[0, 1.02], secondary_y=False)
    fig.update_yaxes(title_text="FID (lower is better)", secondary_y=True)
    return fig


# --- the grid ------------------------------------------------------------------------------------

@dataclass
class GridResult:
    config: ConditionalConfig
    rows: list[str]
    samples: torch.Tensor = field(repr=False)
    labels: torch.Tensor = field(repr=False)
    grid: Image.Image = field(repr=False)
    metrics: Metrics | None
    seconds: float                          # sampling time only
    description: str = ""
    tsne: object = field(repr=False, default=None)

    def table(self) -> list[dict]:
        return self.metrics.per_class if self.metrics else []

    def summary(self) -> dict:
        m = self.metrics
        out = {"method": self.config.method, "description": self.description, "scale": self.config.scale_used,
               "sampler": self.config.sampler, "steps": self.config.steps, "n": len(self.samples),
               "sampling_seconds": round(self.seconds, 2), "rows": self.rows}
        if m is not None:
            out.update(accuracy=round(m.accuracy, 4), fid=None if m.fid is None else round(m.fid, 3),
                       fid_floor=None if m.fid_floor is None else round(m.fid_floor, 3),
                       accuracy_floor=round(m.accuracy_floor, 4), judge=m.judge, per_class=m.per_class)
        return out

    def save(self, run) -> None:
        from lab.viz.export import save_figure, write_csv

        self.grid.save(run.add("grid.png"))
        torch.save({"samples": self.samples, "labels": self.labels}, run.add("samples.pt"))
        run.save_json("result.json", self.summary())
        if self.metrics is not None:
            write_csv(run.add("per_class.csv"), self.table())
            run.log_metrics(accuracy=self.metrics.accuracy, fid=self.metrics.fid, n=len(self.samples),
                            sampling_seconds=round(self.seconds, 2))
        if self.tsne is not None:
            for path in save_figure(self.tsne, run.path("tsne"), formats=("html", "png", "svg")):
                run.add(path.name)


def run_grid(config: ConditionalConfig, progress: ProgressFn | None = None, measure_it: bool = True,
             cond: Conditioner | None = None) -> GridResult:
    """One row per requested class, ``per_class`` samples each; metrics and t-SNE when ``measure_it``."""
    cond = cond or prepare(config)
    rows = cond.spec.parse_rows(config.classes)
    if len(rows) * config.per_class > MAX_SAMPLES:
        raise LabError(f"{len(rows)} classes × {config.per_class} samples is more than {MAX_SAMPLES}: ask for fewer.")
    judge_path = find_judge(cond.data, cond.spec, config.judge) if measure_it else None
    labels, noise = paired_batch(cond.spec, rows, config.per_class, cond.size, cond.channels, config.seed)
    start = time.perf_counter()
    samples = sample_labelled(cond, labels, noise, config, progress, f"Sampling {len(labels)} images")
    seconds = time.perf_counter() - start
    shown = min(config.per_class, config.grid_columns)
    keep = torch.cat([torch.arange(r * config.per_class, r * config.per_class + shown) for r in range(len(rows))])
    scale = max(1, 64 // cond.size)
    grid = image_grid(samples[keep], nrow=shown, scale=scale)
    names = [cond.spec.names[r] for r in rows]
    grid = label_rows(grid, names, cell=cond.size * scale)
    metrics, fig = None, None
    if measure_it:
        metrics = measure(samples, labels, rows, cond.spec, cond.data, judge_path, fid=config.fid, progress=progress)
        if config.tsne and len(samples) >= 5:
            requested = [cond.spec.names[r] for r in rows for _ in range(config.per_class)]
            if cond.spec.kind == "class":
                judged = [f"judged {cond.spec.names[i]}" for i in metrics.predicted.tolist()]
            else:
                judged = ["judged present" if ok else "judged absent" for ok in metrics.correct.tolist()]
            fig = tsne_figure(metrics.features, requested, metrics.correct.tolist(), judged,
                              f"t-SNE of the judge's features: {METHODS[config.method]}", seed=config.seed)
    return GridResult(config, names, samples, labels, grid, metrics, seconds, cond.description, fig)


# --- comparison across methods -------------------------------------------------------------------

@dataclass
class MethodEntry:
    method: str
    model: str
    scale: float = 0.0
    classifier: str = DEFAULT_CLASSIFIER


def default_entries(scales: dict | None = None) -> list[MethodEntry]:
    scales = {**DEFAULT_SCALES, **(scales or {})}
    return [MethodEntry(m, DEFAULT_MODELS[m], scales.get(m, 0.0)) for m in METHODS]


@dataclass
class CompareResult:
    rows: list[dict]
    grids: list[tuple[Image.Image, str]] = field(repr=False)
    per_class: list[dict] = field(default_factory=list)   # method × class accuracy
    details: list[dict] = field(default_factory=list)

    def save(self, run) -> None:
        from lab.viz.export import write_csv

        write_csv(run.add("compare.csv"), self.rows)
        write_csv(run.add("compare_per_class.csv"), self.per_class)
        for grid, name in self.grids:
            grid.save(run.add(f"grid_{name}.png"))
        run.save_json("compare.json", {"rows": self.rows, "details": self.details})


def run_compare(entries: list[MethodEntry], config: ConditionalConfig, progress: ProgressFn | None = None) -> CompareResult:
    """Every method on the same classes, the same noise, the same sampler and the same judge."""
    if not entries:
        raise LabError("Choose at least one method to compare.")
    result = CompareResult([], [])
    for k, e in enumerate(entries):
        cfg = replace(config, method=e.method, model=e.model, scale=e.scale, classifier=e.classifier, tsne=False)

        def sub(i, n, desc, k=k, e=e):
            if progress is not None:
                progress(k * 1000 + int(1000 * i / max(n, 1)), 1000 * len(entries), f"{e.method}: {desc}")

        r = run_grid(cfg, progress=sub)
        s = r.summary()
        result.rows.append({"method": METHODS[e.method], "model": e.model if e.method != "classifier-guidance"
                            else f"{e.model} + {e.classifier}", "scale": s["scale"],
                            "conditional accuracy": s["accuracy"], "FID": s["fid"], "n": s["n"],
                            "sampling seconds": s["sampling_seconds"]})
        result.per_class.append({"method": e.method, **{row["class"]: row["accuracy"] for row in s["per_class"]}})
        result.grids.append((r.grid, e.method))
        result.details.append(s)
    if result.details:
        d = result.details[0]
        result.rows.append({"method": "real test images (judge's accuracy floor)", "model": d["judge"],
                            "scale": None, "conditional accuracy": d["accuracy_floor"], "FID": d["fid_floor"],
                            "n": d["n"], "sampling seconds": None})
    return result


# --- guidance-scale sweep ------------------------------------------------------------------------

@dataclass
class SweepResult:
    method: str
    scale_name: str
    rows: list[dict]
    grids: list[tuple[Image.Image, str]] = field(repr=False)
    figure: object = field(repr=False, default=None)

    def best(self) -> dict:
        return max(self.rows, key=lambda r: (r["accuracy"], -(r.get("FID") or 0)))

    def save(self, run) -> None:
        from lab.viz.export import save_figure, write_csv

        write_csv(run.add("sweep.csv"), self.rows)
        for grid, name in self.grids:
            grid.save(run.add(f"grid_{self.scale_name}{name}.png"))
        if self.figure is not None:
            for path in save_figure(self.figure, run.path("sweep"), formats=("html", "png", "svg")):
                run.add(path.name)


def parse_scales(text) -> list[float]:
    try:
        scales = [float(s) for s in str(text).replace(";", ",").split(",") if s.strip()]
    except ValueError:
        raise LabError(f"Guidance scales must be numbers separated by commas, e.g. 0, 1, 3, 5 (got {text!r}).") from None
    if not 1 <= len(scales) <= 12:
        raise LabError("Give 1 to 12 guidance scales, e.g. 0, 1, 3, 5.")
    for s in scales:
        guidance.check_scale(s)
        if s > MAX_SCALE:
            raise LabError(f"A guidance scale above {MAX_SCALE:g} only saturates the samples; got {s}.")
    return sorted(set(scales))


def run_sweep(config: ConditionalConfig, scales: list[float], progress: ProgressFn | None = None) -> SweepResult:
    """Accuracy and FID of one method at several guidance scales (same noise, same judge)."""
    if config.method not in SCALE_NAME:
        raise LabError(f"{METHODS[config.method]} has no guidance scale to sweep: sweep classifier-free guidance "
                       "(w), classifier guidance (s) or the auxiliary classifier (s).")
    name = SCALE_NAME[config.method]
    result = SweepResult(config.method, name, [], [])
    for k, s in enumerate(scales):
        cfg = replace(config, scale=float(s), tsne=False)

        def sub(i, n, desc, k=k, s=s):
            if progress is not None:
                progress(k * 1000 + int(1000 * i / max(n, 1)), 1000 * len(scales), f"{name} = {s:g}: {desc}")

        r = run_grid(cfg, progress=sub)
        summary = r.summary()
        result.rows.append({"scale": float(s), "accuracy": summary["accuracy"], "FID": summary["fid"],
                            "n": summary["n"], "sampling seconds": summary["sampling_seconds"]})
        result.grids.append((r.grid, f"{s:g}"))
    result.figure = sweep_figure(result.rows, name, f"{METHODS[config.method]}: accuracy and FID against {name}")
    return result


def config_dict(config: ConditionalConfig) -> dict:
    return asdict(config)
