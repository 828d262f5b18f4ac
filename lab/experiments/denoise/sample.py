"""Denoising trajectories: ``run_denoise`` makes the N × K grid (rows are images, columns are evenly spaced steps
from noise to sample); ``sample_many`` draws images for metrics; ``run_step_sweep`` repeats the grid for several
step counts with a quality measure per count."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace

import torch
from PIL import Image

from lab.device import autocast_for, resolve_device
from lab.diffusion.samplers import Trajectory, annealed_langevin, ddim_sample, ddpm_sample, dpm_sample, pc_sample
from lab.diffusion.schedules import sigmas_of
from lab.experiments.denoise.config import DenoiseConfig, SweepConfig
from lab.models.loaded import LoadedModel
from lab.models.store import load_diffusion
from lab.progress import ProgressFn, part
from lab.seeding import randn
from lab.viz.grids import image_grid, label_columns, trajectory_grid


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


def _ddpm(model, config, noise, g, snapshots, progress):
    return ddpm_sample(model.unet, noise, model.scheduler, config.steps, generator=g, snapshots=snapshots,
                       progress=progress)


def _ddim(model, config, noise, g, snapshots, progress):
    return ddim_sample(model.unet, noise, model.scheduler, config.steps, eta=config.eta, generator=g,
                       snapshots=snapshots, progress=progress)


def _langevin(model, config, noise, g, snapshots, progress):
    return annealed_langevin(model.unet, noise, sigmas_of(model.scheduler), config.langevin_steps,
                             config.langevin_eps, denoise=config.langevin_denoise, generator=g, snapshots=snapshots,
                             progress=progress)


def _pc(model, config, noise, g, snapshots, progress):
    return pc_sample(model.unet, noise, model.scheduler, config.steps, config.corrector_steps, config.snr,
                     generator=g, snapshots=snapshots, progress=progress)


def _dpm(model, config, noise, g, snapshots, progress):
    return dpm_sample(model.unet, noise, model.scheduler, config.steps, snapshots=snapshots, progress=progress)


def _dpm_sde(model, config, noise, g, snapshots, progress):
    return dpm_sample(model.unet, noise, model.scheduler, config.steps, snapshots=snapshots, progress=progress,
                      stochastic=True, generator=g)


SAMPLER_FUNCTIONS = {"ddpm": _ddpm, "ddim": _ddim, "langevin": _langevin, "pc": _pc, "dpm": _dpm,
                     "dpm-sde": _dpm_sde}


def sample(model: LoadedModel, config: DenoiseConfig, noise: torch.Tensor, snapshots: int = 2,
           progress: ProgressFn | None = None, generator_seed: int | None = None) -> Trajectory:
    """Run the configured sampler on ``noise`` (a batch of x_T)."""
    g = torch.Generator().manual_seed(config.seed + 1 if generator_seed is None else generator_seed)
    with autocast_for(noise.device, config.bf16):
        return SAMPLER_FUNCTIONS[config.sampler](model, config, noise, g, snapshots, progress)


def initial_noise(model: LoadedModel, n: int, seed: int, device) -> torch.Tensor:
    """x_T: N(0, I) for DDPM; N(0, σ_1² I) for a score model (its largest noise level)."""
    x = randn((n, model.channels, model.size, model.size), seed, device)
    if model.kind == "score":
        x = x * sigmas_of(model.scheduler)[0]
    return x


def load_for(config: DenoiseConfig) -> LoadedModel:
    config.validate()
    model = load_diffusion(config.model, device=resolve_device(config.device))
    config.check_model(model.kind)
    return model


def levels(model: LoadedModel) -> int | None:
    """The noise levels of a score model (None for a DDPM)."""
    return model.scheduler.config.num_train_timesteps if model.kind == "score" else None


def run_denoise(config: DenoiseConfig, progress: ProgressFn | None = None,
                model: LoadedModel | None = None) -> DenoiseResult:
    """The denoising-trajectory grid for ``config.num_images`` images."""
    model = model or load_for(config)
    config.validate()
    config.check_model(model.kind)
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


def sample_many(model: LoadedModel, config: DenoiseConfig, n: int,
                progress: ProgressFn | None = None) -> torch.Tensor:
    """``n`` samples in batches (seeded per batch), for metrics; returns [-1, 1] images on the CPU."""
    out, done = [], 0
    batches = (n + config.batch_size - 1) // config.batch_size
    for b in range(batches):
        size = min(config.batch_size, n - done)
        noise = initial_noise(model, size, config.seed * 7919 + b, model.device)
        traj = sample(model, config, noise, snapshots=2, progress=part(progress, b, batches, f"Sampling {n} images"),
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


def _with_steps(config: DenoiseConfig, model: LoadedModel, total: int) -> DenoiseConfig:
    if config.sampler == "langevin":
        return replace(config, langevin_steps=max(1, total // levels(model)))
    return replace(config, steps=total)


def run_step_sweep(config: SweepConfig, classifier: str | None = None,
                   progress: ProgressFn | None = None) -> SweepResult:
    """The seed's comparison of T = 10, 100, 1000: one grid and one quality measure per T.

    For a score model T is the total number of Langevin steps (T / levels per level).
    """
    from lab.experiments.denoise.quality import trained_on
    from lab.metrics import DOMAIN_CLASSIFIERS
    from lab.metrics.quality import sample_quality

    model = load_for(config)
    classifier = classifier or DOMAIN_CLASSIFIERS.get(trained_on(model) or "mnist")
    counts = config.step_counts
    result = SweepResult(list(counts), [])
    for k, total in enumerate(counts):
        cfg = _with_steps(config, model, int(total))
        sub = part(progress, k, len(counts), f"T = {total}: {{desc}}")
        run = run_denoise(cfg, progress=sub, model=model)
        result.grids.append(run.grid)
        result.seconds.append(run.seconds)
        samples = run.trajectory.samples
        if config.metric_images > cfg.num_images:
            samples = sample_many(model, replace(cfg, num_images=config.metric_images), config.metric_images,
                                  progress=sub)
        result.quality.append(sample_quality(samples, classifier) if classifier else {"n": len(samples)})
    return result
