"""Load any open_clip model — by architecture name + pretrained tag, by name + local weights file, or
from a model folder (the shipped ``checkpoints/clip-lab``) — through one code path:
``open_clip.create_model_and_transforms``. Folders use open_clip's own ``local-dir:`` layout
(``open_clip_config.json`` + ``open_clip_model.safetensors``), so they open outside the lab too.

The lab's small architecture (``lab-clip-tiny``) is registered with ``open_clip.add_model_config``
on import, so ``open_clip.create_model("lab-clip-tiny", pretrained="…/open_clip_model.safetensors")``
works as well.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import open_clip
import torch
import torch.nn.functional as F

from lab.config import get_settings
from lab.errors import LabError

log = logging.getLogger(__name__)
CONFIG_DIR = Path(__file__).resolve().parent / "configs"
ARCH = "lab-clip-tiny"
DEFAULT_CLIP = "clip-lab"
# the lab architecture's input normalisation (x in [0, 1] → [-1, 1]); folders store it in open_clip_config.json
ARCH_PREPROCESS = {"size": 32, "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "interpolation": "bilinear",
                   "resize_mode": "squash"}
_CACHE: dict = {}


def register_configs() -> None:
    if ARCH not in open_clip.list_models():
        open_clip.add_model_config(CONFIG_DIR)


register_configs()


@dataclass
class ClipSpec:
    model_name: str            # what open_clip.create_model_and_transforms gets
    pretrained: str | None     # a tag ("openai") or a weights file; None for local-dir folders
    folder: Path | None        # a lab/open_clip model folder, when it is one
    label: str                 # how the UI names it


def resolve_clip(name: str, pretrained: str | None = None) -> ClipSpec:
    """'clip-lab' (shipped), a folder, 'ViT-B-32/openai' or ('ViT-B-32', 'openai'), or (arch, weights file)."""
    text = str(name or "").strip()
    if not text:
        raise LabError("No CLIP model was given: use clip-lab (shipped), a folder, or e.g. ViT-B-32 / openai.")
    if len(text) > 1024 or "\x00" in text:
        raise LabError(f"The CLIP name is {len(text)} characters long: use clip-lab (shipped), a folder, or e.g. "
                       "ViT-B-32 / openai.")
    local, shipped = Path(text).expanduser(), get_settings().checkpoint_dir / text
    for folder in ((shipped, local) if len(local.parts) == 1 and not local.is_absolute() else (local, shipped)):
        if folder.is_dir():
            if not (folder / "open_clip_config.json").exists():
                raise LabError(f"{folder} is not an open_clip model folder: it needs open_clip_config.json and "
                               "open_clip_model.safetensors (as `python -m lab train clip` writes them).")
            return ClipSpec(f"local-dir:{folder}", None, folder, text)
    if pretrained is None and "/" in text:
        arch, _, tag = (p.strip() for p in text.partition("/"))
        if arch.replace("/", "-") in open_clip.list_models():
            text, pretrained = arch, tag or None
    arch = text.replace("/", "-")
    if arch not in open_clip.list_models():
        raise LabError(f"Unknown CLIP {text!r}: give the shipped clip-lab, a folder with open_clip_config.json, "
                       "or an open_clip architecture with a tag, e.g. ViT-B-32 / openai.")
    if pretrained and not Path(pretrained).expanduser().is_file():
        tags = open_clip.list_pretrained_tags_by_model(arch)
        if pretrained not in tags:
            raise LabError(f"{arch} has no pretrained tag {pretrained!r} (known: {', '.join(tags) or 'none'}), "
                           "and it is not a weights file either.")
        if get_settings().offline:
            raise LabError(f"{arch} / {pretrained} must be downloaded, but the lab is offline (HF_HUB_OFFLINE=1). "
                           "Use the shipped clip-lab, or a local weights file.")
    if not pretrained:
        raise LabError(f"{arch} without pretrained weights would be a random network: give a tag or a weights file.")
    return ClipSpec(arch, str(pretrained), None, f"{arch} / {pretrained}")


class LabClip(torch.nn.Module):
    """An open_clip model with a differentiable image path for [-1, 1] tensors of any size and channels."""

    def __init__(self, model, tokenizer, spec: ClipSpec, vocabulary: list[str] | None):
        super().__init__()
        self.model, self.tokenizer, self.spec, self.vocabulary = model.eval(), tokenizer, spec, vocabulary
        cfg = getattr(model.visual, "preprocess_cfg", {}) or {}
        size = cfg.get("size", model.visual.image_size)
        self.image_size = int(size if isinstance(size, int) else size[0])
        self.register_buffer("mean", torch.tensor(cfg.get("mean", open_clip.OPENAI_DATASET_MEAN)).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(cfg.get("std", open_clip.OPENAI_DATASET_STD)).view(1, 3, 1, 1))
        for p in self.model.parameters():
            p.requires_grad_(False)

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """[-1, 1] images [N, 1|3, H, W] → CLIP input (RGB, image_size, normalised); differentiable."""
        x = (x.float().clamp(-1, 1) + 1) / 2
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if x.shape[-1] != self.image_size or x.shape[-2] != self.image_size:
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", antialias=True,
                              align_corners=False)
        return (x - self.mean) / self.std

    def encode_images(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.model.encode_image(self.prepare(x)), dim=-1)

    def tokenize(self, texts: list[str]) -> torch.Tensor:
        return self.tokenizer(list(texts)).to(self.mean.device)

    @torch.no_grad()
    def encode_text(self, texts: list[str]) -> torch.Tensor:
        return F.normalize(self.model.encode_text(self.tokenize(texts)), dim=-1)

    def check_prompt(self, text: str, what: str = "prompt") -> str:
        from lab.clip.vocab import check_prompt

        return check_prompt(text, self.vocabulary, what)


def load_clip(name: str = DEFAULT_CLIP, pretrained: str | None = None, device=None) -> LabClip:
    """Any open_clip model (see ``resolve_clip``), frozen, in eval mode; cached per (model, device)."""
    spec = resolve_clip(name, pretrained)
    key = (spec.model_name, spec.pretrained, str(device))
    if key in _CACHE:
        return _CACHE[key]
    try:
        extra = ({"image_mean": ARCH_PREPROCESS["mean"], "image_std": ARCH_PREPROCESS["std"]}
                 if spec.model_name == ARCH else {})
        model, _, _ = open_clip.create_model_and_transforms(spec.model_name, pretrained=spec.pretrained, **extra)
        tokenizer = open_clip.get_tokenizer(spec.model_name)
    except LabError:
        raise
    except Exception as err:  # noqa: BLE001 — corrupt file, missing weights, network
        from lab.models.store import load_failure

        raise load_failure(spec.folder,
                           f"CLIP {spec.label} could not be loaded ({type(err).__name__}: {err}).") from err
    vocabulary = None
    if spec.folder is not None and (spec.folder / "vocabulary.json").exists():
        vocabulary = json.loads((spec.folder / "vocabulary.json").read_text())["words"]
    clip = LabClip(model, tokenizer, spec, vocabulary)
    if device is not None:
        clip.to(device)
    _CACHE[key] = clip
    return clip


def save_clip_folder(folder: Path, model, preprocess: dict, vocabulary: list[str], arch: str = ARCH,
                     fp16: bool = False) -> None:
    """Write open_clip's local-dir layout: open_clip_config.json + open_clip_model.safetensors (+ vocabulary);
    ``fp16``: the floating-point tensors stored in half precision (loaded back into the fp32 model)."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    model_cfg = json.loads((CONFIG_DIR / f"{arch}.json").read_text())
    (folder / "open_clip_config.json").write_text(json.dumps(
        {"model_cfg": model_cfg, "preprocess_cfg": preprocess, "architecture": arch}, indent=2))
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    if fp16:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    save_file(state, folder / "open_clip_model.safetensors")
    (folder / "vocabulary.json").write_text(json.dumps({"words": vocabulary}, indent=1))


def clip_choices() -> list[str]:
    """Shipped CLIP folders, then the suggestion for online users."""
    root = get_settings().checkpoint_dir
    shipped = sorted(p.name for p in root.iterdir() if (p / "open_clip_config.json").exists()) if root.is_dir() else []
    return shipped + ["ViT-B-32/openai"]
