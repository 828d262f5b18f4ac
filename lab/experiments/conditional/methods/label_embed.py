"""Method 1: the label's embedding is added to the time embedding, ε(x, t, y)."""
from __future__ import annotations

from lab.diffusion import guidance
from lab.experiments.conditional.methods.common import conditioner, fitting_models, load_fitting

FITS = ("label-embed",)


def prepare(config):
    model = load_fitting(config, FITS)
    net = model.net
    return conditioner(config, model, lambda labels: guidance.conditional(net, labels), "ε(x, t, y)")


def models() -> list[str]:
    return fitting_models(FITS)
