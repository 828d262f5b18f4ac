"""The one type every model loader returns: a network read from a model folder, with its scheduler and record."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class LoadedModel:
    net: torch.nn.Module            # the UNet2DModel, ConditionalUNet, NoisyClassifier ...
    scheduler: object | None        # its diffusers scheduler (None for networks without one)
    kind: str                       # ddpm | score | conditional | noisy-classifier
    source: str                     # the folder or Hub id it came from
    info: dict = field(default_factory=dict)  # training.json, when there is one

    @property
    def unet(self) -> torch.nn.Module:
        """The denoising network of a diffusion model (the same object as ``net``)."""
        return self.net

    @property
    def _unet_config(self):
        return getattr(self.net, "unet", self.net).config

    @property
    def size(self) -> int:
        size = self._unet_config.sample_size
        return int(size if isinstance(size, int) else size[0])

    @property
    def channels(self) -> int:
        return int(self._unet_config.in_channels)

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    @property
    def spec(self):
        """The label specification of a conditional model or noisy classifier (``lab.models.labels.LabelSpec``)."""
        return self.net.spec

    @property
    def has_null(self) -> bool:
        """A conditional model trained with label dropout, so ε(x, t, ∅) is meaningful (classifier-free guidance)."""
        return float(self.info.get("p_uncond", 0) or 0) > 0 or bool(getattr(self.net, "label_free", False))

    def to(self, device) -> "LoadedModel":
        self.net.to(device)
        return self
