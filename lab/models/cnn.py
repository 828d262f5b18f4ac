"""The small CNN of the seeds: three conv layers (32, 64, 128), each followed by 2×2 max-pooling,
then two fully connected layers. It is the lab's digit classifier (FID features, sample quality),
and the classifier that the batch-adaptation experiment trains.

A diffusers ``ModelMixin``, so it saves and loads with ``save_pretrained``/``from_pretrained``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from torch import nn


class ConvNet(ModelMixin, ConfigMixin):
    @register_to_config
    def __init__(self, in_channels: int = 1, image_size: int = 28, num_classes: int = 10,
                 widths: tuple[int, ...] = (32, 64, 128), hidden: int = 128, dropout: float = 0.3):
        super().__init__()
        layers, c = [], in_channels
        for w in widths:
            layers += [nn.Conv2d(c, w, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            c = w
        self.features = nn.Sequential(*layers)
        side = image_size
        for _ in widths:
            side //= 2
        self.fc1 = nn.Linear(c * side * side, hidden)
        self.drop = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden, num_classes)

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Bring any [-1, 1] batch to this network's channels and size."""
        c, size = self.config.in_channels, self.config.image_size
        if x.shape[1] != c:
            x = x.mean(1, keepdim=True) if c == 1 else x.expand(-1, c, -1, -1)
        if x.shape[-1] != size or x.shape[-2] != size:
            x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        return x

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The ``hidden``-d feature before the last ReLU (used for FID and t-SNE)."""
        return self.fc1(self.features(self.prepare(x)).flatten(1))

    def head(self, features: torch.Tensor) -> torch.Tensor:
        """The logits of ``embed``'s features (what ``forward`` does after ``embed``)."""
        return self.fc2(self.drop(F.relu(features)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))
