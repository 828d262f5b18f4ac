"""Named datasets at a requested size and channel count, with labels, plus style domains.

>>> from lab.data import load_dataset
>>> ds = load_dataset("mnist", split="test", size=32, channels=1)
>>> ds.images.shape, ds.labels[:5], ds.classes
"""
from __future__ import annotations

from pathlib import Path

from lab.data import sources
from lab.data.imageset import ImageSet, resize, set_channels, to_uint8
from lab.data.styles import STYLES, apply_style
from lab.errors import LabError

DATASETS = ["mnist", "usps", "digits", "fashion", "utkface", "celeba", "folder"]
NATIVE_SIZE = {"mnist": 28, "usps": 16, "digits": 8, "fashion": 28, "utkface": 64, "celeba": 64, "folder": 64}
NATIVE_CHANNELS = {"mnist": 1, "usps": 1, "digits": 1, "fashion": 1, "utkface": 3, "celeba": 3, "folder": 3}
MAX_SIZE = 512


def load_dataset(name: str, split: str = "train", size: int | None = None, channels: int | None = None,
                 limit: int | None = None, seed: int = 0, style: str = "plain", style_seed: int = 0,
                 target: str | None = None, path: str | Path | None = None) -> ImageSet:
    """Load a named dataset.

    name: one of DATASETS. split: 'train' or 'test'. size/channels: output resolution and
    channel count (grey ↔ RGB converted). limit: a seeded, class-balanced subset of that many.
    style: one of STYLES, applied at the output size. target: the label for utkface
    (gender/age/race) and celeba (an attribute name). path: the folder for 'folder'.
    """
    if name not in DATASETS:
        raise LabError(f"Unknown dataset {name!r}: choose one of {', '.join(DATASETS)}.")
    if split not in ("train", "test"):
        raise LabError(f"Unknown split {split!r}: use 'train' or 'test'.")
    size = size or NATIVE_SIZE[name]
    channels = channels or NATIVE_CHANNELS[name]
    if not 4 <= size <= MAX_SIZE:
        raise LabError(f"Image size {size} is out of range: use 4 to {MAX_SIZE} pixels.")
    if channels not in (1, 3):
        raise LabError(f"Channels must be 1 (grey) or 3 (RGB), not {channels}.")
    if limit is not None and limit < 1:
        raise LabError(f"limit must be at least 1, not {limit}.")

    if name == "mnist":
        ds = sources.load_mnist(split)
    elif name == "fashion":
        ds = sources.load_fashion(split)
    elif name == "usps":
        ds = sources.load_usps(split)
    elif name == "digits":
        ds = sources.load_digits(split)
    elif name == "utkface":
        ds = sources.load_utkface(split, size, target or "gender")
    elif name == "celeba":
        ds = sources.load_celeba(split, size, limit, target or "Male")
    else:
        if path is None:
            raise LabError("The 'folder' dataset needs a path to a folder of images.")
        ds = sources.load_folder(path, size, channels)

    ds = ds.take(limit, seed=seed)
    images = resize(ds.images, size)
    if style != "plain":
        images = apply_style(images, style, seed=style_seed)
    name_out = ds.name if style == "plain" else f"{ds.name}-{style}"
    return ds.with_images(set_channels(images, channels), name=name_out)


__all__ = ["ImageSet", "load_dataset", "apply_style", "STYLES", "DATASETS", "to_uint8", "resize", "set_channels"]
