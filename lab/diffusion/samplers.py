"""Samplers: plain functions of (model, x, schedule).

``model`` is a diffusers ``UNet2DModel`` or any callable ``(x, t) -> tensor`` (conditional and
guided models are wrapped that way). Every sampler can record evenly spaced snapshots of its
trajectory, reports progress and stops between steps when the progress callback raises.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from lab.device import autocast_for
from lab.diffusion.schedules import check_steps, ddim_from, ddim_inverse_from
from lab.errors import LabError
from lab.progress import ProgressFn, part


@dataclass
class Trajectory:
    samples: torch.Tensor                                   # the final images, [-1, 1]
    snapshots: list[torch.Tensor] = field(default_factory=list)  # states from noise (first) to sample (last)
    labels: list[str] = field(default_factory=list)         # what each snapshot is ("t=980", "σ=0.50", ...)


def predict(model, x: torch.Tensor, t) -> torch.Tensor:
    """Call a diffusers model or a plain callable with a per-sample timestep tensor."""
    if not torch.is_tensor(t) or t.ndim == 0:
        t = torch.full((x.shape[0],), float(t) if not torch.is_tensor(t) else t.item(), device=x.device)
    with autocast_for(x.device):
        out = model(x, t)
    out = out.sample if hasattr(out, "sample") else out
    return out.float()


def snapshot_steps(total: int, count: int) -> set[int]:
    """Indices (0 = the start, ``total`` = the end) of ``count`` evenly spaced snapshots."""
    if count < 2:
        return {total}
    return {round(i * total / (count - 1)) for i in range(count)}


class _Recorder:
    def __init__(self, total: int, count: int):
        self.keep = snapshot_steps(total, count)
        self.snapshots: list[torch.Tensor] = []
        self.labels: list[str] = []

    def __call__(self, index: int, x: torch.Tensor, label: str) -> None:
        if index in self.keep:
            self.snapshots.append(x.detach().float().cpu().clamp(-1, 1))
            self.labels.append(label)

    def result(self, x: torch.Tensor) -> Trajectory:
        return Trajectory(x.detach().float().clamp(-1, 1), self.snapshots, self.labels)


@torch.no_grad()
def _run_scheduler(model, x, scheduler, timesteps, step_kwargs, snapshots, progress, desc) -> Trajectory:
    record = _Recorder(len(timesteps), snapshots)
    record(0, x, f"t={int(timesteps[0])}")
    for i, t in enumerate(timesteps):
        eps = predict(model, x, t.to(x.device))
        x = scheduler.step(eps, t, x, **step_kwargs).prev_sample
        record(i + 1, x, f"t={int(timesteps[i + 1])}" if i + 1 < len(timesteps) else "x0")
        if progress is not None:
            progress(i + 1, len(timesteps), desc)
    return record.result(x)


def ddpm_sample(model, x: torch.Tensor, scheduler, num_steps: int = 1000, generator: torch.Generator | None = None,
                snapshots: int = 10, progress: ProgressFn | None = None) -> Trajectory:
    """Ancestral DDPM sampling from noise ``x`` with ``num_steps`` of the scheduler's steps."""
    check_steps(num_steps, scheduler)
    scheduler = scheduler.__class__.from_config(scheduler.config)
    scheduler.set_timesteps(num_steps)
    return _run_scheduler(model, x, scheduler, scheduler.timesteps, {"generator": generator},
                          snapshots, progress, "DDPM sampling")


def _ddim_grid(scheduler, num_steps: int, t0: int | None) -> tuple[int, torch.Tensor]:
    """(steps the DDIM scheduler is set to, descending timesteps used): the full chain, or only
    the timesteps ≤ t0, spaced ≈ t0/num_steps apart."""
    check_steps(num_steps, scheduler)
    total = scheduler.config.num_train_timesteps
    n = num_steps
    if t0 is not None:
        if not 1 <= t0 < total:
            raise LabError(f"t0 must be between 1 and {total - 1}, not {t0}.")
        n = total // max(1, round(t0 / num_steps))
    ddim = ddim_from(scheduler)
    ddim.set_timesteps(n)
    timesteps = ddim.timesteps
    return n, (timesteps if t0 is None else timesteps[timesteps <= t0])


