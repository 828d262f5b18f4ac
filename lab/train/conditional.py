"""Objectives and recipes of the class-conditional methods, for ``lab.train.loop.fit``.

Loss modules (``loss(model, x0, labels, generator) -> scalar``):
``ConditionalEpsilonLoss`` (label embedding / conditional norm; with label dropout it trains
classifier-free guidance), ``AuxClassifierLoss`` (ε-loss + λ·classification loss of a jointly
trained head), ``NoisyClassifierLoss`` (p(y | x_t, t) on x_t of the DDPM schedule) and
``AttributeClassifierLoss`` (a clean multi-label judge for attribute vectors).

Recipes build the model, optionally warm-start it from an unconditional DDPM, train it with
``fit`` and write a model folder with its card.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from lab.data import ImageSet, load_dataset
from lab.data.sources import CELEBA_SEED_ATTRIBUTES, UTK_TARGETS
from lab.diffusion.schedules import make_ddpm_scheduler, q_sample
from lab.errors import LabError
from lab.models.conditional import save_model
from lab.models.conditional_unet import ConditionalUNet, NoisyClassifier, unet_config_for, unet_kwargs
from lab.models.labels import LabelSpec
from lab.models.warm_start import warm_start
from lab.progress import ProgressFn
from lab.seeding import seed_everything
from lab.train import shard
from lab.train.config import TrainConfig
from lab.train.loop import fit
from lab.train.losses import random_affine
from lab.train.recipes import fit_info

log = logging.getLogger(__name__)

METHOD_NOTES = {
    "label-embed": "the label's embedding is added to the time embedding (diffusers num_class_embeds / "
                   "class_embed_type='identity' + MLP)",
    "condnorm": "the resnet blocks' norms are conditional: per-class Δγ, Δβ on top of the normalisation",
    "auxclf": "the denoiser is unconditional; a classifier head on its bottleneck is trained jointly "
              "(loss = ε-MSE + λ·CE). Sampling can use the label only through the head's gradient "
              "(self-guidance, scale s); s = 0 is the seed's setting",
}


def _timesteps_and_noise(scheduler, x0, generator):
    n, T = x0.shape[0], scheduler.config.num_train_timesteps
    t = shard.randint(0, T, (n,), generator).to(x0.device)
    noise = shard.randn(x0.shape, generator).to(x0.device)
    return t, noise, q_sample(scheduler, x0, noise, t)


class ConditionalEpsilonLoss(nn.Module):
    """‖ε − ε_θ(x_t, t, ỹ)‖² where ỹ is the label, dropped to the null label with probability ``p_uncond``
    (classifier-free guidance training); attribute vectors also lose single attributes with ``p_attribute``."""

    def __init__(self, scheduler, spec: LabelSpec, p_uncond: float = 0.1, p_attribute: float = 0.0):
        super().__init__()
        if not 0 <= p_uncond < 1 or not 0 <= p_attribute < 1:
            raise LabError(f"Label dropout must be in [0, 1) (got p_uncond={p_uncond}, p_attribute={p_attribute}).")
        self.scheduler, self.spec, self.p_uncond, self.p_attribute = scheduler, spec, p_uncond, p_attribute

    def forward(self, model, x0, labels, generator):
        t, noise, xt = _timesteps_and_noise(self.scheduler, x0, generator)
        y = self.spec.drop(labels, self.p_uncond, generator, self.p_attribute)
        return F.mse_loss(model(xt, t, y).sample.float(), noise)


class AuxClassifierLoss(nn.Module):
    """‖ε − ε_θ(x_t, t)‖² + λ·CE(head(bottleneck(x_t, t)), y): one forward gives both."""

    def __init__(self, scheduler, spec: LabelSpec, weight: float = 0.1):
        super().__init__()
        if weight < 0:
            raise LabError(f"The auxiliary loss weight λ must be 0 or more, not {weight}.")
        self.scheduler, self.spec, self.weight = scheduler, spec, weight

    def forward(self, model, x0, labels, generator):
        t, noise, xt = _timesteps_and_noise(self.scheduler, x0, generator)
        eps, logits = model(xt, t, return_logits=True)
        return F.mse_loss(eps.float(), noise) + self.weight * self.spec.loss(logits.float(), labels)


class NoisyClassifierLoss(nn.Module):
    """Classification loss of p_φ(y | x_t, t) on x_t ~ q(x_t | x_0), t uniform — the classifier of
    classifier guidance sees exactly the noise levels the sampler visits."""

    def __init__(self, scheduler, spec: LabelSpec):
        super().__init__()
        self.scheduler, self.spec = scheduler, spec

    def forward(self, model, x0, labels, generator):
        t, _, xt = _timesteps_and_noise(self.scheduler, x0, generator)
        return self.spec.loss(model(xt, t).float(), labels)


class AttributeClassifierLoss(nn.Module):
    """A clean multi-label judge (the lab ConvNet with one logit per attribute): masked BCE, small warps."""

    def __init__(self, spec: LabelSpec, augment: bool = True):
        super().__init__()
        self.spec, self.augment = spec, augment

    def forward(self, model, x, labels, generator):
        if self.augment and model.training:
            x = random_affine(x, generator)
        return self.spec.loss(model(x), labels)


# --- data with labels ---------------------------------------------------------------------------

@dataclass
class LabelledData:
    images: ImageSet
    labels: torch.Tensor      # [N] class indices or [N, A] ±1 attribute vectors
    spec: LabelSpec
    condition_on: str         # "class", a UTKFace target, or "attributes" (CelebA's seed attributes)


def conditional_data(data: str = "mnist", split: str = "train", size: int | None = None,
                     channels: int | None = None, limit: int | None = None, style: str = "plain",
                     path: str | None = None, condition_on: str | None = None, seed: int = 0) -> LabelledData:
    """Images and the labels to condition on: digits/fashion/folder classes; UTKFace gender, age
    bucket or race; CelebA's 10 seed attributes as ±1 vectors (or one attribute as 2 classes)."""
    if data == "utkface":
        target = condition_on or "gender"
        if target not in UTK_TARGETS:
            raise LabError(f"UTKFace can be conditioned on {', '.join(UTK_TARGETS)}, not {target!r}.")
        ds = load_dataset("utkface", split, size=size or 32, channels=channels, limit=limit, seed=seed,
                          style=style, target=target)
        return LabelledData(ds, ds.labels, LabelSpec("class", tuple(ds.classes)), target)
    if data == "celeba":
        target = condition_on or "attributes"
        ds = load_dataset("celeba", split, size=size or 64, channels=channels, limit=limit, seed=seed, style=style,
                          target=None if target == "attributes" else target)
        if target != "attributes":
            return LabelledData(ds, ds.labels, LabelSpec("class", tuple(ds.classes)), target)
        columns = [ds.attribute_names.index(a) for a in CELEBA_SEED_ATTRIBUTES]
        vectors = ds.attributes[:, columns].float() * 2 - 1   # 0/1 → −1/+1
        return LabelledData(ds, vectors, LabelSpec("attributes", tuple(CELEBA_SEED_ATTRIBUTES)), "attributes")
    if condition_on not in (None, "class"):
        raise LabError(f"--condition-on applies to utkface (gender/age/race) and celeba (attributes or one "
                       f"attribute); {data} is conditioned on its classes.")
    ds = load_dataset(data, split, size=size, channels=channels, limit=limit, seed=seed, style=style, path=path)
    return LabelledData(ds, ds.labels, LabelSpec("class", tuple(ds.classes)), "class")


