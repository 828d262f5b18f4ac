"""FID as training progresses: ``python -m lab train ddpm|score|gan --fid-every K --fid-n N``.

``FidProbe(reference, ...)`` is an ``evaluate`` for ``fit()`` (and the GAN trainer): it draws ``n`` samples
from the model being trained with a fast sampler of its kind and returns their FID against ``n`` real test
images on the lab classifier's features; every value lands, with its step, in ``training.json``
(``fid_curve``), the model card and the Denoising tab's curve.
"""
from __future__ import annotations

from typing import Callable

import torch

from lab.errors import LabError
from lab.metrics import DOMAIN_CLASSIFIERS


class FidProbe:
    def __init__(self, reference: str, size: int, channels: int, n: int,
                 sample: Callable[[torch.nn.Module, int], torch.Tensor], sampler: str):
        from lab.data import load_dataset

        if n < 10:
            raise LabError(f"FID during training needs at least 10 samples, not {n}.")
        self.classifier = DOMAIN_CLASSIFIERS.get(reference)
        if self.classifier is None:
            raise LabError(f"No lab classifier judges {reference} images, so FID during training has no features "
                           "here: leave --fid-every out.")
        self.real = load_dataset(reference, "test", size=size, channels=channels).take(n, seed=0,
                                                                                     stratified=False).to_float()
        self.n, self.sample, self.sampler = n, sample, sampler

    def __call__(self, model) -> dict:
        from lab.metrics.fid import fid_kid

        samples = self.sample(model, self.n)
        return {"fid": round(fid_kid(samples, self.real, "classifier", self.classifier, kid=False).fid, 3)}

    def describe(self) -> dict:
        return {"n": self.n, "features": f"classifier ({self.classifier})", "sampler": self.sampler}


def diffusion_sampler(kind: str, scheduler) -> tuple[Callable, str]:
    """(sample(model, n), description): DDIM 25 steps for a DDPM, DPM-Solver 25 steps for a score model — fast
    enough to run at every checkpoint, seeded the same each time so the curve compares like with
    like."""
    from lab.diffusion.samplers import ddim_sample, dpm_sample
    from lab.diffusion.schedules import sigmas_of

    def sample(model, n):
        device = next(model.parameters()).device
        x = torch.randn(n, model.config.in_channels, model.config.sample_size, model.config.sample_size,
                        generator=torch.Generator().manual_seed(1234)).to(device)
        g = torch.Generator().manual_seed(4321)
        if kind == "ddpm":
            steps = min(25, scheduler.config.num_train_timesteps)
            return ddim_sample(model, x, scheduler, steps, generator=g, snapshots=1).samples.cpu()
        return dpm_sample(model, x * float(sigmas_of(scheduler)[0]), scheduler, 25, snapshots=1).samples.cpu()

    return sample, ("DDIM 25 steps" if kind == "ddpm" else "DPM-Solver 25 steps")
