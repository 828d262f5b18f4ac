"""Denoising steps: trajectories of DDPM/DDIM and annealed-Langevin sampling, step-count sweeps, quality.

``run_denoise`` makes the N × K grid (rows are images, columns are evenly spaced steps from noise
to sample); ``run_step_sweep`` repeats it for several step counts with a quality measure per count;
``run_quality`` samples many images and measures FID/KID and classifier-based quality.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace

import torch
from PIL import Image

from lab.config import resolve_device
from lab.diffusion.samplers import Trajectory, annealed_langevin, ddim_sample, ddpm_sample
from lab.diffusion.schedules import sigmas_of
from lab.errors import LabError
from lab.models.store import DiffusionModel, load_diffusion
from lab.progress import ProgressFn
from lab.seeding import randn
from lab.viz.grids import image_grid, label_columns, trajectory_grid

SAMPLERS = {"ddpm": ["ddpm", "ddim"], "score": ["langevin"]}
MAX_IMAGES = 10_000


@dataclass
class DenoiseConfig:
    model: str = "ddpm-mnist"
    sampler: str = "ddim"          # ddpm | ddim (DDPM models), langevin (score models)
    steps: int = 50                # DDPM/DDIM steps
    eta: float = 0.0               # DDIM η (0 = deterministic)
    langevin_steps: int = 100      # Langevin steps per noise level (T = 100 as in Song & Ermon; 20 leaves visible noise)
    langevin_eps: float = 2e-5     # ε in α_i = ε σ_i² / σ_L²
    langevin_denoise: bool = True  # the final Tweedie step
    num_images: int = 10
    snapshots: int = 10
    seed: int = 0
    device: str = "auto"
    batch_size: int = 250

    def validate(self, model: DiffusionModel | None = None) -> None:
        if not 1 <= self.num_images <= MAX_IMAGES:
            raise LabError(f"Number of images must be between 1 and {MAX_IMAGES}, not {self.num_images}.")
        if not 2 <= self.snapshots <= 50:
            raise LabError(f"Snapshots per image must be between 2 and 50, not {self.snapshots}.")
        if self.batch_size < 1:
            raise LabError("Batch size must be at least 1.")
        if model is not None and self.sampler not in SAMPLERS[model.kind]:
            hint = ("annealed Langevin needs a score model (e.g. score-mnist)" if self.sampler == "langevin"
                    else "a score model is sampled with annealed Langevin ('langevin')")
            raise LabError(f"Sampler {self.sampler!r} does not fit {model.kind} model {self.model!r}: {hint}. "
                           f"Samplers for it: {', '.join(SAMPLERS[model.kind])}.")

    def total_steps(self, model: DiffusionModel) -> int:
        if self.sampler == "langevin":
            return self.langevin_steps * model.scheduler.config.num_train_timesteps + int(self.langevin_denoise)
        return self.steps


@dataclass
class DenoiseResult:
    config: DenoiseConfig
    trajectory: Trajectory
    seconds: float
    model_kind: str
    grid: Image.Image = field(repr=False)
    samples_grid: Image.Image = field(repr=False)

    def summary(self) -> dict:
        return {"config": asdict(self.config), "seconds": round(self.seconds, 3), "model_kind": self.model_kind,
                "columns": self.trajectory.labels}

    def save(self, run) -> None:
        """Write the grid (full-resolution PNG), the samples and the summary into a run record."""
        self.grid.save(run.add("grid.png"))
        self.samples_grid.save(run.add("samples.png"))
        torch.save(self.trajectory.samples, run.add("samples.pt"))
        run.save_json("result.json", self.summary())
        run.log_metrics(seconds=round(self.seconds, 3))


def sample(model: DiffusionModel, config: DenoiseConfig, noise: torch.Tensor, snapshots: int = 2,
           progress: ProgressFn | None = None, generator_seed: int | None = None) -> Trajectory:
    """Run the configured sampler on ``noise`` (a batch of x_T)."""
    g = torch.Generator().manual_seed(config.seed + 1 if generator_seed is None else generator_seed)
    if config.sampler == "ddpm":
        return ddpm_sample(model.unet, noise, model.scheduler, config.steps, generator=g, snapshots=snapshots,
                           progress=progress)
    if config.sampler == "ddim":
        return ddim_sample(model.unet, noise, model.scheduler, config.steps, eta=config.eta, generator=g,
                           snapshots=snapshots, progress=progress)
    if config.sampler == "langevin":
        return annealed_langevin(model.unet, noise, sigmas_of(model.scheduler), config.langevin_steps,
                                 config.langevin_eps, denoise=config.langevin_denoise, generator=g,
                                 snapshots=snapshots, progress=progress)
    raise LabError(f"Unknown sampler {config.sampler!r}: use ddpm, ddim or langevin.")


def initial_noise(model: DiffusionModel, n: int, seed: int, device) -> torch.Tensor:
    """x_T: N(0, I) for DDPM; N(0, σ_1² I) for a score model (its largest noise level)."""
    x = randn((n, model.channels, model.size, model.size), seed, device)
    if model.kind == "score":
        x = x * sigmas_of(model.scheduler)[0]
    return x


def load_for(config: DenoiseConfig) -> DiffusionModel:
    model = load_diffusion(config.model, device=resolve_device(config.device))
    config.validate(model)
    return model


def run_denoise(config: DenoiseConfig, progress: ProgressFn | None = None,
                model: DiffusionModel | None = None) -> DenoiseResult:
    """The denoising-trajectory grid for ``config.num_images`` images."""
    model = model or load_for(config)
    config.validate(model)
    start = time.perf_counter()
    noise = initial_noise(model, config.num_images, config.seed, model.device)
    traj = sample(model, config, noise, snapshots=config.snapshots, progress=progress)
    seconds = time.perf_counter() - start
    scale = max(1, 256 // (model.size * config.snapshots) + 1) if model.size < 64 else 1
    grid = trajectory_grid(traj.snapshots, scale=scale)
    grid = label_columns(grid, traj.labels, cell=model.size * scale)
    nrow = min(10, config.num_images)
    samples_grid = image_grid(traj.samples, nrow=nrow, scale=max(1, 128 // (model.size * nrow) + 1))
    return DenoiseResult(config, traj, seconds, model.kind, grid, samples_grid)


def sample_many(model: DiffusionModel, config: DenoiseConfig, n: int,
                progress: ProgressFn | None = None) -> torch.Tensor:
    """``n`` samples in batches (seeded per batch), for metrics; returns [-1, 1] images on the CPU."""
    out, done = [], 0
    batches = (n + config.batch_size - 1) // config.batch_size
    per_batch = config.total_steps(model)
    for b in range(batches):
        size = min(config.batch_size, n - done)
        noise = initial_noise(model, size, config.seed * 7919 + b, model.device)

        def step_progress(i, total, desc, b=b):
            if progress is not None:
                progress(b * per_batch + i, batches * per_batch, f"Sampling {n} images")

        traj = sample(model, config, noise, snapshots=2, progress=step_progress,
                      generator_seed=config.seed * 104_729 + b)
        out.append(traj.samples.cpu())
        done += size
    return torch.cat(out)


# --- step-count sweep ------------------------------------------------------------------------

@dataclass
class SweepResult:
    step_counts: list[int]
    grids: list[Image.Image] = field(repr=False)
    seconds: list[float] = field(default_factory=list)
    quality: list[dict] = field(default_factory=list)   # per step count: confident fraction, class entropy, n

    def rows(self) -> list[dict]:
        keep = ("n", "confident_fraction", "class_entropy")
        return [{"steps": t, "seconds": round(s, 2), **{k: q[k] for k in keep if k in q}}
                for t, s, q in zip(self.step_counts, self.seconds, self.quality)]

    def save(self, run) -> None:
        for t, grid in zip(self.step_counts, self.grids):
            grid.save(run.add(f"grid_T{t}.png"))
        run.save_json("sweep.json", {"rows": self.rows(), "quality": self.quality})


def _with_steps(config: DenoiseConfig, model: DiffusionModel, total: int) -> DenoiseConfig:
    if config.sampler == "langevin":
        levels = model.scheduler.config.num_train_timesteps
        return replace(config, langevin_steps=max(1, total // levels))
    return replace(config, steps=total)


def run_step_sweep(config: DenoiseConfig, step_counts=(10, 100, 1000), metric_images: int | None = None,
                   classifier: str | None = None, progress: ProgressFn | None = None) -> SweepResult:
    """The seed's comparison of T = 10, 100, 1000: one grid and one quality measure per T.

    For a score model T is the total number of Langevin steps (T / levels per level).
    """
    from lab.metrics.quality import sample_quality

    model = load_for(config)
    if not step_counts:
        raise LabError("Give at least one step count for the sweep.")
    classifier = classifier or DOMAIN_CLASSIFIERS.get(trained_on(model) or "mnist")
    result = SweepResult(list(step_counts), [])
    for k, total in enumerate(step_counts):
        cfg = _with_steps(config, model, int(total))
        cfg.validate(model)

        def sub(i, n, desc, k=k, total=total):
            if progress is not None:
                progress(k * 1000 + int(1000 * i / max(n, 1)), 1000 * len(step_counts), f"T = {total}: {desc}")

        run = run_denoise(cfg, progress=sub, model=model)
        result.grids.append(run.grid)
        result.seconds.append(run.seconds)
        samples = run.trajectory.samples
        if metric_images and metric_images > cfg.num_images:
            samples = sample_many(model, replace(cfg, num_images=metric_images), metric_images, progress=sub)
        result.quality.append(sample_quality(samples, classifier) if classifier else {"n": len(samples)})
    return result


# --- FID / KID and classifier quality ----------------------------------------------------------

@dataclass
class QualityResult:
    n: int
    fid: dict                  # FIDResult.as_dict(): fid, kid, n, feature network, label
    floor: dict | None         # the same between two disjoint real sets of size n
    quality: dict              # confident fraction, class entropy, histogram (grey models); else only n
    sampling_seconds: float

    def rows(self) -> list[dict]:
        row = {"n": self.n, self.fid["label"]: round(self.fid["fid"], 2),
               "KID": None if self.fid["kid"] is None else round(self.fid["kid"], 3),
               "real-vs-real floor": None if self.floor is None else round(self.floor["fid"], 2),
               "feature network": self.fid["feature_network"],
               "confident fraction": _rounded(self.quality.get("confident_fraction")),
               "class entropy": _rounded(self.quality.get("class_entropy")),
               "sampling seconds": round(self.sampling_seconds, 1)}
        return [row]

    def save(self, run) -> None:
        run.save_json("quality.json", asdict(self))
        run.log_metrics(fid=self.fid["fid"], fid_floor=None if self.floor is None else self.floor["fid"],
                        confident_fraction=self.quality.get("confident_fraction"),
                        class_entropy=self.quality.get("class_entropy"), n=self.n)


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def reference_images(dataset: str, n: int, size: int, channels: int, split: str = "test",
                     seed: int = 0) -> torch.Tensor:
    from lab.data import load_dataset

    ds = load_dataset(dataset, split, size=size, channels=channels)
    if n > len(ds):
        raise LabError(f"The {split} split of {dataset} has {len(ds)} images; FID with n = {n} needs more.")
    return ds.take(n, seed=seed, stratified=False).to_float()


def trained_on(model: DiffusionModel) -> str | None:
    """The dataset a model's record names ("mnist-sketch" → mnist), or None."""
    name = model.info.get("data", {}).get("name")
    return name.split("-")[0] if name else None


