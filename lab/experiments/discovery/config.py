"""The Domain-discovery settings, declared once (``python -m lab discovery <action>`` and the tab derive from them).

``DiscoveryConfig`` holds what every action shares (the frozen model, the unseen domain, the inversion) and is
the whole of the statistics action; the other actions extend it: ``ReconstructSettings``, ``DiscoverySettings``
and the tuning baseline's ``BaselineSettings``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from lab.data.registry import STYLES, dataset_names
from lab.errors import LabError
from lab.params import Params, param

MAX_SHOTS = 5000
MAX_SAMPLES = 10_000
PROPOSALS = ("slerp", "mix", "gaussian")   # lab.diffusion.latents.PROPOSALS (that module imports torch)


def datasets() -> tuple[str, ...]:
    """The registered datasets a domain can be taken from (a folder is given by its path)."""
    return tuple(d for d in dataset_names() if d != "folder")


def targets() -> tuple[str, ...]:
    """Unseen domains: a dataset, a folder on the server (``target_path``) or uploaded files."""
    return (*datasets(), "folder", "upload")


def in_domain_sets() -> tuple[str, ...]:
    return ("auto", "none", *datasets())


@dataclass
class DiscoveryConfig(Params):
    COMMAND: ClassVar[str] = "discovery stats"
    model: str = param("ddpm-mnist", "the frozen DDPM: a shipped name or a model folder",
                       label="Frozen diffusion model (DDPM)", always=True)
    target: str = param("fashion", "the unseen domain: a dataset, 'folder' (with --target-path) or 'upload' "
                                   "(with --files)", choices=targets, label="Target domain")
    target_style: str = param("plain", "a style applied to the target dataset (e.g. mnist + negative: an unseen "
                                       "domain made from the training data)", choices=STYLES, flag="--style",
                              label="Style applied to the dataset")
    target_path: str | None = param(None, "folder of images on the server (target 'folder')",
                                    label="Server folder (unseen domain = folder)")
    shots: int = param(100, "few-shot target images the method sees", low=2, high=MAX_SHOTS, ui_high=1000,
                       label="Few-shot target images")
    in_domain: str = param("auto", "contrast data: auto (the model's own training data), none, or a dataset",
                           choices=in_domain_sets, label="In-domain data (contrast)")
    t0: int = param(900, "inversion depth (timestep of the latent)", low=1, high=999, label="Inversion depth t0")
    steps: int = param(50, "DDIM steps between 0 and t0 (the paper's n_inv_step)", low=1, high=999, ui_high=200,
                       label="Inversion steps")
    classifier: str = param("auto", "FID / diversity features: auto (classifier-fashion for Fashion-MNIST, "
                                    "classifier-mnist for digits), none, or a classifier name or folder",
                            label="Feature classifier (FID, diversity)")
    seed: int = param(0, "random seed", low=0, high=2**31 - 1, label="Seed")
    device: str = param("auto", "auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N, mps", label="Device")
    batch_size: int = param(250, "images inverted or generated at once", low=1, high=100_000, label="Batch size")

    def check(self) -> None:
        if self.target == "folder" and not (self.target_path or "").strip():
            raise LabError("A folder target needs the path of a folder of images on the server.")
        if self.steps > self.t0:
            raise LabError(f"Inversion steps must be between 1 and t0 = {self.t0}, not {self.steps}.")


@dataclass
class ReconstructSettings(DiscoveryConfig):
    """Invert unseen (and in-domain) images at each t0 and generate them back."""
    COMMAND: ClassVar[str] = "discovery reconstruct"
    t0s: list[int] = param([300, 600, 900], "t0 values, separated by commas", low=1, high=999, label="t0 values")
    n_images: int = param(10, "images per domain", flag="--n", low=1, high=1000, ui_high=64,
                          label="Images per domain")

    def check(self) -> None:
        super().check()
        if not 1 <= len(self.t0s) <= 8:
            raise LabError("Give 1 to 8 values of t0, e.g. 300, 600, 900.")


def parse_t0s(text) -> list[int]:
    """t0 values typed as "300, 600; 900": sorted, each once."""
    try:
        values = [int(float(v)) for v in str(text).replace(";", ",").split(",") if v.strip()]
    except ValueError:
        raise LabError(f"t0 values must be whole numbers separated by commas, e.g. 300, 600, 900 (got {text!r}).")
    if not values or len(values) > 8:
        raise LabError("Give 1 to 8 values of t0, e.g. 300, 600, 900.")
    for v in values:
        if not 1 <= v <= 999:
            raise LabError(f"t0 must be between 1 and 999, not {v}.")
    return sorted(set(values))


@dataclass
class SamplingSettings(DiscoveryConfig):
    """What the discovery and the tuning baseline share: how many samples, and how they are judged."""
    count: int = param(64, "samples to generate", low=1, high=MAX_SAMPLES, ui_high=1000, label="Samples")
    metrics: bool = param(True, "FID, diversity and the copy check", label="FID, diversity, copies")
    fid_n: int | None = param(None, "samples used for FID (none: all of them)", low=2, high=MAX_SAMPLES, label="FID n")
    copy_ratio: float = param(0.5, "a sample is a copy when its nearest few-shot image is closer than this "
                                   "fraction of the real images' median distance to the few-shot set", low=0.01,
                              high=1.0, label="Copy ratio")


@dataclass
class DiscoverySettings(SamplingSettings):
    """New latents near the inverted few-shot set, through the geometric filter, generated by the frozen model."""
    COMMAND: ClassVar[str] = "discovery discover"
    method: str = param("slerp", "new latents by slerp of two inverted latents, a norm-preserving mix of "
                                 "several, or a Gaussian fit N(μ, σ²I)", choices=PROPOSALS, label="Proposal")
    norm_tol: float | None = param(2.0, "accepted ‖z‖: ± this percentage of the inverted set's mean norm (none: no "
                                        "check)", low=0.0, high=100.0, label="Norm tolerance (%)")
    origin_tol: float | None = param(2.0, "accepted mean angle at the origin to the inverted set: ± degrees "
                                          "(none: no check)", low=0.0, high=90.0, label="Origin-angle tolerance (°)")
    pair_tol: float | None = param(2.0, "accepted mean pair angle: ± degrees (none: no check)", low=0.0, high=90.0,
                                   label="Pair-angle tolerance (°)")
    t_margin: float = param(0.2, "slerp t in [margin, 1 − margin]", flag="--margin", low=0.0, high=0.49, step=0.01,
                            label="Slerp t ∈ [m, 1 − m]")
    mix_count: int = param(3, "latents per mix", low=2, high=50, ui_high=10, label="Latents per mix")
    max_candidates: int = param(20_000, "most candidates to propose", flag="--budget", low=1, high=1_000_000,
                                label="Candidate budget")

    def check(self) -> None:
        super().check()
        if self.max_candidates < self.count:
            raise LabError("The candidate budget must be at least the number of samples asked for.")


@dataclass
class BaselineSettings(SamplingSettings):
    """The tuning baseline: plain ε-loss fine-tuning of a copy of the model on the few-shot set."""
    COMMAND: ClassVar[str] = "discovery finetune"
    train_steps: int = param(300, "fine-tuning steps", low=1, high=100_000, label="Fine-tuning steps")
    lr: float = param(1e-4, "learning rate", low=1e-7, high=0.1, label="Learning rate")
    train_batch: int = param(32, "fine-tuning batch size (at most the few-shot set)", low=1, high=1024,
                             label="Batch size")
    ema_decay: float | None = param(0.999, "EMA decay of the fine-tuned weights (0 or none: no EMA)", flag="--ema",
                                    low=0.0, high=0.999999, label="EMA decay")
    save: bool = param(False, "keep the fine-tuned model in the run folder", label="Keep the fine-tuned model")
