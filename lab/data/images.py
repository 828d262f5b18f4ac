"""Images a user gives a model (uploads, ``--image`` files): checked against the model's size and channels."""
from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from lab.data.sources import image_to_tensor, open_image, to_standard_mode
from lab.errors import LabError


def check_image(image: Image.Image, size: int, channels: int, fit: bool = False) -> torch.Tensor:
    """An uploaded image as [C, H, W] in [-1, 1] for a model of ``size`` px and ``channels``; LabError
    when its size or mode does not match (unless ``fit``: centre-crop, resize, convert)."""
    if image is None:
        raise LabError("No image was given: upload one, or edit dataset images instead.")
    image = to_standard_mode(image)  # palette, alpha, CMYK, 16-bit → 8-bit L or RGB
    want = "L" if channels == 1 else "RGB"
    if not fit:
        if image.size != (size, size):
            raise LabError(f"The image is {image.size[0]}×{image.size[1]} px, but the model takes {size}×{size}: "
                           "resize it, or tick 'Fit uploads to the model' to centre-crop and resize.")
        have = image.mode
        if have != want:
            raise LabError(f"The image is {'grey' if have == 'L' else 'colour (RGB)'}, but the model is "
                           f"{'grey (1 channel)' if channels == 1 else 'RGB (3 channels)'}: convert it, or tick "
                           "'Fit uploads to the model'.")
    return image_to_tensor(image, size, want).float().div(127.5).sub(1.0)


def images_from_paths(paths, size: int, channels: int, fit: bool = False) -> torch.Tensor:
    """Image files as [N, C, H, W] in [-1, 1] (``check_image`` each); a message names the file that fails."""
    out = []
    for path in paths:
        try:
            out.append(check_image(open_image(path), size, channels, fit))
        except LabError as err:
            name, message = Path(str(path)).name, str(err)
            raise LabError(message if message.startswith(name) else f"{name}: {message}") from None
    return torch.stack(out)
