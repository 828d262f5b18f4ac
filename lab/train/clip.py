"""Contrastive training of the lab's own small CLIP (``checkpoints/clip-lab``) with open_clip's ``ClipLoss``.

The corpus: digits (MNIST, USPS), garments (Fashion-MNIST) and faces (UTKFace), each rendered in every
style of ``lab.data.styles`` at its native size and brought to the CLIP's 32 px RGB input; each image is
paired, at every step, with a caption drawn from the templates of its (domain, class, style) cell.
"""
from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import open_clip
import torch
import torch.nn.functional as F
from open_clip.loss import ClipLoss

from lab.clip.model import ARCH, ARCH_PREPROCESS, LabClip, load_clip, save_clip_folder
from lab.clip.vocab import DOMAINS, captions, class_names, vocabulary
from lab.data import load_dataset, resize, set_channels
from lab.data.styles import STYLES, apply_style
from lab.progress import ProgressFn
from lab.seeding import seed_everything
from lab.train.config import TrainConfig
from lab.train.loop import fit

log = logging.getLogger(__name__)
IMAGE_SIZE = 32
PREPROCESS = ARCH_PREPROCESS
DEFAULT_LIMITS = {"mnist": 2000, "usps": 1000, "fashion": 1000, "utkface": 1500}


def render(name: str, split: str, limit: int | None, seed: int = 0):
    """(images uint8 [N·7, 3, 32, 32], content labels, style indices) of one dataset in every style."""
    native = DOMAINS[name][1]
    ds = load_dataset(name, split, size=native, limit=limit, seed=seed)
    imgs, labels, styles = [], [], []
    for i, style in enumerate(STYLES):
        styled = apply_style(ds.images, style, seed=seed + i) if style != "plain" else ds.images
        imgs.append(set_channels(resize(styled, IMAGE_SIZE), 3))
        labels.append(ds.labels)
        styles.append(torch.full((len(ds),), i, dtype=torch.long))
    return torch.cat(imgs), torch.cat(labels), torch.cat(styles)


def build_corpus(limits: dict[str, int], split: str = "train", seed: int = 0):
    """Images, group ids and the caption table: group g = (domain, class, style) → its caption indices."""
    groups, texts, text_index = {}, [], {}
    images, group_ids = [], []
    for name, limit in limits.items():
        domain = DOMAINS[name][0]
        x, y, s = render(name, split, limit, seed)
        ids = torch.empty(len(x), dtype=torch.long)
        for label in range(len(class_names(domain))):
            for si, style in enumerate(STYLES):
                key = (domain, label, style)
                if key not in groups:
                    caps = captions(domain, label, style)
                    for c in caps:
                        if c not in text_index:
                            text_index[c] = len(texts)
                            texts.append(c)
                    groups[key] = (len(groups), [text_index[c] for c in caps])
                ids[(y == label) & (s == si)] = groups[key][0]
        images.append(x)
        group_ids.append(ids)
    table = [g[1] for g in sorted(groups.values())]
    return torch.cat(images), torch.cat(group_ids), texts, table


def texture_distractors(images: torch.Tensor, generator: torch.Generator, p: float = 0.5) -> torch.Tensor:
    """Overlay, on a random fraction ``p`` of [-1, 1] images, a sinusoidal grating (random period 2.5–8 px,
    orientation, phase, amplitude 0.15–0.6) or Gaussian noise, keeping the caption. The CLIP learns that such
    textures say nothing about style or content — otherwise DiffusionCLIP fine-tuning finds that painting
    stripes is the cheapest way to look like "a sketch"."""
    n, _, h, w = images.shape
    dev = generator.device
    r = torch.rand(n, 6, generator=generator, device=dev).to(images.device)
    yy, xx = torch.meshgrid(torch.arange(h, device=images.device, dtype=images.dtype),
                            torch.arange(w, device=images.device, dtype=images.dtype), indexing="ij")
    period, angle, phase = 2.5 + 5.5 * r[:, 0], torch.pi * r[:, 1], 2 * torch.pi * r[:, 2]
    proj = (xx * torch.cos(angle).view(-1, 1, 1) + yy * torch.sin(angle).view(-1, 1, 1)) * 2 * torch.pi
    grating = torch.sin(proj / period.view(-1, 1, 1) + phase.view(-1, 1, 1)).unsqueeze(1)
    noise = torch.randn(images.shape, generator=generator, device=dev).to(images.device)[:, :1] * 0.5
    texture = torch.where((r[:, 3] < 0.7).view(-1, 1, 1, 1), grating, noise)
    amplitude = (0.15 + 0.45 * r[:, 4]) * (r[:, 5] < p)
    return (images + amplitude.view(-1, 1, 1, 1) * texture).clamp(-1, 1)


