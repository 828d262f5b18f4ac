"""A user's own image set (uploaded files or a folder on the server) as one unseen domain: the files checked
(``open_image``) and brought to a model's size and channels, with a notice of what was resized."""
from __future__ import annotations

import os
from pathlib import Path

import torch
from PIL import Image

from lab.data.sources import IMAGE_SUFFIXES, image_to_tensor, open_image
from lab.errors import LabError

MAX_UPLOADS = 2000  # uploaded files per request


def images_from_files(files, size: int, channels: int) -> tuple[torch.Tensor, list[str]]:
    """Uploaded files (paths or objects with ``.name``) as uint8 ``[N, C, size, size]`` plus notices."""
    paths = [Path(f) if isinstance(f, (str, os.PathLike)) else Path(f.name) for f in (files or []) if f is not None]
    if not paths:
        raise LabError("No images were uploaded: add image files (PNG, JPEG, ...) of the unseen domain.")
    if len(paths) > MAX_UPLOADS:
        raise LabError(f"{len(paths)} files were uploaded; give at most {MAX_UPLOADS} (or put them in a folder "
                       "under the data folder and choose 'folder').")
    images, sizes, bad, first = [], set(), [], ""
    for path in paths:
        try:
            image = open_image(path)
        except LabError as err:
            bad.append(path.name)
            first = first or str(err)
            continue
        sizes.add(image.size)
        images.append(image_to_tensor(image, size, "L" if channels == 1 else "RGB"))
    if bad:
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise LabError(f"{len(bad)} of {len(paths)} uploaded files cannot be used ({shown}). {first} Upload "
                       f"only image files ({', '.join(sorted(IMAGE_SUFFIXES))}).")
    return torch.stack(images), size_notes(sizes, size, channels)


def size_notes(sizes: set, size: int, channels: int) -> list[str]:
    """A notice when images of other sizes than ``size``×``size`` were center-cropped and resized."""
    other = sorted(s for s in sizes if s != (size, size))
    if not other:
        return []
    shown = ", ".join(f"{w}×{h}" for w, h in other[:4]) + (" ..." if len(other) > 4 else "")
    return [f"Images of size {shown} were center-cropped and resized to the model's {size}×{size} "
            f"({'grey' if channels == 1 else 'RGB'})."]


def folder_sizes(path: str, limit: int = 2000) -> set:
    """The (width, height) of the first ``limit`` image files under ``path`` (read from their headers)."""
    sizes = set()
    for file in sorted(Path(path).expanduser().rglob("*"))[:limit]:
        if file.suffix.lower() in IMAGE_SUFFIXES:
            try:
                with Image.open(file) as im:
                    sizes.add(im.size)
            except Exception:  # noqa: BLE001 — load_dataset reports unreadable files itself
                pass
    return sizes
