"""Method 3: an unconditional denoiser steered by the gradient of its jointly trained classifier head (scale s;
s = 0 is the seed's setting, where the label cannot change the samples)."""
from __future__ import annotations

from lab.diffusion import guidance
from lab.experiments.conditional.methods.common import conditioner, fitting_models, load_fitting

FITS = ("auxclf",)


def prepare(config):
    model = load_fitting(config, FITS)
    net, s = model.net, config.scale
    return conditioner(config, model, lambda labels: guidance.self_guided(net, labels, s, model.scheduler, model.spec),
                       f"self-guidance by its head, s = {s:g}")


def models() -> list[str]:
    return fitting_models(FITS)
