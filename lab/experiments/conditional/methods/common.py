"""What the methods built on a ``ConditionalUNet`` share: loading it, checking that it fits, listing the shipped
ones that fit, and wrapping it as a ``Conditioner``."""
from __future__ import annotations

from lab.device import resolve_device
from lab.errors import LabError
from lab.experiments.conditional.methods import Conditioner, get
from lab.models.conditional import load_conditional
from lab.models.loaded import LoadedModel

# what to train for each kind of ConditionalUNet (``python -m lab train <kind>``)
TRAIN_KIND = {"label-embed": "label-embed or cfg", "condnorm": "condnorm", "auxclf": "auxclf"}


def load_fitting(config, fits: tuple[str, ...]) -> LoadedModel:
    """``config.model`` on ``config.device``; a clear error when it is not a model of one of ``fits``."""
    model = load_conditional(config.model, device=resolve_device(config.device))
    found = model.net.config.method
    if found not in fits:
        raise LabError(f"{config.model!r} is a {found} model; method {get(config.method).label!r} needs a "
                       f"{' / '.join(TRAIN_KIND[m] for m in fits)} model.")
    return model


def fitting_models(fits: tuple[str, ...], needs_null: bool = False) -> list[str]:
    """The shipped conditional models of one of ``fits`` (trained with label dropout, if ``needs_null``)."""
    from lab.config import get_settings
    from lab.models.store import list_models, read_info

    names = []
    for name in list_models("conditional"):
        info = read_info(get_settings().checkpoint_dir / name)
        if info.get("method") in fits and (not needs_null or float(info.get("p_uncond") or 0) > 0):
            names.append(name)
    return names


def conditioner(config, model: LoadedModel, eps_for, what: str) -> Conditioner:
    return Conditioner(config.method, config.scale_used, model.spec, model.scheduler, model.size, model.channels,
                       resolve_device(config.device), model.info.get("data", {}), eps_for, f"{config.model}: {what}")
