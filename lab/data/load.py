"""``load_dataset``: a registered dataset at a requested size and channel count, optionally in a style domain."""
from __future__ import annotations

from pathlib import Path

from lab.data.imageset import ImageSet, resize, set_channels
from lab.data.registry import dataset
from lab.data.styles import apply_style
from lab.errors import LabError

MAX_SIZE = 512


def load_dataset(name: str, split: str = "train", size: int | None = None, channels: int | None = None,
                 limit: int | None = None, seed: int = 0, style: str = "plain", style_seed: int = 0,
                 target: str | None = None, path: str | Path | None = None) -> ImageSet:
    """Load a registered dataset (``lab.data.registry``).

    split: 'train' or 'test'. size/channels: output resolution and channel count (grey ↔ RGB converted).
    limit: a seeded, class-balanced subset of that many. style: one of STYLES, applied at the output size.
    target: the label for utkface (gender/age/race) and celeba (an attribute name). path: the folder for 'folder'.
    """
    info = dataset(name)
    if split not in ("train", "test"):
        raise LabError(f"Unknown split {split!r}: use 'train' or 'test'.")
    size = size or info.size
    channels = channels or info.channels
    if not 4 <= size <= MAX_SIZE:
        raise LabError(f"Image size {size} is out of range: use 4 to {MAX_SIZE} pixels.")
    if channels not in (1, 3):
        raise LabError(f"Channels must be 1 (grey) or 3 (RGB), not {channels}.")
    if limit is not None and limit < 1:
        raise LabError(f"limit must be at least 1, not {limit}.")
    ds = info.load(split, size=size, channels=channels, limit=limit, target=target, path=path)
    ds = ds.take(limit, seed=seed)
    images = resize(ds.images, size)
    if style != "plain":
        images = apply_style(images, style, seed=style_seed)
    name_out = ds.name if style == "plain" else f"{ds.name}-{style}"
    return ds.with_images(set_channels(images, channels), name=name_out)