def ddim_timesteps(scheduler, num_steps: int, t0: int | None = None) -> torch.Tensor:
    """The descending timesteps that ``ddim_sample`` visits (and ``ddim_invert`` in reverse)."""
    return _ddim_grid(scheduler, num_steps, t0)[1]


def ddim_chain(scheduler, num_steps: int, t0: int | None = None, inverse: bool = False, clip: bool | None = None):
    """(DDIM scheduler set up for the chain, the timesteps it visits in order): what ``ddim_sample`` and
    ``ddim_invert`` run, for callers that step it themselves (e.g. with gradients)."""
    n, timesteps = _ddim_grid(scheduler, num_steps, t0)
    ddim = ddim_inverse_from(scheduler) if inverse else ddim_from(scheduler, clip)
    ddim.set_timesteps(n)
    return ddim, (timesteps.flip(0) if inverse else timesteps)


def ddim_sample(model, x: torch.Tensor, scheduler, num_steps: int = 50, eta: float = 0.0,
                generator: torch.Generator | None = None, t0: int | None = None, snapshots: int = 10,
                progress: ProgressFn | None = None, clip: bool | None = None) -> Trajectory:
    """DDIM from noise (``t0=None``) or from an inverted latent x_{t0}; η = 0 is deterministic.

    ``clip`` (x̂0 clipped to [-1, 1], and ε re-derived from the clipped x̂0): by default as the scheduler
    says when sampling from noise (it helps an imperfect model), and off when continuing from x_{t0}, so that
    ``ddim_invert`` then ``ddim_sample`` reconstructs. Pass ``clip=False`` for a full-chain round trip.
    """
    if not 0.0 <= eta <= 1.0:
        raise LabError(f"η must be between 0 (deterministic DDIM) and 1 (DDPM-like), not {eta}.")
    if clip is None and t0 is not None:
        clip = False
    ddim, timesteps = ddim_chain(scheduler, num_steps, t0, clip=clip)
    kwargs = {"eta": eta, "generator": generator} if eta > 0 else {"eta": 0.0}
    # ε is re-derived from the clipped x̂0 (as in the DDIM paper's code and guided-diffusion); diffusers'
    # default keeps the raw ε beside the clipped x̂0, and under guidance that pair drifts off the data.
    kwargs["use_clipped_model_output"] = bool(ddim.config.clip_sample)
    return _run_scheduler(model, x, ddim, timesteps, kwargs, snapshots, progress, "DDIM sampling")


def ddim_invert(model, x0: torch.Tensor, scheduler, num_steps: int = 50, t0: int | None = None,
                progress: ProgressFn | None = None) -> torch.Tensor:
    """Deterministic DDIM inversion x_0 → x_{t0} (η = 0). ``ddim_sample(..., t0=t0)`` maps it back."""
    ddim, timesteps = ddim_chain(scheduler, num_steps, t0, inverse=True)
    x = x0
    with torch.no_grad():
        for i, t in enumerate(timesteps):
            eps = predict(model, x, t.to(x.device))
            x = ddim.step(eps, t, x).prev_sample
            if progress is not None:
                progress(i + 1, len(timesteps), "DDIM inversion")
    return x


