"""The Class-conditional settings, declared once (``python -m lab conditional`` and the tab derive from them).

``SamplingConfig`` holds what every run shares (sampler, samples, classes, judge); ``ConditionalConfig`` adds one
method, model and scale (the grid), ``SweepConfig`` the scales to sweep, ``CompareConfig`` the methods to compare
with their models and scales.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from lab.diffusion.scale import check_scale
from lab.errors import LabError
from lab.experiments.conditional.methods import METHODS, get, method_names
from lab.params import Params, param, spec, specs

MAX_SAMPLES = 20_000
MAX_SCALE = 100.0
MAX_SCALES = 12
DEFAULT_METHOD = "cfg"
DEFAULT_CLASSIFIER = "noisy-classifier-mnist"


@dataclass
class SamplingConfig(Params):
    COMMAND: ClassVar[str] = "conditional"
    classifier: str = param(DEFAULT_CLASSIFIER, "classifier guidance: the noisy classifier",
                            label="Noisy classifier (classifier guidance)")
    sampler: str = param("ddim", "ddim or ddpm", choices=("ddim", "ddpm"), label="Sampler")
    steps: int = param(50, "sampler steps", low=1, high=1000, label="Sampling steps")
    eta: float = param(0.0, "DDIM η (0 = deterministic)", low=0.0, high=1.0, step=0.05,
                       label="DDIM η (0 = deterministic)")
    per_class: int = param(10, "samples per class (the grid shows the first of them; the metrics use all)", low=1,
                           high=MAX_SAMPLES, ui_high=200,
                           label="Samples per class (the grid shows up to 10; the metrics use all)")
    grid_columns: int = param(10, "samples shown per row of the grid", low=1, high=MAX_SAMPLES, label="Grid columns")
    classes: str = param("all", "'all' or class names/numbers separated by commas, e.g. 0, 3, 8",
                         label="Classes (rows)")
    judge: str = param("auto", "the independent classifier (auto: the shipped one trained on the model's data and "
                               "labels)", label="Judge classifier")
    fid: bool = param(True, "FID per class and overall on the judge's features",
                      label="FID per class (judge features)")
    seed: int = param(0, "random seed", low=0, high=2**31 - 1, label="Seed")
    device: str = param("auto", "auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N, mps", label="Device")
    batch_size: int = param(250, "images sampled at once", low=1, high=100_000, label="Batch size")

    def shared(self) -> dict:
        """The settings every run shares (those of ``SamplingConfig``)."""
        return {s.name: getattr(self, s.name) for s in specs(SamplingConfig)}


@dataclass
class ConditionalConfig(SamplingConfig):
    """One method: a grid with one row per class, its conditional accuracy, FID and t-SNE."""
    method: str = param(DEFAULT_METHOD, "the conditioning method", choices=method_names, label="Method")
    model: str = param(METHODS[DEFAULT_METHOD].default_model, "a model name or folder (classifier guidance: the "
                       "unconditional DDPM)", label="Model", always=True)
    scale: float = param(METHODS[DEFAULT_METHOD].default_scale, "the guidance scale: w (cfg) or s (classifier-"
                         "guidance, auxclf); the other methods ignore it", step=0.5, label="Guidance scale",
                         always=True)
    tsne: bool = param(True, "a t-SNE of the samples' judge features", label="t-SNE")

    def check(self) -> None:
        check_scale(self.scale, f"guidance scale {get(self.method).scale_name or ''}".strip(), MAX_SCALE)

    @property
    def scale_used(self) -> float | None:
        return self.scale if get(self.method).scale_name else None


@dataclass
class SweepConfig(ConditionalConfig):
    """One method at several guidance scales (the same noise and judge at each)."""
    scales: list[float] = param([0, 1, 2, 3, 5], "guidance scales to sweep, separated by commas", flag="--sweep",
                                label="Scales (w or s)", always=True)

    def check(self) -> None:
        super().check()
        method = get(self.method)
        if not method.scale_name:
            raise LabError(f"{method.label} has no guidance scale to sweep: sweep classifier-free guidance (w), "
                           "classifier guidance (s) or the auxiliary classifier (s).")
        if not 1 <= len(self.scales) <= MAX_SCALES:
            raise LabError(f"Give 1 to {MAX_SCALES} guidance scales, e.g. 0, 1, 3, 5.")
        self.scales = sorted({check_scale(s, "guidance scale", MAX_SCALE) for s in self.scales})


def parse_scales(text) -> list[float]:
    """The scales typed in a box (numbers separated by commas), quoting the text when it is not that."""
    try:
        return [float(s) for s in str(text).replace(";", ",").split(",") if s.strip()]
    except ValueError:
        raise LabError(f"{spec(SweepConfig, 'scales').label} must be numbers separated by commas, e.g. 0, 1, 3, 5 "
                       f"(got {text!r}).") from None


@dataclass
class CompareConfig(SamplingConfig):
    """Several methods on the same classes, noise, sampler and judge; each with its model and scale."""
    COMMAND: ClassVar[str] = "conditional --compare"
    methods: list[str] = param(list(METHODS), "the methods to compare", choices=method_names,
                               label="Methods to compare")
    models: list[str] = param([f"{m.name}={m.default_model}" for m in METHODS.values()],
                              "METHOD=MODEL pairs (a method not named runs its shipped model), e.g. "
                              "cfg=my-cfg,condnorm=my-cn", label="Models (METHOD=MODEL)")
    method_scales: list[str] = param([f"{m.name}={m.default_scale:g}" for m in METHODS.values() if m.scale_name],
                                     "METHOD=SCALE pairs of the guided methods (a method not named runs at its best "
                                     "shipped scale), e.g. cfg=3,classifier-guidance=5", flag="--scales",
                                     label="Scales (METHOD=SCALE)")

    def check(self) -> None:
        if not self.methods:
            raise LabError("Tick at least one method to compare.")
        for name, value in self.pairs("method_scales").items():
            method = get(name)
            check_scale(value, f"{method.short} {method.scale_name or 'scale'}", MAX_SCALE)
        self.pairs("models")

    def pairs(self, name: str) -> dict[str, str]:
        """The METHOD=VALUE pairs of setting ``name`` (``models`` or ``method_scales``)."""
        out = {}
        for part in getattr(self, name):
            key, sep, value = str(part).partition("=")
            if not sep or key.strip() not in METHODS or not value.strip():
                raise LabError(f"{spec(CompareConfig, name).label} takes METHOD=VALUE pairs separated by commas, "
                               f"METHOD one of {', '.join(METHODS)} (got {str(part)[:80]!r}).")
            out[key.strip()] = value.strip()
        return out

    def entries(self) -> list[ConditionalConfig]:
        """One grid config per method compared, in the registry's order (no t-SNE)."""
        models, scales = self.pairs("models"), self.pairs("method_scales")
        return [ConditionalConfig(**self.shared(), method=m.name, model=models.get(m.name, m.default_model),
                                  scale=float(scales.get(m.name, m.default_scale)), tsne=False)
                for m in METHODS.values() if m.name in self.methods]