def _summary(d: LabelledData, split: str, style: str) -> dict:
    from lab.train.recipes import data_summary

    return {**data_summary(d.images, split, style), "condition_on": d.condition_on}


def _base_unet(init_from: str | None, d: LabelledData):
    """(UNet config, base UNet or None): the warm-start model's layout, or the lab preset for the data."""
    if not init_from:
        return unet_config_for(d.images.size, d.images.channels), None
    from lab.models.store import load_diffusion

    base = load_diffusion(init_from)
    if base.kind != "ddpm":
        raise LabError(f"--init-from needs an ε-prediction DDPM; {init_from!r} is a {base.kind} model.")
    if (base.size, base.channels) != (d.images.size, d.images.channels):
        raise LabError(f"{init_from!r} makes {base.size} px images with {base.channels} channel(s), the data is "
                       f"{d.images.size} px with {d.images.channels}: pass --size/--channels to match.")
    return unet_kwargs(base.unet), base


def train_conditional(method: str, out: Path, data: str = "mnist", split: str = "train", size: int | None = None,
                      channels: int | None = None, limit: int | None = None, style: str = "plain",
                      path: str | None = None, condition_on: str | None = None, p_uncond: float = 0.0,
                      p_attribute: float = 0.3, norm: str = "batch", aux_weight: float = 0.1,
                      init_from: str | None = None, config: TrainConfig | None = None, resume: bool = True,
                      command: str = "", progress: ProgressFn | None = None) -> Path:
    """Train a class-conditional DDPM (``label-embed`` — with ``p_uncond`` > 0 that is CFG —,
    ``condnorm`` or ``auxclf``) and save it to ``out``."""
    config = config or TrainConfig(steps=3000, lr=2e-4, warmup=100)
    seed_everything(config.seed)
    d = conditional_data(data, split, size, channels, limit, style, path, condition_on)
    unet_config, base = _base_unet(init_from, d)
    model = ConditionalUNet(unet_config, method=method, norm=norm, **d.spec.as_config())
    warm = warm_start(model, base.unet) if base is not None else None
    scheduler = base.scheduler if base is not None else make_ddpm_scheduler()
    if method == "auxclf":
        loss = AuxClassifierLoss(scheduler, d.spec, aux_weight)
    else:
        loss = ConditionalEpsilonLoss(scheduler, d.spec, p_uncond, p_attribute if d.spec.kind == "attributes" else 0)
    result = fit(model, loss, d.images.to_float(), d.labels, config, checkpoint_dir=out / "checkpoint",
                 resume=resume, progress=progress)
    note = METHOD_NOTES[method]
    if method == "condnorm":
        note += f" ({'BatchNorm' if norm == 'batch' else 'GroupNorm'})"
    if method == "label-embed" and p_uncond > 0:
        note += (f"; trained with label dropout p = {p_uncond}, so it serves method 1 (plain conditional, w = 1) "
                 "and method 5 (classifier-free guidance, any w)")
    info = {"kind": "conditional", "method": method, "method_note": note,
            "description": f"A class-conditional DDPM on {d.images.name} ({method}): {note}."
                           + (f" Warm-started from {init_from} and trained {config.steps} steps on CPU-sized "
                              "budgets (a few thousand steps)." if init_from else ""),
            "data": _summary(d, split, style), "labels": {"kind": d.spec.kind, "names": list(d.spec.names)},
            "p_uncond": p_uncond if method != "auxclf" else None, "norm": norm if method == "condnorm" else None,
            "aux_weight": aux_weight if method == "auxclf" else None, "init_from": init_from, "warm_start": warm,
            **fit_info(result, config, command, model)}
    save_model(out, model, scheduler, info, fp16=config.fp16_weights)
    log.info("saved %s", out)
    return out