def colour_jitter(images: torch.Tensor, generator: torch.Generator, p: float = 0.8) -> torch.Tensor:
    """kornia's ColorJitter (brightness, contrast ±0.25, saturation ±0.4, hue ±0.06) on a random fraction ``p``
    of [-1, 1] images, caption unchanged: a colour cast, a washed-out or darker copy says nothing about style.
    Without it the editor learns that tinting a face is the cheapest way to look like "a sketch"."""
    import kornia.augmentation as K

    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator, device=generator.device))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        jitter = K.ColorJitter(0.25, 0.25, 0.4, 0.06, p=p)
        return jitter(images.add(1).div(2)).mul(2).sub(1)


@dataclass
class Adversarial:
    """PGD on the images during contrastive training (Madry et al. 2018): ``steps`` steps of size ``step`` inside
    a ball of radius ``eps`` ([-1, 1] units) that raise the contrastive loss; the model trains on the clean and the
    perturbed batch. ``norm`` "linf" takes signed-gradient steps in an L∞ ball; "l2" takes normalised-gradient
    steps in an L2 ball per image (the threat model of Santurkar et al. 2019, whose robust models have
    perceptually aligned gradients — what DiffusionCLIP needs from its CLIP)."""
    eps: float = 0.06
    steps: int = 3
    step: float | None = None        # default 2.5 · eps / steps
    norm: str = "linf"

    def __post_init__(self):
        if self.norm not in ("linf", "l2"):
            raise ValueError(f"norm must be 'linf' or 'l2', not {self.norm!r}")

    def _project(self, delta: torch.Tensor) -> torch.Tensor:
        if self.norm == "linf":
            return delta.clamp(-self.eps, self.eps)
        norms = delta.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *[1] * (delta.ndim - 1))
        return delta * (self.eps / norms).clamp(max=1.0)

    def _ascent(self, grad: torch.Tensor) -> torch.Tensor:
        if self.norm == "linf":
            return grad.sign()
        return grad / grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *[1] * (grad.ndim - 1))

    def perturb(self, model, images: torch.Tensor, text_features: torch.Tensor, logit_scale, loss_fn,
                generator: torch.Generator) -> torch.Tensor:
        step = self.step or 2.5 * self.eps / self.steps
        start = torch.rand(images.shape, generator=generator, device=generator.device).to(images.device) * 2 - 1
        # a random start: uniform in the L∞ ball, or of L2 norm ≈ ε/√3 for the L2 ball
        scale = self.eps if self.norm == "linf" else self.eps / images[0].numel() ** 0.5
        delta = self._project(start * scale).requires_grad_(True)
        for _ in range(self.steps):
            feats = F.normalize(model.encode_image((images + delta).clamp(-1, 1)), dim=-1)
            loss = loss_fn(feats, text_features, logit_scale)
            (grad,) = torch.autograd.grad(loss, delta)
            with torch.no_grad():
                delta.copy_(self._project(delta + step * self._ascent(grad)))
        return (images + delta.detach()).clamp(-1, 1)


