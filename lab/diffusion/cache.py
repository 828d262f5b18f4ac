"""The one on-disk cache of what the lab computes from a diffusion model: inverted DDIM latents, translated images.

Entries are safetensors files under ``LAB_CACHE_DIR/<kind>/``, written atomically (a crash leaves no half file),
keyed by the model's :func:`fingerprint`, the settings and the content of the input. A damaged entry is computed
again. Editing (DiffusionCLIP), domain discovery and the batch translation all go through here.
"""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from lab.config import get_settings
from lab.diffusion.samplers import ddim_invert
from lab.progress import ProgressFn, part

log = logging.getLogger(__name__)


def fingerprint(*modules: torch.nn.Module) -> str:
    """A short hash of modules' configurations and every weight: equal for the same model, different after any
    training step."""
    h = hashlib.sha1()
    for module in modules:
        h.update(repr(sorted(dict(getattr(module, "config", {}) or {}).items())).encode())
        for name, tensor in module.state_dict().items():
            h.update(name.encode())
            h.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:20]


def content_key(*parts) -> str:
    """A short hash of settings and tensors (by their values)."""
    h = hashlib.sha1()
    for p in parts:
        if torch.is_tensor(p):
            h.update(str(tuple(p.shape)).encode())
            h.update(p.detach().cpu().contiguous().numpy().tobytes())
        else:
            h.update(repr(p).encode())
        h.update(b"|")
    return h.hexdigest()[:20]


class TensorCache:
    """Named tensors by key under ``<cache dir>/<kind>/``."""

    def __init__(self, kind: str, root: Path | None = None):
        self.folder = (root or get_settings().cache_dir) / kind

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.safetensors"

    def load(self, key: str) -> dict[str, torch.Tensor] | None:
        path = self.path(key)
        if not path.exists():
            return None
        try:
            return load_file(path)
        except Exception as err:  # noqa: BLE001 — a truncated or foreign file: compute again
            log.warning("cache entry %s unreadable (%s); computing it again", path, err)
            return None

    def save(self, key: str, tensors: dict[str, torch.Tensor]) -> Path:
        path = self.path(key)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{id(tensors)}.tmp")
            save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, tmp)
            tmp.replace(path)
        except OSError as err:  # a read-only cache only costs time
            log.warning("could not write the cache entry %s: %s", path, err)
        return path


def invert_cached(unet, scheduler, images: torch.Tensor, t0: int, steps: int, batch_size: int = 64,
                  progress: ProgressFn | None = None, cache_dir: Path | None = None) -> tuple[torch.Tensor, bool]:
    """(x_{t0} of every image by deterministic DDIM inversion in ``steps`` steps, whether it came from the cache).

    Keyed by the UNet's fingerprint, the scheduler, t0, steps, the device type (CUDA and CPU differ in the last
    bits) and the images; the latents come back on the UNet's device."""
    device = next(unet.parameters()).device
    cache = TensorCache("latents", cache_dir)
    key = content_key(fingerprint(unet), dict(scheduler.config), t0, steps, device.type, images)
    found = cache.load(key)
    if found is not None:
        return found["latents"].to(device), True
    batches = -(-len(images) // batch_size)
    out = [ddim_invert(unet, images[i * batch_size:(i + 1) * batch_size].to(device), scheduler, steps, t0=t0,
                       progress=part(progress, i, batches, "DDIM inversion"))
           for i in range(batches)]
    latents = torch.cat(out)
    cache.save(key, {"latents": latents})
    return latents, False
