"""Method 4: an unconditional DDPM steered by a noise-aware classifier, ε − s·√(1−ᾱ_t)·∇ log p(y | x_t, t)."""
from __future__ import annotations

from lab.device import resolve_device
from lab.diffusion import guidance
from lab.errors import LabError
from lab.experiments.conditional.methods import Conditioner
from lab.models.conditional import load_noisy_classifier
from lab.models.store import list_models, load_diffusion


def prepare(config) -> Conditioner:
    device = resolve_device(config.device)
    base = load_diffusion(config.model, device=device)
    if base.kind != "ddpm":
        raise LabError(f"Classifier guidance steers an ε-prediction DDPM; {config.model!r} is a {base.kind} model.")
    clf = load_noisy_classifier(config.classifier, device=device)
    check_pair(base, clf, config)
    unet, net, spec, s = base.unet, clf.net, clf.spec, config.scale
    return Conditioner(config.method, s, spec, base.scheduler, base.size, base.channels, device,
                       clf.info.get("data", {}) or base.info.get("data", {}),
                       lambda labels: guidance.classifier_guided(unet, net, labels, s, base.scheduler, spec),
                       f"{config.model} guided by {config.classifier}, s = {s:g}")


def check_pair(base, clf, config) -> None:
    """The classifier reads the DDPM's images (size, channels) at the DDPM's noise levels (same schedule)."""
    size, channels = int(clf.net.config.unet_config["sample_size"]), int(clf.net.config.unet_config["in_channels"])
    if (size, channels) != (base.size, base.channels):
        raise LabError(f"The noisy classifier {config.classifier!r} reads {size} px / {channels} channel(s) but "
                       f"{config.model!r} makes {base.size} px / {base.channels}: pick a matching pair.")
    a, b = clf.scheduler.config, base.scheduler.config
    keys = ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule")
    if any(a.get(k) != b.get(k) for k in keys):
        raise LabError(f"The noisy classifier {config.classifier!r} was trained on another noise schedule than "
                       f"{config.model!r} ({', '.join(f'{k}={a.get(k)}/{b.get(k)}' for k in keys)}).")


def models() -> list[str]:
    return list_models("ddpm")