class CaptionContrastiveLoss(torch.nn.Module):
    """open_clip's ``ClipLoss`` on (image, caption) pairs, a caption drawn per image and step; with
    ``distractors`` > 0 that fraction of the images carries a random texture (``texture_distractors``), with
    ``jitter`` a random colour jitter, and with ``adversarial`` the loss is also taken on PGD perturbations."""

    def __init__(self, tokens: torch.Tensor, table: list[list[int]], distractors: float = 0.0,
                 jitter: float = 0.0, adversarial: Adversarial | None = None):
        super().__init__()
        self.distractors, self.jitter, self.adversarial = distractors, jitter, adversarial
        width = max(len(t) for t in table)
        self.register_buffer("tokens", tokens)
        self.register_buffer("table", torch.tensor([t + [t[0]] * (width - len(t)) for t in table]))
        self.register_buffer("counts", torch.tensor([len(t) for t in table]))
        self.loss = ClipLoss()

    def views(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The augmented [-1, 1] training images of a batch of uint8 ones."""
        images = x.float().div(127.5).sub(1.0)  # the CLIP's own normalisation: mean 0.5, std 0.5
        # a little translation so the model does not fit pixel positions
        shift = torch.randint(-2, 3, (2,), generator=generator, device=generator.device).tolist()
        images = torch.roll(images, shifts=shift, dims=(2, 3))
        if self.jitter > 0:
            images = colour_jitter(images, generator, self.jitter)
        if self.distractors > 0:
            images = texture_distractors(images, generator, self.distractors)
        return images

    def forward(self, model, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        pick = torch.randint(0, 1 << 30, (len(y),), generator=generator, device=generator.device).to(y.device)
        text = self.tokens[self.table[y, pick % self.counts[y]]]
        images = self.views(x, generator)
        image_features, text_features, logit_scale = model(images, text)[:3]
        loss = self.loss(image_features, text_features, logit_scale)
        if self.adversarial is not None and model.training:
            adv = self.adversarial.perturb(model, images, text_features.detach(), logit_scale.detach(), self.loss,
                                           generator)
            adv_features = F.normalize(model.encode_image(adv), dim=-1)
            loss = 0.5 * (loss + self.loss(adv_features, text_features, logit_scale))
        return loss


def heldout_sets(limit: int = 300, seed: int = 1) -> dict:
    """Held-out test images of every dataset in every style, as [-1, 1] floats (for zero-shot accuracy)."""
    out = {}
    for name in DOMAINS:
        try:
            x, y, s = render(name, "test", limit, seed)
        except Exception as err:  # noqa: BLE001 — a dataset missing from LAB_DATA_DIR
            log.warning("zero-shot: %s skipped (%s)", name, err)
            continue
        out[name] = (x.float().div(127.5).sub(1.0), y, s)
    return out


def train_clip(out: Path, config: TrainConfig, limits: dict[str, int] | None = None, eval_limit: int = 300,
               resume: bool = True, command: str = "", progress: ProgressFn | None = None,
               distractors: float = 0.5, jitter: float = 0.0, adversarial: Adversarial | None = None,
               init_from: str | None = None) -> Path:
    """Train ``lab-clip-tiny`` on the styled corpus, measure zero-shot accuracy, save an open_clip folder;
    ``init_from``: start from the weights of a saved lab CLIP (e.g. adversarial fine-tuning of ``clip-lab``)."""
    from lab.clip.zeroshot import evaluate_zero_shot

    limits = dict(limits or DEFAULT_LIMITS)
    seed_everything(config.seed)
    started = time.time()
    images, groups, texts, table = build_corpus(limits, "train", config.seed)
    prep_seconds = time.time() - started
    model, _, _ = open_clip.create_model_and_transforms(ARCH)
    if init_from:
        model.load_state_dict(load_clip(init_from).model.state_dict())
    tokenizer = open_clip.get_tokenizer(ARCH)
    loss = CaptionContrastiveLoss(tokenizer(texts), table, distractors, jitter, adversarial)
    result = fit(model, loss, images, groups, config, checkpoint_dir=out / "checkpoint", resume=resume,
                 progress=progress)
    save_clip_folder(out, model, PREPROCESS, vocabulary(), fp16=config.fp16_weights)
    shutil.rmtree(out / "checkpoint", ignore_errors=True)  # keep the shipped folder small
    clip = load_clip(str(out))
    zero_shot = evaluate_zero_shot(clip, heldout_sets(eval_limit))
    info = {"kind": "clip", "architecture": ARCH, "command": command, "train_config": asdict(config),
            "limits_per_style": limits, "texture_distractors": distractors, "colour_jitter": jitter,
            "adversarial": asdict(adversarial) if adversarial else None, "init_from": init_from,
            "train_images": len(images), "captions": len(texts),
            "steps": result.steps, "wall_seconds": round(result.wall_seconds, 1),
            "data_seconds": round(prep_seconds, 1), "device": result.device, "threads": torch.get_num_threads(),
            "parameters": sum(p.numel() for p in model.parameters()),
            "final_loss": result.losses[-1][1] if result.losses else None, "losses": result.losses,
            "zero_shot": zero_shot, "eval_limit_per_style": eval_limit}
    (out / "training.json").write_text(json.dumps(info, indent=2))
    (out / "README.md").write_text(model_card(out.name, info))
    load_clip.__globals__["_CACHE"].clear()
    return out


def model_card(name: str, info: dict) -> str:
    zs = info["zero_shot"]
    rows = [f"| {d} | {r['n']} | {r['style_accuracy']:.3f} (chance {r['style_chance']:.3f}) | "
            f"{r['content_accuracy']:.3f} (chance {r['content_chance']:.3f}) |" for d, r in zs["per_dataset"].items()]
    per_style = [f"| {d} | " + " | ".join(f"{r['style_accuracy_per_style'].get(s, float('nan')):.2f}" for s in STYLES)
                 + " |" for d, r in zs["per_dataset"].items()]
    lines = [
        "---", "library_name: open_clip", "tags:", "- clip", "- zero-shot-image-classification", "---", "",
        f"# {name}", "",
        f"A small CLIP (open_clip architecture `{info['architecture']}`: ViT 32 px, patch 4, 3 layers × 64; text "
        "transformer 2 layers × 32 with open_clip's BPE tokenizer; 64-d joint space) trained from scratch with "
        "open_clip's `ClipLoss` on the lab's own domains, so that DiffusionCLIP editing works offline. It knows only "
        "the words below.", "",
        "## Data", "",
        "Train splits (read from `LAB_DATA_DIR`), a seeded class-balanced subset per dataset, each image rendered in "
        f"all {len(STYLES)} styles of `lab/data/styles.py` ({', '.join(STYLES)}) at its native size and resized "
        "to 32 px RGB:", "",
        *[f"- {d}: {n} images × {len(STYLES)} styles" for d, n in info["limits_per_style"].items()], "",
        f"{info['train_images']} (image, style) pairs; {info['captions']} distinct captions, one drawn per image "
        "and step from the templates of its (content, style) cell — e.g. \"a pencil sketch of a digit seven\", "
        "\"a photo of a woman's face\", \"a blurry sneaker\" (`lab/clip/vocab.py`).", "",
        "## How it was trained", "", "```bash", info["command"] or "(command not recorded)", "```", "",
        f"- {info['steps']} steps, batch {info['train_config']['batch_size']}, AdamW lr "
        f"{info['train_config']['lr']} (warm-up {info['train_config']['warmup']}, cosine), weight decay "
        f"{info['train_config']['weight_decay']}, seed {info['train_config']['seed']}, ±2 px translations"
        + (f"; {info['texture_distractors']:.0%} of the images overlaid with a random grating or noise, caption "
           "unchanged (`texture_distractors`: DiffusionCLIP then cannot satisfy the CLIP with stripe textures)"
           if info.get("texture_distractors") else "")
        + (f"; colour jitter (kornia, brightness/contrast ±0.25, saturation ±0.4, hue ±0.06) on "
           f"{info['colour_jitter']:.0%} of the images" if info.get("colour_jitter") else "")
        + (f"; adversarial training: every batch also as PGD perturbations "
           f"({'L2' if info['adversarial'].get('norm') == 'l2' else 'L∞'} ε = {info['adversarial']['eps']} in "
           f"[-1, 1] units, {info['adversarial']['steps']} steps), loss averaged over clean and perturbed, so the "
           "image tower's gradients follow what a person sees" if info.get("adversarial") else ""),
        f"- wall time {info['wall_seconds'] / 60:.1f} min training + {info['data_seconds'] / 60:.1f} min rendering "
        f"on {info['device']} ({info['threads']} thread(s)); {info['parameters']:,} parameters; final loss "
        f"{info['final_loss']:.3f}", "",
        "## Zero-shot accuracy on held-out images", "",
        f"Test splits, {info['eval_limit_per_style']} images per dataset × {len(STYLES)} styles; each class's text "
        "embedding is the mean over its caption templates (`lab/clip/zeroshot.py`). Style: 7-way; content: "
        "10 digits, 10 garments, or man/woman.", "",
        "| data | images | style accuracy | content accuracy |", "| --- | --- | --- | --- |", *rows,
        f"| **all** | | **{zs['style_accuracy']:.3f}** | **{zs['content_accuracy']:.3f}** |", "",
        "Style accuracy per style:", "", "| data | " + " | ".join(STYLES) + " |",
        "| --- |" + " --- |" * len(STYLES), *per_style, "",
        *perceptual_section(info.get("perceptual")),
        "## Vocabulary", "", "Prompts may use only these words (the editing tab refuses others):", "",
        ", ".join(f"`{w}`" for w in vocabulary()), "",
        "## Use", "", "```python", "import open_clip",
        f"model, _, preprocess = open_clip.create_model_and_transforms('local-dir:checkpoints/{name}')",
        f"tokenizer = open_clip.get_tokenizer('local-dir:checkpoints/{name}')", "# or in the lab:",
        "from lab.clip import load_clip", f"clip = load_clip('{name}')   # clip.encode_images(x in [-1, 1])",
        "```", ""]
    return "\n".join(lines)


def perceptual_section(d: dict | None) -> list[str]:
    """The card's lines on issue 14's diagnostics of the image gradient (``info["perceptual"]``), if measured."""
    if not d:
        return []
    path = " · ".join(f"α {a}: {c:.3f}" for a, c in d["path_cos"].items())
    return [
        "## Is its image gradient perceptual?", "",
        f"Measured by `{d['command']}` on {d['n']} MNIST test digits, \"{d['source']}\" → \"{d['target']}\", "
        "judged by the independent style and digit judges of `lab/metrics/judges.py`:", "",
        f"- **pixel diagnostic** (Adam on the pixels against the directional CLIP loss, {d['settings']}): style "
        f"judge says sketch for **{d['pixel_style']:.2f}**, digit kept {d['pixel_label']:.2f}, directional cosine "
        f"{d['pixel_cos']:.3f} (true procedural sketches of the same digits: {d['procedural_cos']:.3f})",
        f"- **path cosine** (the directional cosine of x + α (sketch − x)): {path}", "",
        d["verdict"], ""]


__all__ = ["train_clip", "build_corpus", "CaptionContrastiveLoss", "heldout_sets", "LabClip"]
