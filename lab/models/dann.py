"""DANN networks: a label network whose features can be tapped at any stage, a gradient reversal
layer (GRL) and domain discriminators sized for the tapped features.

Placements of the GRL (the seed's three, plus two inside a ResNet):

- ``none``   — no GRL: the label network alone (source only)
- ``stage1`` — the backbone's output feature vector
- ``stage2`` — after the first dense layer of the label classifier (fc1 → BatchNorm → ReLU)
- ``stage3`` — the label classifier's output (the logits)
- ``layer2`` / ``layer3`` — a ResNet's intermediate feature maps

Backbones: ``lenet`` (LeNet-5 with BatchNorm, for digits on a CPU), ``resnet18`` and ``resnet50``
(torchvision, ImageNet weights when they can be had, else trained from scratch). Both lists are registered in
``lab.models.dann_registry``.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torchvision
from torch import nn

from lab.config import get_settings
from lab.errors import LabError
from lab.models.dann_registry import BACKBONES, PLACEMENTS, WEIGHTS, check_placement

log = logging.getLogger(__name__)

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class GradientReverse(torch.autograd.Function):
    """Identity forward; the gradient times −λ backward (Ganin & Lempitsky, 2015)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, coeff: float) -> torch.Tensor:
        ctx.coeff = coeff
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad * (-ctx.coeff), None


class GradientReversalLayer(nn.Module):
    """The GRL as a module; ``coeff`` (λ) is set by the training loop at every step."""

    def __init__(self, coeff: float = 1.0):
        super().__init__()
        self.coeff = coeff

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return GradientReverse.apply(x, self.coeff)

    def extra_repr(self) -> str:
        return f"coeff={self.coeff}"


# --- backbones -------------------------------------------------------------------------------

class LeNet(nn.Module):
    """LeNet-5's two 5×5 convolutions (32 and 64 channels here) with BatchNorm; output: the flat maps."""

    def __init__(self, in_channels: int = 3, image_size: int = 32):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, 32, 5), nn.BatchNorm2d(32), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 5), nn.BatchNorm2d(64), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Flatten())
        side = ((image_size - 4) // 2 - 4) // 2
        if side < 1:
            raise LabError(f"LeNet needs images of at least 16 pixels, not {image_size}.")
        self.out_features = 64 * side * side

    def forward(self, x: torch.Tensor, taps=()) -> tuple[torch.Tensor, dict]:
        return self.net(x), {}


class ResNetBackbone(nn.Module):
    """A torchvision ResNet without its classifier; ``layer2``/``layer3`` maps can be tapped."""

    def __init__(self, arch: str, state_dict: dict | None = None):
        super().__init__()
        net = getattr(torchvision.models, arch)(weights=None)
        if state_dict is not None:
            net.load_state_dict(state_dict)
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        self.pool = nn.Sequential(net.avgpool, nn.Flatten())
        self.out_features = net.fc.in_features

    def forward(self, x: torch.Tensor, taps=()) -> tuple[torch.Tensor, dict]:
        out = {}
        x = self.layer2(self.layer1(self.stem(x)))
        if "layer2" in taps:
            out["layer2"] = x
        x = self.layer3(x)
        if "layer3" in taps:
            out["layer3"] = x
        return self.pool(self.layer4(x)), out


@dataclass
class Weights:
    state_dict: dict | None
    pretrained: bool
    note: str            # shown with every result: which weights the backbone started from


def imagenet_weights(arch: str, mode: str = "auto") -> Weights:
    """ImageNet weights for ``arch``: from torch's cache, else downloaded when online.

    mode: 'auto' (ImageNet when it can be had, else from scratch), 'imagenet' (an error when it
    cannot be had) or 'scratch'.
    """
    if mode not in WEIGHTS:
        raise LabError(f"Unknown weights choice {mode!r}: use {', '.join(WEIGHTS)}.")
    if mode == "scratch":
        return Weights(None, False, "from scratch (random init; asked for)")
    enum = getattr(torchvision.models, BACKBONES[arch].imagenet).DEFAULT
    cached = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(enum.url))
    if not os.path.exists(cached) and get_settings().offline:
        reason = "offline: ImageNet weights cannot be downloaded"
    else:
        try:
            state = torch.hub.load_state_dict_from_url(enum.url, progress=False, check_hash=True, weights_only=True)
            return Weights(state, True, f"ImageNet weights ({enum})")
        except Exception as err:  # no network, a broken download
            reason = f"ImageNet weights could not be loaded ({type(err).__name__}: {err})"
    if mode == "imagenet":
        raise LabError(f"{reason}. Go online once (they are cached in {torch.hub.get_dir()}), or choose "
                       "'auto'/'scratch' to train from scratch.")
    return Weights(None, False, f"from scratch ({reason})")


# --- the label network with taps ---------------------------------------------------------------

