"""Conditioning and guidance as ε-callables ``(x, t) -> ε̂``, so ``ddpm_sample``/``ddim_sample`` run them unchanged.

- ``conditional``: ε(x, t, y) — plain label conditioning (label embedding, conditional norm).
- ``classifier_free``: ε̂ = ε(x, t, ∅) + w·(ε(x, t, y) − ε(x, t, ∅)) (Ho & Salimans 2022);
  w = 0 is the unconditional model, w = 1 the conditional one, w > 1 guides harder.
- ``classifier_guided``: ε̂ = ε(x, t) − s·√(1−ᾱ_t)·∇ₓ log p_φ(y | x_t, t) (Dhariwal & Nichol 2021,
  Alg. 2; used for DDPM's ancestral steps as well, as diffusers and most code bases do).
- ``self_guided``: the same with the auxiliary head of an ``auxclf`` model, whose denoiser
  otherwise ignores the label; s = 0 is that model as trained.

The samplers run under ``torch.no_grad``; the guided callables switch gradients back on for x only.
"""
from __future__ import annotations

import torch

from lab.diffusion.scale import check_scale
from lab.errors import LabError
from lab.models.labels import LabelSpec, per_sample_t


def _output(out) -> torch.Tensor:
    return (out.sample if hasattr(out, "sample") else out).float()


def _labels_for(labels: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    if labels.shape[0] != x.shape[0]:
        raise LabError(f"{labels.shape[0]} labels for a batch of {x.shape[0]} images: give one label per image.")
    return labels.to(x.device)


def conditional(model, labels: torch.Tensor):
    """ε(x, t, y) of a conditional model called as ``model(x, t, labels)``."""
    def eps(x, t):
        return _output(model(x, per_sample_t(t, x), _labels_for(labels, x)))
    return eps


def classifier_free(model, labels: torch.Tensor, w: float, spec: LabelSpec):
    """ε(x, ∅) + w·(ε(x, y) − ε(x, ∅)); both branches in one batch (w = 0 or 1 runs one branch only)."""
    w = check_scale(w, "classifier-free guidance weight w")

    def eps(x, t):
        t = per_sample_t(t, x)
        y = _labels_for(labels, x)
        null = spec.null(x.shape[0], x.device)
        if w == 0:
            return _output(model(x, t, null))
        if w == 1:
            return _output(model(x, t, y))
        both = _output(model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([y, null])))
        cond, uncond = both.chunk(2)
        return uncond + w * (cond - uncond)
    return eps


def alpha_bar(scheduler, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """ᾱ_t of the DDPM schedule for a [N] timestep tensor, shaped to broadcast over ``like``."""
    ab = scheduler.alphas_cumprod.to(like.device)[t.long().clamp(0, len(scheduler.alphas_cumprod) - 1)]
    return ab.view(-1, *([1] * (like.ndim - 1))).to(like.dtype)


def log_prob_grad(classifier, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor,
                  spec: LabelSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """(∇ₓ log p(y | x, t), log p(y | x, t)) of a classifier called as ``classifier(x, t) -> logits``."""
    with torch.enable_grad():
        x = x.detach().float().requires_grad_(True)
        logp = spec.log_prob(classifier(x, t).float(), labels)
        (grad,) = torch.autograd.grad(logp.sum(), x)
    return grad, logp.detach()


def classifier_guided(eps_model, classifier, labels: torch.Tensor, scale: float, scheduler, spec: LabelSpec):
    """ε̂ = ε(x, t) − s·√(1−ᾱ_t)·∇ₓ log p(y | x_t, t): an unconditional ε-model steered by a noisy classifier."""
    scale = check_scale(scale, "classifier guidance scale s")

    def eps(x, t):
        t = per_sample_t(t, x)
        e = _output(eps_model(x, t))
        if scale == 0:
            return e
        grad, _ = log_prob_grad(classifier, x, t, _labels_for(labels, x), spec)
        return e - scale * (1 - alpha_bar(scheduler, t, x)).sqrt() * grad
    return eps


def self_guided(model, labels: torch.Tensor, scale: float, scheduler, spec: LabelSpec):
    """Guidance by an ``auxclf`` model's own head: one forward gives ε and the logits, one backward
    through the encoder gives ∇ₓ log p(y | x_t)."""
    scale = check_scale(scale, "auxiliary-classifier guidance scale s")

    def eps(x, t):
        t = per_sample_t(t, x)
        if scale == 0:
            return _output(model(x, t))
        y = _labels_for(labels, x)
        with torch.enable_grad():
            xg = x.detach().float().requires_grad_(True)
            e, logits = model(xg, t, return_logits=True)
            (grad,) = torch.autograd.grad(spec.log_prob(logits.float(), y).sum(), xg)
        return e.detach().float() - scale * (1 - alpha_bar(scheduler, t, x)).sqrt() * grad
    return eps