DOMAIN_CLASSIFIERS = {"mnist": "classifier-mnist", "usps": "classifier-mnist", "digits": "classifier-mnist",
                      "fashion": "classifier-fashion"}


def run_quality(config: DenoiseConfig, n: int = 1000, reference: str | None = None,
                feature_network: str = "classifier", classifier: str | None = None,
                with_floor: bool = True, progress: ProgressFn | None = None,
                samples: torch.Tensor | None = None) -> QualityResult:
    """Sample ``n`` images and measure FID/KID against ``n`` real test images, plus the real-vs-real floor.
    ``classifier`` (default: the lab's classifier of the reference domain, ``DOMAIN_CLASSIFIERS``) gives the
    "classifier" FID features and the confident fraction / class entropy; faces have none (use face-api)."""
    from lab.metrics.fid import fid_kid
    from lab.metrics.quality import sample_quality

    if n < 2:
        raise LabError(f"FID needs at least 2 samples, not {n}.")
    model = load_for(config)
    reference = (reference or "").split("-")[0] or trained_on(model)
    if not reference:
        raise LabError("This model does not say what data it was trained on: choose a reference dataset.")
    classifier = classifier or DOMAIN_CLASSIFIERS.get(reference)
    if feature_network == "classifier" and classifier is None:
        raise LabError(f"No lab classifier judges {reference} images: choose the face-api features (faces) or "
                       "inception.")
    start = time.perf_counter()
    if samples is None:
        samples = sample_many(model, config, n, progress=progress)
    seconds = time.perf_counter() - start
    real = reference_images(reference, n, model.size, model.channels)
    if progress is not None:
        progress(0, 1, "Computing FID")
    fid = fid_kid(samples, real, feature_network, classifier if feature_network == "classifier" else None)
    floor = None
    if with_floor:
        other = reference_images(reference, n, model.size, model.channels, split="train", seed=1)
        floor = fid_kid(other, real, feature_network,
                        classifier if feature_network == "classifier" else None).as_dict()
    quality = sample_quality(samples, classifier) if classifier else {"n": len(samples)}
    if progress is not None:
        progress(1, 1, "Computing FID")
    return QualityResult(n, fid.as_dict(), floor, quality, seconds)
