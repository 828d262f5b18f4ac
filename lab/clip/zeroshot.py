"""Zero-shot classification with a CLIP: style (7 styles) and content (digit, garment, gender) on held-out
images, each class's text embedding the mean over its caption templates (prompt ensembling)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from lab.clip.vocab import DOMAINS, STYLE_TEMPLATES, captions, class_names, content_phrases
from lab.data.styles import STYLES


@torch.no_grad()
def class_embeddings(clip, prompts_per_class: list[list[str]]) -> torch.Tensor:
    """[C, D]: the normalised mean text embedding of each class's prompts."""
    return torch.stack([F.normalize(clip.encode_text(p).mean(0), dim=-1) for p in prompts_per_class])


def style_prompts(domain: str) -> list[list[str]]:
    n = len(class_names(domain))
    return [[c for label in [None, *range(n)] for c in captions(domain, label, s)] for s in STYLES]


def content_prompts(domain: str) -> list[list[str]]:
    generic = len(content_phrases(domain, None))
    return [[t.format(c=c) for s in STYLES for t in STYLE_TEMPLATES[s] for c in content_phrases(domain, k)[generic:]]
            for k in range(len(class_names(domain)))]


@torch.no_grad()
def predict(clip, images: torch.Tensor, classes: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Predicted class index of each [-1, 1] image against class embeddings ``classes``."""
    out = []
    for i in range(0, len(images), batch_size):
        feats = clip.encode_images(images[i:i + batch_size].to(classes.device))
        out.append((feats @ classes.T).argmax(1).cpu())
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)


@torch.no_grad()
def evaluate_zero_shot(clip, sets: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]) -> dict:
    """``sets``: dataset name → (images [-1, 1], content labels, style indices). Returns accuracies per
    dataset and overall for style and for content."""
    rows, total = {}, {"style": [0, 0], "content": [0, 0]}
    for name, (images, labels, styles) in sets.items():
        domain = DOMAINS[name][0]
        style_hat = predict(clip, images, class_embeddings(clip, style_prompts(domain)))
        content_hat = predict(clip, images, class_embeddings(clip, content_prompts(domain)))
        s_ok, c_ok = int((style_hat == styles).sum()), int((content_hat == labels).sum())
        per_style = {s: round(float((style_hat[styles == i] == i).float().mean()), 4)
                     for i, s in enumerate(STYLES) if (styles == i).any()}
        rows[name] = {"n": len(images), "style_accuracy": round(s_ok / len(images), 4),
                      "content_accuracy": round(c_ok / len(images), 4), "style_accuracy_per_style": per_style,
                      "style_chance": round(1 / len(STYLES), 4), "content_chance": round(1 / len(class_names(domain)), 4)}
        total["style"][0] += s_ok
        total["content"][0] += c_ok
        total["style"][1] += len(images)
        total["content"][1] += len(images)
    return {"per_dataset": rows, "style_accuracy": round(total["style"][0] / max(1, total["style"][1]), 4),
            "content_accuracy": round(total["content"][0] / max(1, total["content"][1]), 4)}
