"""The dataset registry: each dataset's name, native size and channels, and where its loader lives.

Light on purpose (no torch): the CLI and the tabs list the names from here, and the loader module is imported
only when a dataset is loaded. A new dataset is one loader function plus one ``register_dataset`` line below.
A loader is ``fn(split, *, size, channels, limit, target, path) -> ImageSet`` (it may ignore what it does not need).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass

from lab.errors import LabError


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    size: int          # native image size (px)
    channels: int      # native channels (1 grey, 3 RGB)
    loader: str        # "module:function"
    description: str
    labelled_by: tuple[str, ...] = ()   # the label kinds `target` may name (utkface: gender/age/race)

    def load(self, split: str, **options):
        module, _, fn = self.loader.partition(":")
        return getattr(importlib.import_module(module), fn)(split, **options)


DATASETS: dict[str, DatasetInfo] = {}


def register_dataset(info: DatasetInfo) -> DatasetInfo:
    DATASETS[info.name] = info
    return info


def dataset(name: str) -> DatasetInfo:
    if name not in DATASETS:
        raise LabError(f"Unknown dataset {name!r}: choose one of {', '.join(DATASETS)}.")
    return DATASETS[name]


def dataset_names(folder: bool = True) -> tuple[str, ...]:
    """Registered names; ``folder=False`` leaves out the user's-folder dataset (it needs a path)."""
    return tuple(n for n in DATASETS if folder or n != "folder")


# style domains (lab.data.styles applies them): any dataset in one of these styles is a target domain
STYLES = ("plain", "sketch", "negative", "bold", "thin", "colored", "blur")

_SOURCES = "lab.data.sources"
for _info in (
    DatasetInfo("mnist", 28, 1, f"{_SOURCES}:load_mnist", "MNIST handwritten digits (torchvision layout)"),
    DatasetInfo("usps", 16, 1, f"{_SOURCES}:load_usps", "USPS handwritten digits"),
    DatasetInfo("digits", 8, 1, f"{_SOURCES}:load_digits", "scikit-learn's 8×8 UCI digits"),
    DatasetInfo("fashion", 28, 1, f"{_SOURCES}:load_fashion", "Fashion-MNIST garments"),
    DatasetInfo("utkface", 64, 3, f"{_SOURCES}:load_utkface", "UTKFace aligned faces",
                ("gender", "age", "race", "gender-age")),
    DatasetInfo("celeba", 64, 3, f"{_SOURCES}:load_celeba", "CelebA faces (torchvision layout)"),
    DatasetInfo("folder", 64, 3, f"{_SOURCES}:load_folder", "a folder of images (one subfolder per class)"),
):
    register_dataset(_info)
