"""The one container every dataset loader returns."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F


@dataclass
class ImageSet:
    """Images as uint8 ``[N, C, H, W]`` with integer labels ``[N]``.

    ``attributes`` (``[N, A]`` of 0/1, optional) carries multi-label targets such as CelebA's
    attributes or UTKFace's gender/age/race, named by ``attribute_names``.
    """

    name: str
    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    attributes: torch.Tensor | None = None
    attribute_names: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # warnings the user should see (fallback data, ...)

    def __post_init__(self) -> None:
        assert self.images.dtype == torch.uint8 and self.images.ndim == 4, "images must be uint8 [N,C,H,W]"
        assert len(self.labels) == len(self.images), "one label per image"

    def __len__(self) -> int:
        return len(self.images)

    @property
    def channels(self) -> int:
        return self.images.shape[1]

    @property
    def size(self) -> int:
        return self.images.shape[-1]

    def to_float(self) -> torch.Tensor:
        """Images in [-1, 1], the range every model of the lab works in."""
        return self.images.float().div(127.5).sub(1.0)

    def subset(self, index) -> "ImageSet":
        index = torch.as_tensor(index, dtype=torch.long)
        return replace(
            self,
            images=self.images[index],
            labels=self.labels[index],
            attributes=None if self.attributes is None else self.attributes[index],
        )

    def take(self, n: int | None, seed: int = 0, stratified: bool = True) -> "ImageSet":
        """A seeded random subset of ``n`` images (class-balanced when ``stratified``)."""
        if n is None or n >= len(self):
            return self
        g = torch.Generator().manual_seed(seed)
        if not stratified:
            return self.subset(torch.randperm(len(self), generator=g)[:n])
        order = torch.randperm(len(self), generator=g)
        labels = self.labels[order]
        # round-robin over classes in random order keeps the class mix even
        rank = torch.empty_like(order)
        for c in labels.unique():
            where = (labels == c).nonzero().squeeze(1)
            rank[where] = torch.arange(len(where))
        keys = rank * (labels.max() + 1) + labels
        return self.subset(order[torch.argsort(keys, stable=True)[:n]])

    def with_images(self, images: torch.Tensor, name: str | None = None) -> "ImageSet":
        return replace(self, images=images, name=name or self.name)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] float images to uint8."""
    return x.clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)


def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """Resize uint8 ``[N,C,H,W]`` to ``size``×``size`` (antialiased bilinear)."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    out = F.interpolate(images.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return out.round().clamp(0, 255).to(torch.uint8)


def set_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """Grey ↔ RGB for uint8 ``[N,C,H,W]`` (luma weights of ITU-R 601 for RGB → grey)."""
    have = images.shape[1]
    if have == channels:
        return images
    if have == 1 and channels == 3:
        return images.expand(-1, 3, -1, -1).contiguous()
    if have == 3 and channels == 1:
        w = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        return (images.float() * w).sum(1, keepdim=True).round().clamp(0, 255).to(torch.uint8)
    raise ValueError(f"cannot convert {have} channels to {channels}")
