"""Named datasets at a requested size and channel count, with labels, plus style domains.

>>> from lab.data import load_dataset
>>> ds = load_dataset("mnist", split="test", size=32, channels=1)
>>> ds.images.shape, ds.labels[:5], ds.classes

The names (``DATASETS``, ``STYLES``) come from ``lab.data.registry`` without importing torch; the loaders and
tensors are imported on first use, so the CLI's help and the configs stay quick to import.
"""
from __future__ import annotations

import importlib

from lab.data.registry import DATASETS, STYLES, dataset, dataset_names, register_dataset

_LAZY = {"load_dataset": "lab.data.load", "ImageSet": "lab.data.imageset", "to_uint8": "lab.data.imageset",
         "resize": "lab.data.imageset", "set_channels": "lab.data.imageset", "apply_style": "lab.data.styles"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lab.data' has no attribute {name!r}")


__all__ = ["DATASETS", "STYLES", "dataset", "dataset_names", "register_dataset", *_LAZY]
