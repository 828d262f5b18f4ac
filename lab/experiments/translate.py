"""Translate labelled images into a target domain with a saved DiffusionCLIP model, cached on disk batch by batch.

``translate(editor, images)``: DDIM-invert with the editor's base model, generate with its fine-tuned UNet. A
rerun, or a run that shares batches with an earlier one, reads them from ``LAB_CACHE_DIR/translations``.
"""
from __future__ import annotations

import hashlib
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from lab.config import get_settings

from lab.device import resolve_device
from lab.data.imageset import to_uint8
from lab.errors import LabError
from lab.experiments.edit import edit_with_pair, load_saved_edit
from lab.progress import ProgressFn
from lab.train.diffusionclip import unet_fingerprint


def translate(editor: str, images: torch.Tensor, batch_size: int = 64, device=None,
              progress: ProgressFn | None = None, cache_dir: Path | None = None) -> tuple[torch.Tensor, dict]:
    """Translate uint8 images with a saved DiffusionCLIP model (invert with its base model, generate with
    the fine-tuned one). Every batch is cached under ``LAB_CACHE_DIR/translations/<key>/``; returns
    (uint8 images in the editor's channels, {"cached_batches", "batches", "seconds", "images_per_s"})."""
    device = resolve_device(device)
    pair = load_saved_edit(editor, device)
    tuned, base, cfg = pair
    x = match_channels(images, tuned.channels)
    if x.shape[-1] != tuned.size:
        raise LabError(f"{editor} edits {tuned.size}-px images, these are {x.shape[-1]} px.")
    h = hashlib.sha1(f"{unet_fingerprint(tuned.unet)}|{unet_fingerprint(base.unet)}|{cfg['t0']}|"
                     f"{cfg['n_inv_step']}|{cfg['n_test_step']}|{batch_size}".encode())
    folder = (cache_dir or get_settings().cache_dir) / "translations" / h.hexdigest()[:20]
    folder.mkdir(parents=True, exist_ok=True)
    out, cached, started, computed = [], 0, time.perf_counter(), 0
    batches = -(-len(x) // batch_size)
    for b in range(batches):
        chunk = x[b * batch_size:(b + 1) * batch_size]
        path = folder / f"{hashlib.sha1(chunk.numpy().tobytes()).hexdigest()[:20]}.safetensors"
        edited = None
        if path.exists():
            try:
                edited, cached = load_file(path)["images"], cached + 1
            except Exception:  # noqa: BLE001 — a truncated cache file: translate again
                edited = None
        if edited is None:
            edited = to_uint8(edit_with_pair(pair, chunk.float().div(127.5).sub(1), batch_size))
            computed += len(chunk)
            tmp = path.with_suffix(".tmp")
            save_file({"images": edited.contiguous()}, tmp)
            tmp.replace(path)
        out.append(edited)
        if progress is not None:
            progress(b + 1, batches, f"Translating ({cached} of {b + 1} batches from the cache)")
    seconds = time.perf_counter() - started
    return torch.cat(out), {"cached_batches": cached, "batches": batches, "seconds": round(seconds, 2),
                            "images_per_s": round(computed / seconds, 2) if computed else None,
                            "editor": editor, "base_model": base.source, "t0": cfg["t0"],
                            "prompts": [cfg.get("source"), cfg.get("target")]}


def match_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    if images.shape[1] == channels:
        return images
    if channels == 1:
        return images.float().mean(1, keepdim=True).round().to(torch.uint8)
    return images.expand(-1, channels, -1, -1).contiguous()
