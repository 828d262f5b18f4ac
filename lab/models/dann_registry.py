"""The DANN backbones, GRL placements and adaptation methods, registered once (light: no torch; the CLI and the
tab list them).

A placement names the tensor of the label network the gradient reversal layer takes (``tap``); a new one is one
``Placement`` line below (and, for a new kind of tensor, one entry where ``lab.models.dann.DANNNet`` names it).
A method names the loss module its discriminator trains with (``lab.train.adversarial``); a new one is one
``Method`` line below and its loss module (a ``build(tap_shape, num_classes, **options)`` classmethod).
"""
from __future__ import annotations

from dataclasses import dataclass

from lab.errors import LabError


@dataclass(frozen=True)
class Backbone:
    description: str
    feature_maps: bool = False          # its intermediate maps (layer2, layer3) can be tapped
    imagenet: str | None = None         # torchvision's weights enum (ResNet50_Weights …), None: always from scratch

    def __str__(self) -> str:
        return self.description


@dataclass(frozen=True)
class Placement:
    description: str
    tap: str | None                     # backbone, hidden, logits, or a feature map's name; None: no GRL
    feature_map: bool = False           # taps a backbone's intermediate maps (needs a backbone that has them)

    def __str__(self) -> str:
        return self.description


BACKBONES = {
    "lenet": Backbone("LeNet-5 + BatchNorm (fast on CPU)"),
    "resnet18": Backbone("ResNet-18 (torchvision)", feature_maps=True, imagenet="ResNet18_Weights"),
    "resnet50": Backbone("ResNet-50 (torchvision, the seed's)", feature_maps=True, imagenet="ResNet50_Weights"),
}
PLACEMENTS = {
    "none": Placement("no GRL (source only)", None),
    "stage1": Placement("stage 1: backbone output", "backbone"),
    "stage2": Placement("stage 2: after the first dense layer of the label classifier", "hidden"),
    "stage3": Placement("stage 3: after the label classifier's output (logits)", "logits"),
    "layer2": Placement("ResNet layer2 feature maps", "layer2", feature_map=True),
    "layer3": Placement("ResNet layer3 feature maps", "layer3", feature_map=True),
}


@dataclass(frozen=True)
class Method:
    label: str                          # the row's name in tables
    description: str
    loss: str | None = None             # "module:Class" of its loss module; None: no adversary (source only)
    options: tuple = ()                 # keyword arguments of the loss module's build(), as (name, value) pairs

    def __str__(self) -> str:
        return self.description


METHODS = {
    "none": Method("source only", "no adversary: the label network on the labelled source alone"),
    "dann": Method("DANN", "DANN (Ganin et al. 2016): the discriminator sees the features at the placement",
                   "lab.train.adversarial:DomainAdversarialLoss"),
    "cdan": Method("CDAN", "CDAN (Long et al. 2018): the discriminator sees features ⊗ predictions",
                   "lab.train.adversarial:ConditionalDomainAdversarialLoss"),
    "cdan+e": Method("CDAN+E", "CDAN+E: CDAN with entropy conditioning (confident examples weigh more)",
                     "lab.train.adversarial:ConditionalDomainAdversarialLoss", (("entropy", True),)),
}
WEIGHTS = ("auto", "imagenet", "scratch")   # a ResNet's start: ImageNet when it can be had, required, or none


def check_placement(placement: str, backbone: str) -> None:
    if backbone not in BACKBONES:
        raise LabError(f"Unknown backbone {backbone!r}: choose one of {', '.join(BACKBONES)}.")
    if placement not in PLACEMENTS:
        raise LabError(f"Unknown GRL placement {placement!r}: choose one of {', '.join(PLACEMENTS)}.")
    if PLACEMENTS[placement].feature_map and not BACKBONES[backbone].feature_maps:
        fits = ", ".join(k for k, p in PLACEMENTS.items() if not p.feature_map)
        resnets = " or ".join(k for k, b in BACKBONES.items() if b.feature_maps)
        raise LabError(f"Placement {placement!r} taps a ResNet's feature maps: choose {resnets} "
                       f"(the {backbone} backbone supports {fits}).")


def check_method(method: str) -> None:
    if method not in METHODS:
        raise LabError(f"Unknown adaptation method {method!r}: choose one of {', '.join(METHODS)}.")


def row_name(placement: str, method: str) -> str:
    """A table row's name: 'source only', or the method at the placement ('DANN @ stage3')."""
    if placement == "none" or METHODS[method].loss is None:
        return METHODS["none"].label
    return f"{METHODS[method].label} @ {placement}"
