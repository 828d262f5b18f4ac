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


class Translator:
    """A saved DiffusionCLIP model ready to translate: invert with its base model, generate with the fine-tuned
    one, batch by batch through the ``translations`` cache."""

    def __init__(self, editor: str, device=None, cache_dir: Path | None = None):
        self.editor, self.device = editor, resolve_device(device)
        self.pair = load_saved_edit(editor, self.device)
        self.cache = TensorCache("translations", cache_dir)
        tuned, base, cfg = self.pair
        self.size, self.channels = tuned.size, tuned.channels
        self.info = {"editor": editor, "base_model": base.source, "t0": cfg["t0"],
                     "prompts": [cfg.get("source"), cfg.get("target")]}
        self._models = (fingerprint(tuned.unet), fingerprint(base.unet), cfg["t0"], cfg["n_inv_step"],
                        cfg["n_test_step"], self.device.type)

    def batches(self, images: torch.Tensor, batch_size: int = 64, progress: ProgressFn | None = None, skip=None,
                shared: bool = False):
        """Yield (batch index, uint8 translations, whether from the cache) for the batches of uint8 ``images``;
        ``shared``: only this process's share (batch k goes to process k mod N under ``accelerate launch``).
        ``skip(k)`` → True leaves batch k out (e.g. already written)."""
        from lab.train.shard import share

        rank, world = share() if shared else (0, 1)
        x = match_channels(images, self.channels)
        if x.shape[-1] != self.size:
            raise LabError(f"{self.editor} edits {self.size}-px images, these are {x.shape[-1]} px.")
        mine = [b for b in range(-(-len(x) // batch_size)) if b % world == rank]
        for done, b in enumerate(mine):
            if skip is None or not skip(b):
                chunk = x[b * batch_size:(b + 1) * batch_size]
                key = content_key(*self._models, batch_size, chunk)
                found = self.cache.load(key)
                if found is None:
                    edited = to_uint8(edit_with_pair(self.pair, chunk.float().div(127.5).sub(1), batch_size))
                    self.cache.save(key, {"images": edited})
                yield b, (found["images"] if found is not None else edited), found is not None
            if progress is not None:
                progress(done + 1, len(mine), "Translating")


def translate(editor: str, images: torch.Tensor, batch_size: int = 64, device=None,
              progress: ProgressFn | None = None, cache_dir: Path | None = None) -> tuple[torch.Tensor, dict]:
    """Translate uint8 images with a saved DiffusionCLIP model in this process; returns (uint8 images in the
    editor's channels, {"cached_batches", "batches", "seconds", "images_per_s", "editor", "base_model", "t0",
    "prompts"})."""
    translator = Translator(editor, device, cache_dir)
    out, cached, computed, started = [], 0, 0, time.perf_counter()
    for _, edited, hit in translator.batches(images, batch_size, progress):
        out.append(edited)
        cached, computed = cached + hit, computed + (0 if hit else len(edited))
    seconds = time.perf_counter() - started
    return torch.cat(out), {"cached_batches": cached, "batches": len(out), "seconds": round(seconds, 2),
                            "images_per_s": round(computed / seconds, 2) if computed else None, **translator.info}


def match_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """uint8 images with ``channels`` channels: grey repeated to RGB, RGB averaged to grey."""
    if images.shape[1] == channels:
        return images
    if channels == 1:
        return images.float().mean(1, keepdim=True).round().to(torch.uint8)
    return images.expand(-1, channels, -1, -1).contiguous()


def class_folders(classes: list[str]) -> list[str]:
    """One folder name per class, in label order, that ``load_dataset("folder")`` (subfolders sorted by name) reads
    back as the same labels: the class names when they sort in label order, else with a zero-padded index."""
    import re

    clean = [re.sub(r"[^\w.-]+", "-", c).strip("-") or f"class{i}" for i, c in enumerate(classes)]
    if clean == sorted(clean) and len(set(clean)) == len(clean):
        return clean
    width = len(str(len(classes) - 1))
    return [f"{i:0{width}d}-{c}" for i, c in enumerate(clean)]


def translate_split(config, progress: ProgressFn | None = None) -> dict:
    """Translate ``config.split`` of ``config.data`` (a ``TranslateConfig``) into ``config.out``/<class>/<index>.png:
    every image once, batches shared out over the processes of ``accelerate launch``, each file written as soon
    as its batch is done (atomically), so a crashed run resumes where it stopped. The main process writes
    ``translation.json`` (editor, prompts, counts) at the end."""
    import json

    from PIL import Image

    from lab.data import load_dataset
    from lab.train.shard import is_main, share, wait_for_everyone

    config.validate()
    translator = Translator(config.editor, config.device)
    ds = load_dataset(config.data, config.split, size=translator.size, limit=config.limit)
    out = Path(config.out)
    names = class_folders(ds.classes)
    for name in names:
        (out / name).mkdir(parents=True, exist_ok=True)
    width = len(str(len(ds) - 1))
    files = [out / names[int(y)] / f"{i:0{width}d}.png" for i, y in enumerate(ds.labels)]
    b = config.batch_size

    def written(k: int) -> bool:
        return all(f.exists() for f in files[k * b:(k + 1) * b])

    started, computed = time.perf_counter(), 0
    for k, edited, _ in translator.batches(ds.images, b, progress, skip=written, shared=True):
        for file, image in zip(files[k * b:(k + 1) * b], edited):
            array = image.permute(1, 2, 0).squeeze(-1).numpy()
            tmp = file.with_name(f".{file.name}.tmp")
            Image.fromarray(array).save(tmp, format="PNG")
            tmp.replace(file)
        computed += len(edited)
    seconds = time.perf_counter() - started
    wait_for_everyone()
    summary = {**translator.info, "data": config.data, "split": config.split, "images": len(ds),
               "classes": dict(zip(names, ds.classes)), "per_class": {n: int((ds.labels == i).sum())
                                                                      for i, n in enumerate(names)},
               "processes": share()[1], "seconds": round(seconds, 2),
               "images_per_s": round(computed / seconds, 2) if computed else None, "command": config.to_command()}
    if is_main():
        (out / "translation.json").write_text(json.dumps(summary, indent=2))
    return summary
