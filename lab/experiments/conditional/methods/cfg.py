"""Method 5: classifier-free guidance, ε(x, ∅) + w·(ε(x, y) − ε(x, ∅)), of a model trained with label dropout."""
from __future__ import annotations

from lab.diffusion import guidance
from lab.errors import LabError
from lab.experiments.conditional.methods.common import conditioner, fitting_models, load_fitting

FITS = ("label-embed", "condnorm")


def prepare(config):
    model = load_fitting(config, FITS)
    if not model.has_null:
        raise LabError(f"{config.model!r} was trained without label dropout, so it has no unconditional "
                       "branch for classifier-free guidance: train one with `python -m lab train cfg` "
                       "(or use method 1 with it).")
    net, w = model.net, config.scale
    return conditioner(config, model, lambda labels: guidance.classifier_free(net, labels, w, model.spec),
                       f"classifier-free guidance, w = {w:g}")


def models() -> list[str]:
    return fitting_models(FITS, needs_null=True)
