"""The adversarial losses of domain adaptation as loss modules, one per method of
``lab.models.dann_registry.METHODS``.

Each is called as ``loss(f_s, f_t, logits_s, logits_t)`` with the tensors at the GRL's placement (``f``) and the
label network's logits of a source and a target batch, and returns the discriminator's binary cross-entropy
(source = 1, target = 0). What the discriminator sees passes through a gradient reversal layer (λ = ``grl.coeff``),
so the discriminator minimises the loss while everything before the tap maximises it. ``view(f, logits)`` is that
input (the proxy A-distance is measured on it); after each call ``domain_accuracy`` holds the discriminator's
accuracy on the batch.

* ``DomainAdversarialLoss`` — DANN (Ganin et al. 2016): the discriminator sees ``f``.
* ``ConditionalDomainAdversarialLoss`` — CDAN (Long et al. 2018): it sees the multilinear map f ⊗ g of ``f`` and
  the softmax predictions g (detached, as in the authors' code and Transfer-Learning-Library), flattened class-major
  (g₁f₁ … g₁f_d, g₂f₁ …); when d·C exceeds ``MAX_MULTILINEAR`` the randomized map (f R_f) ⊙ (g R_g) / √k with fixed
  Gaussian R_f, R_g (k = ``RANDOMIZED_DIM``), whose inner products equal those of f ⊗ g in expectation. Feature maps
  (a ResNet's layer2/layer3) are averaged over space first. With ``entropy=True`` (CDAN+E) each example's loss is
  weighted by 1 + e^{−H(g)} (confident predictions count more), the weights normalised to mean 1 over the batch.
"""
from __future__ import annotations

import importlib
import math

import torch
import torch.nn.functional as F
from torch import nn

from lab.models.dann import DomainDiscriminator, GradientReversalLayer
from lab.models.dann_registry import METHODS

MAX_MULTILINEAR = 4096     # d·C above this: the randomized multilinear map
RANDOMIZED_DIM = 1024      # its output size


def _bce(d: torch.Tensor, n_source: int, weight: torch.Tensor | None = None) -> tuple[torch.Tensor, float]:
    target = torch.cat([torch.ones(n_source, device=d.device), torch.zeros(len(d) - n_source, device=d.device)])
    accuracy = ((d > 0).float() == target).float().mean().item()
    return F.binary_cross_entropy_with_logits(d, target, weight=weight), accuracy


class DomainAdversarialLoss(nn.Module):
    """DANN's loss, as Transfer-Learning-Library's ``DomainAdversarialLoss``: the discriminator on GRL(f)."""

    def __init__(self, discriminator: nn.Module, coeff: float = 1.0):
        super().__init__()
        self.grl = GradientReversalLayer(coeff)
        self.discriminator = discriminator
        self.domain_accuracy = float("nan")

    @classmethod
    def build(cls, tap_shape: tuple[int, ...], num_classes: int) -> "DomainAdversarialLoss":
        return cls(DomainDiscriminator(tap_shape))

    def view(self, f: torch.Tensor, logits: torch.Tensor | None = None) -> torch.Tensor:
        return f

    def forward(self, f_s, f_t, logits_s=None, logits_t=None) -> torch.Tensor:
        d = self.discriminator(self.grl(torch.cat([f_s, f_t]))).float()
        loss, self.domain_accuracy = _bce(d, len(f_s))
        return loss


def multilinear_map(f: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """f ⊗ g per example, flattened class-major: [N, C·d] with entry (c, j) = g_c f_j."""
    return torch.bmm(g.unsqueeze(2), f.unsqueeze(1)).flatten(1)


class RandomizedMultilinearMap(nn.Module):
    """(f R_f) ⊙ (g R_g) / √k with fixed standard Gaussian R_f [d, k], R_g [C, k] (buffers: saved, moved, not
    trained); E⟨T(f, g), T(f', g')⟩ = ⟨f, f'⟩⟨g, g'⟩, the inner product of the full maps."""

    def __init__(self, features: int, classes: int, dim: int = RANDOMIZED_DIM):
        super().__init__()
        self.dim = dim
        self.register_buffer("rf", torch.randn(features, dim))
        self.register_buffer("rg", torch.randn(classes, dim))

    def forward(self, f: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return (f @ self.rf) * (g @ self.rg) / math.sqrt(self.dim)


class ConditionalDomainAdversarialLoss(nn.Module):
    """CDAN (and CDAN+E with ``entropy``): the discriminator on GRL(f ⊗ g), see the module docstring."""

    def __init__(self, discriminator: nn.Module, mapping: nn.Module | None = None, entropy: bool = False,
                 coeff: float = 1.0):
        super().__init__()
        self.grl = GradientReversalLayer(coeff)
        self.discriminator = discriminator
        self.mapping = mapping                      # None: the full multilinear map
        self.entropy = entropy
        self.domain_accuracy = float("nan")

    @classmethod
    def build(cls, tap_shape: tuple[int, ...], num_classes: int, entropy: bool = False,
              max_multilinear: int = MAX_MULTILINEAR) -> "ConditionalDomainAdversarialLoss":
        features = tap_shape[0]                     # a feature map's channels (it is averaged over space)
        if features * num_classes > max_multilinear:
            mapping, dim = RandomizedMultilinearMap(features, num_classes), RANDOMIZED_DIM
        else:
            mapping, dim = None, features * num_classes
        return cls(DomainDiscriminator((dim,)), mapping, entropy)

    def view(self, f: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        if f.ndim == 4:
            f = f.mean((2, 3))
        g = F.softmax(logits.float(), 1).detach()
        f = f.float()
        return multilinear_map(f, g) if self.mapping is None else self.mapping(f, g)

    def weights(self, logits: torch.Tensor) -> torch.Tensor:
        """1 + e^{−H(g)} per example, normalised to mean 1 (CDAN+E's entropy conditioning)."""
        p = F.softmax(logits.float(), 1).detach()
        h = -(p * torch.log(p.clamp_min(1e-12))).sum(1)
        w = 1.0 + torch.exp(-h)
        return w / w.sum() * len(w)

    def forward(self, f_s, f_t, logits_s, logits_t) -> torch.Tensor:
        logits = torch.cat([logits_s, logits_t])
        d = self.discriminator(self.grl(self.view(torch.cat([f_s, f_t]), logits))).float()
        loss, self.domain_accuracy = _bce(d, len(f_s), self.weights(logits) if self.entropy else None)
        return loss


def build_adversary(method: str, tap_shape: tuple[int, ...], num_classes: int) -> nn.Module | None:
    """The loss module of ``method`` (a key of ``METHODS``) for a tap of ``tap_shape``; None for source only."""
    spec = METHODS[method]
    if spec.loss is None:
        return None
    module, name = spec.loss.split(":")
    return getattr(importlib.import_module(module), name).build(tap_shape, num_classes, **dict(spec.options))
