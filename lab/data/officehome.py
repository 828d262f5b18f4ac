"""Office-Home (Venkateswara et al., 2017): 65 object categories in four domains, from a folder the user has
(it cannot be downloaded automatically). Light at import (the domain names are listed by configs); torch and
torchvision are imported when a domain is read."""
from __future__ import annotations

import zlib
from pathlib import Path

from lab.errors import LabError

OFFICE_HOME_DOMAINS = ("Art", "Clipart", "Product", "Real_World")
DOWNLOAD = "https://www.hemanthdv.org/officeHomeDataset.html"
LAYOUT = "the folder that holds Art/, Clipart/, Product/ and Real_World/"


def officehome_domain(root: str | Path | None, domain: str, size: int):
    """One Office-Home domain as (uint8 images [N, 3, size, size], labels, classes), read with torchvision's
    ImageFolder and kept in the dataset cache; "Real_World" is also found as "Real World" (the official zip)."""
    import torch
    import torchvision

    from lab.data.sources import cached_images, image_to_tensor, open_image

    if not root:
        raise LabError(f"Office-Home is not shipped (it cannot be downloaded automatically): download it from "
                       f"{DOWNLOAD}, unpack it, and give {LAYOUT}.")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise LabError(f"The Office-Home folder {root} does not exist: give {LAYOUT} (download: {DOWNLOAD}).")
    folder = next((root / name for name in (domain, domain.replace("_", " ")) if (root / name).is_dir()), None)
    if folder is None:
        found = sorted(p.name for p in root.iterdir() if p.is_dir())
        raise LabError(f"{root} has no {domain}/ folder (found: {', '.join(found) or 'no folders'}). Give the "
                       f"Office-Home folder that holds Art/, Clipart/, Product/ and Real_World/.")
    try:
        ds = torchvision.datasets.ImageFolder(str(folder))
    except (FileNotFoundError, RuntimeError) as err:
        raise LabError(f"{folder} should hold one folder of images per class ({err}).") from None
    key = f"officehome-{zlib.crc32(str(folder.resolve()).encode()):08x}-{domain}-{size}-{len(ds.samples)}"

    def read() -> torch.Tensor:
        out = torch.empty(len(ds.samples), 3, size, size, dtype=torch.uint8)
        for i, (file, _) in enumerate(ds.samples):
            out[i] = image_to_tensor(open_image(file), size, "RGB")
        return out

    return cached_images(key, read), torch.tensor(ds.targets, dtype=torch.long), list(ds.classes)