def ddim_generate(model, latents: torch.Tensor, scheduler, num_steps: int, t0: int | None = None,
                  batch_size: int = 256, progress: ProgressFn | None = None) -> torch.Tensor:
    """x_{t0} → x_0 by deterministic DDIM (η = 0) in batches on the model's device; [-1, 1] images on the CPU.
    From a latent (``t0``) without x̂0 clipping, mirroring ``ddim_invert``; from noise (``t0`` None, the whole
    chain) with the scheduler's own clipping, as a model is usually sampled."""
    first = next(iter(model.parameters()), None) if hasattr(model, "parameters") else None
    device = first.device if first is not None else latents.device
    batches = -(-len(latents) // batch_size)
    out = [ddim_sample(model, latents[b * batch_size:(b + 1) * batch_size].to(device).float(), scheduler, num_steps,
                       eta=0.0, t0=t0, snapshots=1, progress=part(progress, b, batches, "DDIM generation")).samples.cpu()
           for b in range(batches)]
    return torch.cat(out) if out else latents.new_empty((0, *latents.shape[1:])).cpu()


@torch.no_grad()
def annealed_langevin(model, x: torch.Tensor, sigmas: torch.Tensor, steps_per_level: int = 100,
                      step_lr: float = 2e-5, denoise: bool = True, generator: torch.Generator | None = None,
                      snapshots: int = 10, progress: ProgressFn | None = None) -> Trajectory:
    """Annealed Langevin dynamics (Song & Ermon 2019, Alg. 1) for a score model s(x, σ).

    At level i the step size is α_i = step_lr · σ_i² / σ_L²; each step is
    x ← x + α_i/2 · s(x, σ_i) + √α_i · z. With ``denoise`` a last Tweedie step
    x ← x + σ_L² · s(x, σ_L) removes the smallest noise level.
    """
    if steps_per_level < 1 or steps_per_level > 10_000:
        raise LabError(f"Langevin steps per level must be between 1 and 10000, not {steps_per_level}.")
    if not 0 < step_lr < 1:
        raise LabError(f"The Langevin step size ε must be in (0, 1), not {step_lr}.")
    sigmas = sigmas.to(x.device, torch.float32)
    total = len(sigmas) * steps_per_level + int(denoise)
    record = _Recorder(total, snapshots)
    record(0, x, f"sigma={sigmas[0]:.3g}")
    step = 0
    for sigma in sigmas:
        alpha = step_lr * (sigma / sigmas[-1]) ** 2
        for _ in range(steps_per_level):
            noise = torch.randn(x.shape, generator=generator).to(x.device)
            x = x + 0.5 * alpha * predict(model, x, sigma) + alpha.sqrt() * noise
            step += 1
            record(step, x, f"sigma={sigma:.3g}")
            if progress is not None:
                progress(step, total, "Annealed Langevin")
    if denoise:
        x = x + sigmas[-1] ** 2 * predict(model, x, sigmas[-1])
        record(total, x, "denoised")
        if progress is not None:
            progress(total, total, "Annealed Langevin")
    return record.result(x)


@torch.no_grad()
def pc_sample(model, x: torch.Tensor, scheduler, num_steps: int = 500, corrector_steps: int = 1,
              snr: float | None = None, generator: torch.Generator | None = None, snapshots: int = 10,
              progress: ProgressFn | None = None) -> Trajectory:
    """Predictor–corrector sampling of a variance-exploding score model (Song et al. 2021, Alg. 2), with diffusers'
    ``ScoreSdeVeScheduler``: at each of ``num_steps`` noise levels from σ_max down, ``corrector_steps`` Langevin
    corrections (step size from the signal-to-noise ratio ``snr``), then one reverse-diffusion predictor step; the
    last predictor returns its noise-free mean. ``num_steps × (1 + corrector_steps)`` network calls."""
    from diffusers import ScoreSdeVeScheduler

    if not 1 <= num_steps <= 100_000:
        raise LabError(f"Predictor–corrector steps must be between 1 and 100000, not {num_steps}.")
    if not 0 <= corrector_steps <= 100:
        raise LabError(f"Corrector steps per level must be between 0 and 100, not {corrector_steps}.")
    sde = ScoreSdeVeScheduler.from_config(scheduler.config, **({"snr": snr} if snr is not None else {}))
    sde.set_timesteps(num_steps)
    sde.set_sigmas(num_steps)
    total = num_steps * (1 + corrector_steps)
    record = _Recorder(total, snapshots)
    record(0, x, f"sigma={float(sde.sigmas[0]):.3g}")
    done, mean = 0, x
    for i, t in enumerate(sde.timesteps):
        sigma = float(sde.sigmas[i])
        for _ in range(corrector_steps):
            x = sde.step_correct(predict(model, x, sigma), x, generator=generator).prev_sample
            done += 1
            record(done, x, f"sigma={sigma:.3g}")
        out = sde.step_pred(predict(model, x, sigma), t, x, generator=generator)
        x, mean = out.prev_sample, out.prev_sample_mean
        done += 1
        record(done, mean if i == num_steps - 1 else x, f"sigma={sigma:.3g}" if i < num_steps - 1 else "x0")
        if progress is not None:
            progress(done, total, "Predictor-corrector")
    return record.result(mean)



@torch.no_grad()
def dpm_sample(model, x: torch.Tensor, scheduler, num_steps: int = 25, clip: bool = True,
               snapshots: int = 10, progress: ProgressFn | None = None, stochastic: bool = False,
               generator: torch.Generator | None = None) -> Trajectory:
    """The probability-flow ODE of a variance-exploding score model, solved with DPM-Solver++(2M) (Lu et al. 2022)
    on Karras et al.'s σ schedule from the model's σ_max to 0: diffusers' ``EDMDPMSolverMultistepScheduler``,
    deterministic, ``num_steps`` network calls. The score s(x, σ) gives the denoised image D = x + σ² s (Tweedie);
    the scheduler takes it as EDM's raw output F = (D − c_skip x) / c_out, which it maps back to D. ``clip``
    clamps D to [-1, 1] at each step (its thresholding at 1.0, like DDIM's clipped x̂₀). ``stochastic``: the
    reverse SDE instead of the ODE, with SDE-DPM-Solver++(2M) (Lu et al. 2022, §5; k-diffusion's
    ``dpmpp_2m_sde``), fresh noise from ``generator`` at each step — the same calls, and the noise corrects
    errors of the earlier steps as a predictor–corrector's Langevin step does."""
    from diffusers import EDMDPMSolverMultistepScheduler

    if not 1 <= num_steps <= 10_000:
        raise LabError(f"DPM-Solver steps must be between 1 and 10000, not {num_steps}.")
    c = scheduler.config
    dpm = EDMDPMSolverMultistepScheduler(sigma_min=c.sigma_min, sigma_max=c.sigma_max, solver_order=2,
                                         algorithm_type="sde-dpmsolver++" if stochastic else "dpmsolver++",
                                         thresholding=clip, sample_max_value=1.0,
                                         final_sigmas_type="zero")
    dpm.set_timesteps(num_steps, device=x.device)
    sigma_data = dpm.config.sigma_data
    record = _Recorder(num_steps, snapshots)
    record(0, x, f"sigma={float(dpm.sigmas[0]):.3g}")
    for i, t in enumerate(dpm.timesteps):
        sigma = float(dpm.sigmas[i])
        denoised = x + sigma ** 2 * predict(model, x, sigma)
        c_skip = sigma_data ** 2 / (sigma ** 2 + sigma_data ** 2)
        c_out = sigma * sigma_data / (sigma ** 2 + sigma_data ** 2) ** 0.5
        x = dpm.step((denoised - c_skip * x) / c_out, t, x, generator=generator).prev_sample
        record(i + 1, x, f"sigma={float(dpm.sigmas[i + 1]):.3g}" if i < num_steps - 1 else "x0")
        if progress is not None:
            progress(i + 1, num_steps, "SDE-DPM-Solver" if stochastic else "DPM-Solver")
    return record.result(x)
