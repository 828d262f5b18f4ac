"""Method 2: per-class γ/β in the resnet blocks' norms (conditional BatchNorm or GroupNorm), ε(x, t, y)."""
from __future__ import annotations

from lab.diffusion import guidance
from lab.experiments.conditional.methods.common import conditioner, fitting_models, load_fitting

FITS = ("condnorm",)


def prepare(config):
    model = load_fitting(config, FITS)
    net = model.net
    return conditioner(config, model, lambda labels: guidance.conditional(net, labels),
                       f"conditional {net.config.norm} norm")


def models() -> list[str]:
    return fitting_models(FITS)
