"""The Denoising-steps settings, declared once (the CLI's ``sample`` / ``evaluate`` and the tab derive from them)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from lab.errors import LabError
from lab.metrics import FEATURE_NETWORKS
from lab.params import Params, param

SAMPLERS = {"ddpm": ["ddim", "ddpm"], "score": ["pc", "dpm", "dpm-sde", "langevin"]}
SAMPLER_NAMES = {"ddim": "DDIM", "ddpm": "DDPM ancestral sampling", "pc": "predictor–corrector",
                 "dpm": "DPM-Solver++(2M) on the probability-flow ODE",
                 "dpm-sde": "SDE-DPM-Solver++(2M) on the reverse SDE", "langevin": "annealed Langevin"}
MAX_IMAGES = 10_000


@dataclass
class DenoiseConfig(Params):
    COMMAND: ClassVar[str] = "sample"
    model: str = param("ddpm-mnist", "a shipped model's name, a model folder or (online) a Hub id", label="Model",
                       always=True)
    sampler: str = param("ddim", "ddim or ddpm for DDPM models; pc (predictor–corrector), dpm (the probability-flow "
                                 "ODE with DPM-Solver++), dpm-sde (the reverse SDE with SDE-DPM-Solver++) or "
                                 "langevin (annealed Langevin) for score models (CLI default: what the model's card "
                                 "recommends)",
                         choices=tuple(name for names in SAMPLERS.values() for name in names), label="Sampler")
    steps: int = param(50, "DDPM/DDIM steps, the predictor steps of pc, or the (SDE-)DPM-Solver steps", low=1, high=1000,
                       label="Steps (DDPM / DDIM / PC / DPM)")
    eta: float = param(0.0, "DDIM η (0 = deterministic)", low=0.0, high=1.0, step=0.05, label="DDIM η (0 = deterministic)")
    langevin_steps: int = param(100, "annealed Langevin steps per noise level (T = 100 as in Song & Ermon; 20 "
                                     "leaves visible noise)", low=1, high=10_000, ui_high=200,
                                label="Steps per noise level")
    langevin_eps: float = param(2e-5, "Langevin step size ε in α_i = ε σ_i² / σ_L²", low=1e-9, high=0.1,
                                label="Langevin ε")
    langevin_denoise: bool = param(True, "the final denoising (Tweedie) step of annealed Langevin",
                                   flag="--denoise", label="Final denoising step")
    corrector_steps: int = param(1, "pc: Langevin corrector steps after each predictor step", low=0, high=100,
                                 ui_high=5, label="Corrector steps per level")
    snr: float = param(0.16, "pc: the corrector's signal-to-noise ratio (its step size)", low=0.001, high=1.0,
                       step=0.01, label="Corrector SNR")
    num_images: int = param(10, "number of images (grid rows)", flag="--n", low=1, high=MAX_IMAGES, ui_high=16,
                            label="Number of images (rows)")
    snapshots: int = param(10, "snapshots per image (grid columns)", low=2, high=50, ui_high=20, label="Snapshots (columns)")
    seed: int = param(0, "random seed", low=0, high=2**31 - 1, label="Seed")
    device: str = param("auto", "auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N, mps", label="Device")
    batch_size: int = param(250, "images sampled at once", low=1, high=100_000, label="Batch size")
    bf16: bool = param(False, "bf16 autocast on CPU while sampling (about 1.5–2× faster on CPUs with "
                              "AVX512-BF16/AMX, several times slower on CPUs without; CUDA always uses mixed "
                              "precision)", label="bf16 on CPU")

    def check_model(self, kind: str) -> None:
        if self.sampler not in SAMPLERS[kind]:
            wrong = (f"{SAMPLER_NAMES.get(self.sampler, self.sampler)} needs a score model (e.g. score-mnist); "
                     if kind == "ddpm" else "")
            fitting = ", ".join(f"{SAMPLER_NAMES[name]} ('{name}')" for name in SAMPLERS[kind])
            raise LabError(f"Sampler {self.sampler!r} does not fit {kind} model {self.model!r}: {wrong}a {kind} model "
                           f"is sampled with {fitting}.")

    def total_steps(self, levels: int | None) -> int:
        """Network calls per image: the DDPM/DDIM steps, or Langevin steps × ``levels`` (+ the final step)."""
        if self.sampler == "langevin":
            return self.langevin_steps * int(levels or 1) + int(self.langevin_denoise)
        if self.sampler == "pc":
            return self.steps * (1 + self.corrector_steps)
        return self.steps


@dataclass
class SweepConfig(DenoiseConfig):
    """The seed's step-count sweep: one grid and one quality measure per number of steps T."""
    step_counts: list[int] = param([10, 100, 1000], "step counts T, separated by commas", flag="--sweep",
                                   low=1, high=100_000, label="Step counts", always=True)
    metric_images: int = param(0, "extra images per step count for the quality measure (0: the grid's own)",
                               low=0, high=10_000, ui_high=1000, step=10,
                               label="Extra images for the quality measure")

    def check(self) -> None:
        if not 1 <= len(self.step_counts) <= 6:
            raise LabError("Give 1 to 6 step counts, e.g. 10, 100, 1000.")


@dataclass
class QualityConfig(DenoiseConfig):
    COMMAND: ClassVar[str] = "evaluate"
    fid_n: int = param(1000, "samples (and real images) for FID", low=10, high=MAX_IMAGES, step=10,
                       label="Samples (n)")
    features: str = param("classifier", "FID features: the lab's classifier of the model's domain, Inception "
                                        "(online, or LAB_INCEPTION_WEIGHTS), or the face-api descriptor (faces)",
                          choices=FEATURE_NETWORKS, label="Feature network")
    reference: str | None = param(None, "real dataset to compare with (default: the model's)", label="Reference")
    floor: bool = param(True, "also measure the real-vs-real floor at the same n",
                        label="Also the real-vs-real floor")


@dataclass
class TSweepConfig(Params):
    """The seed's training-T sweep: one DDPM per T, same steps, data, seed and learning rate."""
    COMMAND: ClassVar[str] = "t-sweep"
    timesteps: list[int] = param([10, 100, 1000], "the T values to train with, separated by commas", low=2,
                                 high=4000, label="T values")
    train_steps: int = param(2000, "optimiser steps for each model", low=1, high=1_000_000, label="Training steps")
    batch_size: int = param(128, "training batch size", low=1, high=4096, label="Batch size")
    lr: float = param(1e-3, "peak learning rate", low=1e-7, high=0.5, label="Learning rate")
    data: str = param("mnist", "training data", choices=("mnist", "fashion", "usps", "digits"), label="Data")
    limit: int | None = param(None, "a class-balanced subset of this many training images (none: all)", low=10,
                              high=1_000_000, label="Training images")
    n: int = param(500, "samples per model for FID", low=10, high=MAX_IMAGES, label="Samples (n)")
    bf16: bool = param(False, "bf16 autocast on CPU while training (only on CPUs with AVX512-BF16/AMX: "
                              "several times slower elsewhere)", label="bf16 on CPU")
    seed: int = param(0, "random seed (the same for every T)", low=0, high=2**31 - 1, label="Seed")
    device: str = param("auto", "auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N, mps", label="Device")