@torch.no_grad()
def noisy_accuracy(net: NoisyClassifier, scheduler, images: torch.Tensor, labels: torch.Tensor, spec: LabelSpec,
                   timesteps=(0, 250, 500, 750, 999), seed: int = 0, batch_size: int = 500) -> dict:
    """Accuracy of p(y | x_t, t) on x_t of held-out images at a few fixed t."""
    net.eval()
    device = next(net.parameters()).device
    out = {}
    for t in timesteps:
        g = torch.Generator().manual_seed(seed + int(t))
        hits = []
        for i in range(0, len(images), batch_size):
            x0 = images[i:i + batch_size]
            noise = torch.randn(x0.shape, generator=g)
            tt = torch.full((len(x0),), int(t), dtype=torch.long)
            xt = q_sample(scheduler, x0, noise, tt).to(device)
            hits.append(spec.correct(net(xt, tt.to(device)).float().cpu(), labels[i:i + batch_size]))
        out[f"accuracy_t{t}"] = torch.cat(hits).float().mean().item()
    return out


def train_noisy_classifier(out: Path, data: str = "mnist", split: str = "train", size: int | None = None,
                           channels: int | None = None, limit: int | None = None, style: str = "plain",
                           path: str | None = None, condition_on: str | None = None, init_from: str | None = None,
                           config: TrainConfig | None = None, resume: bool = True, command: str = "",
                           progress: ProgressFn | None = None, test_images: int = 2000) -> Path:
    """Train p_φ(y | x_t, t) for classifier guidance and save it (with its accuracy at several t)."""
    config = config or TrainConfig(steps=3000, lr=5e-4, warmup=100, ema_decay=None)
    seed_everything(config.seed)
    d = conditional_data(data, split, size, channels, limit, style, path, condition_on)
    unet_config, base = _base_unet(init_from, d)
    net = NoisyClassifier(unet_config, **d.spec.as_config())
    warm = warm_start(net, base.unet) if base is not None else None
    scheduler = base.scheduler if base is not None else make_ddpm_scheduler()
    result = fit(net, NoisyClassifierLoss(scheduler, d.spec), d.images.to_float(), d.labels, config,
                 checkpoint_dir=out / "checkpoint", resume=resume, progress=progress)
    metrics = {}
    if data != "folder":
        test = conditional_data(data, "test", d.images.size, d.images.channels, test_images, style, path,
                                condition_on if condition_on else None)
        metrics = {**noisy_accuracy(net, scheduler, test.images.to_float(), test.labels, d.spec),
                   "test_count": len(test.images)}
    info = {"kind": "noisy-classifier", "method": "classifier-guidance",
            "method_note": "a noise-aware classifier p(y | x_t, t) (the encoder half of a UNet2DModel with a pooled "
                           "head) trained on x_t of the DDPM schedule; its gradient guides an unconditional DDPM",
            "description": f"A noise-aware classifier of {d.images.name} for classifier guidance"
                           + (f", warm-started from the encoder of {init_from}" if init_from else "") + ".",
            "data": _summary(d, split, style), "labels": {"kind": d.spec.kind, "names": list(d.spec.names)},
            "init_from": init_from, "warm_start": warm, "metrics": metrics,
            **fit_info(result, config, command, net)}
    save_model(out, net, scheduler, info, fp16=config.fp16_weights)
    return out