class DANNNet(nn.Module):
    """Backbone → fc1 → BatchNorm → ReLU → fc2 (logits), with features tapped at one placement.

    ``tapped(x)`` returns (logits, backbone features, the tensor at the placement); ``forward``
    returns the logits alone, so the net is an ordinary classifier for evaluation.
    """

    def __init__(self, backbone: str = "lenet", placement: str = "stage1", num_classes: int = 10,
                 in_channels: int = 3, image_size: int = 32, hidden: int = 256, weights: str = "auto"):
        super().__init__()
        check_placement(placement, backbone)
        if backbone == "lenet":
            if weights == "imagenet":
                raise LabError("LeNet has no ImageNet weights: choose auto or scratch, or a ResNet backbone.")
            self.backbone = LeNet(in_channels, image_size)
            self.weights = Weights(None, False, "from scratch (LeNet has no ImageNet weights)")
        else:
            if in_channels != 3:
                raise LabError("The ResNet backbones take RGB images: use 3 channels.")
            self.weights = imagenet_weights(backbone, weights)
            self.backbone = ResNetBackbone(backbone, self.weights.state_dict)
            self.weights.state_dict = None  # do not keep a second copy
        self.arch, self.placement, self.image_size = backbone, placement, image_size
        self.fc1 = nn.Sequential(nn.Linear(self.backbone.out_features, hidden), nn.BatchNorm1d(hidden),
                                 nn.ReLU(inplace=True))
        self.fc2 = nn.Linear(hidden, num_classes)
        stats = (IMAGENET_MEAN, IMAGENET_STD) if self.weights.pretrained else ((0.5,) * 3, (0.5,) * 3)
        # inputs arrive in [-1, 1]; pretrained backbones expect ImageNet's normalisation
        self.register_buffer("mean", (torch.tensor(stats[0][:in_channels]) * 2 - 1).view(1, -1, 1, 1))
        self.register_buffer("std", (torch.tensor(stats[1][:in_channels]) * 2).view(1, -1, 1, 1))

    def named(self, x: torch.Tensor, maps: tuple[str, ...] = ()) -> dict[str, torch.Tensor]:
        """Every tensor a placement can tap: backbone, hidden, logits, and the feature ``maps`` asked for."""
        feature, tapped_maps = self.backbone((x - self.mean) / self.std, maps)
        hidden = self.fc1(feature)
        return {"backbone": feature, "hidden": hidden, "logits": self.fc2(hidden), **tapped_maps}

    def tapped(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        spot = PLACEMENTS[self.placement]
        named = self.named(x, (spot.tap,) if spot.feature_map else ())
        return named["logits"], named["backbone"], None if spot.tap is None else named[spot.tap]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tapped(x)[0]

    @torch.no_grad()
    def tap_shape(self) -> tuple[int, ...]:
        """The shape of one sample's tapped tensor (found with a probe in eval mode)."""
        was = self.training
        self.eval()
        probe = torch.zeros(1, self.mean.shape[1], self.image_size, self.image_size, device=self.mean.device)
        tap = self.tapped(probe)[2]
        self.train(was)
        return tuple(tap.shape[1:])

    def backbone_parameters(self):
        return self.backbone.parameters()

    def head_parameters(self):
        return [*self.fc1.parameters(), *self.fc2.parameters()]


class DomainDiscriminator(nn.Module):
    """Source-vs-target classifier for one placement: an MLP on vectors (Linear-BN-ReLU twice, then
    one logit), preceded by a 3×3 conv and global average pooling on feature maps. The hidden width
    follows the input: between 64 and 1024."""

    def __init__(self, in_shape: tuple[int, ...], hidden: int | None = None):
        super().__init__()
        if len(in_shape) == 3:
            channels = min(in_shape[0], 256)
            self.reduce = nn.Sequential(nn.Conv2d(in_shape[0], channels, 3, padding=1), nn.BatchNorm2d(channels),
                                        nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten())
            dim = channels
        elif len(in_shape) == 1:
            self.reduce, dim = nn.Identity(), in_shape[0]
        else:
            raise ValueError(f"cannot discriminate features of shape {in_shape}")
        hidden = hidden or int(min(1024, max(64, dim)))
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
                                 nn.Linear(hidden, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
                                 nn.Linear(hidden, 1))

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.reduce(f)).squeeze(1)


def build_dann(backbone: str, placement: str, num_classes: int = 10, in_channels: int = 3, image_size: int = 32,
               weights: str = "auto", hidden: int = 256) -> tuple[DANNNet, DomainDiscriminator | None]:
    """The label network and, unless ``placement`` is 'none', a discriminator sized for its tap.

    The discriminator is built after the label network, so a seeded label network starts from the
    same weights whatever the placement.
    """
    net = DANNNet(backbone, placement, num_classes, in_channels, image_size, hidden, weights)
    disc = None if placement == "none" else DomainDiscriminator(net.tap_shape())
    return net, disc
