"""Translate labelled images into a target domain with a saved DiffusionCLIP model, cached on disk batch by batch.

``translate(editor, images)``: DDIM-invert with the editor's base model, generate with its fine-tuned UNet. A
rerun, or a run that shares batches with an earlier one, reads them from the ``translations`` cache
(``lab.diffusion.cache``), keyed by both models' fingerprints, the editing settings and the batch's pixels.
"""
from __future__ import annotations

import time
from pathlib import Path

import torch

from lab.data.imageset import to_uint8
from lab.device import resolve_device
from lab.diffusion.cache import TensorCache, content_key, fingerprint
from lab.errors import LabError
from lab.experiments.edit.saved import edit_with_pair, load_saved_edit
from lab.progress import ProgressFn


def translate(editor: str, images: torch.Tensor, batch_size: int = 64, device=None,
              progress: ProgressFn | None = None, cache_dir: Path | None = None) -> tuple[torch.Tensor, dict]:
    """Translate uint8 images with a saved DiffusionCLIP model (invert with its base model, generate with
    the fine-tuned one), batch by batch through the cache; returns (uint8 images in the editor's channels,
    {"cached_batches", "batches", "seconds", "images_per_s", "editor", "base_model", "t0", "prompts"})."""
    device = resolve_device(device)
    pair = load_saved_edit(editor, device)
    tuned, base, cfg = pair
    x = match_channels(images, tuned.channels)
    if x.shape[-1] != tuned.size:
        raise LabError(f"{editor} edits {tuned.size}-px images, these are {x.shape[-1]} px.")
    cache = TensorCache("translations", cache_dir)
    models = (fingerprint(tuned.unet), fingerprint(base.unet), cfg["t0"], cfg["n_inv_step"], cfg["n_test_step"],
              batch_size, device.type)
    out, cached, started, computed = [], 0, time.perf_counter(), 0
    batches = -(-len(x) // batch_size)
    for b in range(batches):
        chunk = x[b * batch_size:(b + 1) * batch_size]
        key = content_key(*models, chunk)
        found = cache.load(key)
        if found is not None:
            edited, cached = found["images"], cached + 1
        else:
            edited = to_uint8(edit_with_pair(pair, chunk.float().div(127.5).sub(1), batch_size))
            computed += len(chunk)
            cache.save(key, {"images": edited})
        out.append(edited)
        if progress is not None:
            progress(b + 1, batches, f"Translating ({cached} of {b + 1} batches from the cache)")
    seconds = time.perf_counter() - started
    return torch.cat(out), {"cached_batches": cached, "batches": batches, "seconds": round(seconds, 2),
                            "images_per_s": round(computed / seconds, 2) if computed else None,
                            "editor": editor, "base_model": base.source, "t0": cfg["t0"],
                            "prompts": [cfg.get("source"), cfg.get("target")]}


def match_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """uint8 images with ``channels`` channels: grey repeated to RGB, RGB averaged to grey."""
    if images.shape[1] == channels:
        return images
    if channels == 1:
        return images.float().mean(1, keepdim=True).round().to(torch.uint8)
    return images.expand(-1, channels, -1, -1).contiguous()
