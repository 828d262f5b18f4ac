"""What a conditional model is conditioned on (``LabelSpec``), and the per-sample timestep both the networks and
the guidance formulas use. Light enough for either side to import (no diffusers)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lab.errors import LabError

LABEL_KINDS = ("class", "attributes")


@dataclass(frozen=True)
class LabelSpec:
    """What a model is conditioned on: ``class`` (one of ``names``) or ``attributes`` (±1/0 vectors)."""

    kind: str
    names: tuple[str, ...]

    def __post_init__(self):
        if self.kind not in LABEL_KINDS:
            raise LabError(f"Unknown label kind {self.kind!r}: use 'class' or 'attributes'.")
        if len(self.names) < 2 and self.kind == "class":
            raise LabError("A class-conditional model needs at least 2 classes.")

    @property
    def num(self) -> int:
        return len(self.names)

    def null(self, n: int, device=None) -> torch.Tensor:
        """The unconditional label: index K for classes, the all-zero (all unspecified) vector for attributes."""
        if self.kind == "class":
            return torch.full((n,), self.num, dtype=torch.long, device=device)
        return torch.zeros(n, self.num, device=device)

    def row_labels(self, rows: list[int] | None = None) -> torch.Tensor:
        """One label per grid row: class i, or attribute i active (+1) with the others unspecified (0)."""
        rows = list(range(self.num)) if rows is None else rows
        if self.kind == "class":
            return torch.tensor(rows, dtype=torch.long)
        return torch.eye(self.num)[rows]

    def index(self, name) -> int:
        """A row (class or attribute) from its name or its number; unknown ones are a clear error."""
        text = str(name).strip()
        if text in self.names:
            return self.names.index(text)
        lower = [n.lower() for n in self.names]
        if text.lower() in lower:
            return lower.index(text.lower())
        if text.lstrip("-").isdigit():
            i = int(text)
            if 0 <= i < self.num:
                return i
        what = "class" if self.kind == "class" else "attribute"
        raise LabError(f"Unknown {what} {text!r}: this model knows {', '.join(self.names)} "
                       f"(or their numbers 0…{self.num - 1}).")

    def parse_rows(self, text: str | None) -> list[int]:
        """'all' (or empty) → every row; otherwise names or numbers separated by commas."""
        if text is None or not str(text).strip() or str(text).strip().lower() == "all":
            return list(range(self.num))
        rows = [self.index(part) for part in str(text).replace(";", ",").split(",") if part.strip()]
        if not rows:
            raise LabError("Give at least one class, or 'all'.")
        return list(dict.fromkeys(rows))

    def check(self, labels: torch.Tensor, allow_null: bool = True) -> torch.Tensor:
        """Validate a batch of labels: class indices in [0, K] (K = null), or vectors of −1/0/+1."""
        labels = torch.as_tensor(labels)
        if self.kind == "class":
            if labels.ndim != 1 or labels.dtype.is_floating_point:
                raise LabError(f"Class labels must be a 1-D tensor of integers, not {tuple(labels.shape)} "
                               f"{labels.dtype}.")
            top = self.num if allow_null else self.num - 1
            if len(labels) and (labels.min() < 0 or labels.max() > top):
                raise LabError(f"Class labels must be between 0 and {self.num - 1}"
                               + (f" ({self.num} = the null label)" if allow_null else "")
                               + f"; got {labels.min().item()} … {labels.max().item()}.")
            return labels.long()
        if labels.ndim != 2 or labels.shape[1] != self.num:
            raise LabError(f"Attribute labels must have shape [N, {self.num}] ({', '.join(self.names)}), "
                           f"not {tuple(labels.shape)}.")
        labels = labels.float()
        if not torch.isin(labels, torch.tensor([-1.0, 0.0, 1.0], device=labels.device)).all():
            raise LabError("Attribute labels must be +1 (present), −1 (absent) or 0 (unspecified).")
        return labels

    def drop(self, labels: torch.Tensor, p: float, generator: torch.Generator,
             p_attribute: float = 0.0) -> torch.Tensor:
        """Classifier-free-guidance label dropout: each label becomes null with probability ``p``;
        for attribute vectors each attribute is also unspecified (0) with probability ``p_attribute``."""
        n = labels.shape[0]
        if p <= 0 and p_attribute <= 0:
            return labels
        u = torch.rand(n, generator=generator, device=generator.device).to(labels.device)
        if self.kind == "class":
            return torch.where(u < p, torch.full_like(labels, self.num), labels)
        keep = (u >= p).float().unsqueeze(1)
        if p_attribute > 0:
            v = torch.rand(labels.shape, generator=generator, device=generator.device).to(labels.device)
            keep = keep * (v >= p_attribute).float()
        return labels * keep

    def log_prob(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """log p(y | x) per sample: log-softmax of the class, or Σ over specified attributes of log σ(±logit)."""
        if self.kind == "class":
            return logits.log_softmax(1).gather(1, labels.long().view(-1, 1)).squeeze(1)
        return (labels.abs() * F.logsigmoid(labels * logits)).sum(1)

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Cross-entropy (classes) or binary cross-entropy over the specified attributes."""
        if self.kind == "class":
            return F.cross_entropy(logits, labels.long())
        mask = labels.abs()
        bce = F.binary_cross_entropy_with_logits(logits, (labels + 1) / 2, reduction="none")
        return (bce * mask).sum() / mask.sum().clamp_min(1)

    def correct(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Per sample: does the classifier agree with every specified part of the label?"""
        if self.kind == "class":
            return logits.argmax(1) == labels.long()
        agree = (torch.sign(logits) == labels) | (labels == 0)
        return agree.all(1)

    def as_config(self) -> dict:
        return {"label_kind": self.kind, "label_names": list(self.names)}


def spec_of(model) -> LabelSpec:
    return LabelSpec(model.config.label_kind, tuple(model.config.label_names))


def per_sample_t(t, x: torch.Tensor) -> torch.Tensor:
    """A timestep (number, 0-d or [N] tensor) as a [N] tensor on x's device."""
    if not torch.is_tensor(t):
        t = torch.tensor(float(t))
    t = t.to(x.device)
    return t.expand(x.shape[0]) if t.ndim == 0 else t