def train_judge(out: Path, data: str = "mnist", split: str = "train", size: int | None = None,
                channels: int | None = None, limit: int | None = None, style: str = "plain", path: str | None = None,
                condition_on: str | None = None, config: TrainConfig | None = None, resume: bool = True,
                command: str = "", progress: ProgressFn | None = None) -> Path:
    """A clean classifier (the lab ConvNet) of exactly the labels a conditional model uses — the independent
    judge of conditional accuracy (UTKFace age/race, CelebA attributes; digits can use ``train classifier``)."""
    from lab.models.cnn import ConvNet
    from lab.models.store import save_classifier
    from lab.train.losses import ClassifierLoss
    from lab.train.recipes import data_summary

    config = config or TrainConfig(steps=3000, lr=1e-3, warmup=100, ema_decay=None)
    seed_everything(config.seed)
    d = conditional_data(data, split, size, channels, limit, style, path, condition_on)
    net = ConvNet(in_channels=d.images.channels, image_size=d.images.size, num_classes=d.spec.num)
    loss = ClassifierLoss(augment=True) if d.spec.kind == "class" else AttributeClassifierLoss(d.spec)
    result = fit(net, loss, d.images.to_float(), d.labels, config, checkpoint_dir=out / "checkpoint",
                 resume=resume, progress=progress)
    metrics = {}
    if data != "folder":
        test = conditional_data(data, "test", d.images.size, d.images.channels, None, style, path, condition_on)
        net.eval()
        with torch.no_grad():
            x = test.images.to_float()
            logits = torch.cat([net(x[i:i + 500]) for i in range(0, len(x), 500)])
        metrics = {"test_accuracy": d.spec.correct(logits, test.labels).float().mean().item(),
                   "test_count": len(test.images)}
    save_classifier(out, net, {
        "kind": "classifier", "description": f"The lab's ConvNet judging {d.spec.kind} labels of {d.images.name} "
                                             f"({d.condition_on}).",
        "data": {**data_summary(d.images, split, style), "condition_on": d.condition_on, "classes": list(d.spec.names)},
        "labels": {"kind": d.spec.kind, "names": list(d.spec.names)}, "metrics": metrics,
        **fit_info(result, config, command, net)}, fp16=config.fp16_weights)
    return out
