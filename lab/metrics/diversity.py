"""Diversity and memorisation of generated samples: pairwise and nearest-neighbour distances.

Distances are Euclidean, either between classifier embeddings (the same 128-d layer FID uses) or
between pixels. Pixel distances are root-mean-square over the pixels of [-1, 1] images,
d(x, y) = ‖x − y‖₂ / √(C·H·W), so they do not depend on the image size (0 = identical, 2 = inverse).
"""
from __future__ import annotations

import torch

from lab.errors import LabError


def embed(images: torch.Tensor, classifier, batch_size: int = 500) -> torch.Tensor:
    """Classifier embeddings ``[N, hidden]`` of [-1, 1] images (``classifier``: a ConvNet, a name or folder)."""
    from lab.metrics.classify import embed as embed_with

    if isinstance(classifier, (str, bytes)) or hasattr(classifier, "__fspath__"):
        from lab.models.store import load_classifier

        classifier = load_classifier(classifier)
    if len(images) == 0:
        return torch.empty(0, classifier.config.hidden)
    return embed_with(classifier, images, batch_size)


def pixels(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] images as vectors scaled so that Euclidean distances are per-pixel RMS distances."""
    x = images.detach().float().reshape(len(images), -1)
    return x / x.shape[1] ** 0.5


def mean_pairwise_distance(features: torch.Tensor) -> float:
    """Mean of ‖f_i − f_j‖ over all pairs i < j (0 for identical samples)."""
    n = len(features)
    if n < 2:
        raise LabError(f"Diversity needs at least 2 samples, not {n}.")
    d = torch.cdist(features.double(), features.double())
    return float(d.sum() / (n * (n - 1)))


def nearest_neighbour_distances(queries: torch.Tensor, references: torch.Tensor,
                                exclude_self: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(distance, index) of each query's nearest reference. ``exclude_self``: queries are the
    references themselves, and each one's own entry is skipped (leave-one-out)."""
    if len(references) < (2 if exclude_self else 1):
        raise LabError("Nearest-neighbour distances need a non-empty reference set.")
    d = torch.cdist(queries.double(), references.double())
    if exclude_self:
        if len(queries) != len(references):
            raise LabError("exclude_self needs the queries to be the references.")
        d.fill_diagonal_(float("inf"))
    dist, index = d.min(1)
    return dist, index


def copy_fraction(nn_distances: torch.Tensor, threshold: float) -> float:
    """The share of samples whose nearest few-shot image is closer than ``threshold`` (strictly)."""
    if len(nn_distances) == 0:
        raise LabError("No samples to judge.")
    return float((nn_distances < threshold).double().mean())


def copy_report(samples: torch.Tensor, fewshot: torch.Tensor, heldout: torch.Tensor | None = None,
                ratio: float = 0.5) -> dict:
    """Are the samples copies of the few-shot set? In pixel space.

    The scale is the median nearest-neighbour distance from *real* target images to the few-shot
    set (held-out images when given, else the few-shot set leave-one-out); a sample is counted as a
    copy when its nearest few-shot image is closer than ``ratio`` × that scale.
    """
    if not 0 < ratio <= 1:
        raise LabError(f"The copy ratio must be in (0, 1], not {ratio}.")
    f = pixels(fewshot)
    if heldout is not None and len(heldout) > 0:
        ref, _ = nearest_neighbour_distances(pixels(heldout), f)
        scale_from = f"held-out real images (n = {len(heldout)})"
    else:
        ref, _ = nearest_neighbour_distances(f, f, exclude_self=True)
        scale_from = f"the few-shot set, leave-one-out (n = {len(fewshot)})"
    scale = float(ref.median())
    dist, index = nearest_neighbour_distances(pixels(samples), f)
    return {"nn_distance_mean": float(dist.mean()), "nn_distance_median": float(dist.median()),
            "real_nn_distance_median": scale, "copy_threshold": ratio * scale, "copy_ratio": ratio,
            "nn_copy_fraction": copy_fraction(dist, ratio * scale), "scale_from": scale_from,
            "n": len(samples), "nearest_index": index.tolist()}


def diversity_report(samples: torch.Tensor, classifier=None) -> dict:
    """Mean pairwise distance in pixels (RMS) and, with a classifier, between its embeddings."""
    out = {"n": len(samples), "diversity_pixels": mean_pairwise_distance(pixels(samples))}
    if classifier is not None:
        out["diversity_features"] = mean_pairwise_distance(embed(samples, classifier))
    return out
