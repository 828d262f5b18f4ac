"""Sample quality measured by a classifier of the data domain (digits: classifier-mnist)."""
from __future__ import annotations

import torch

from lab.metrics.classify import class_entropy, confident_fraction, max_entropy, predict_proba
from lab.models.store import load_classifier


def sample_quality(samples: torch.Tensor, classifier: str = "classifier-mnist", threshold: float = 0.9) -> dict:
    """Confident fraction (top-class probability > threshold) and entropy of the predicted-class histogram."""
    net = load_classifier(classifier)
    probs = predict_proba(net, samples)
    k = probs.shape[1]
    return {"n": len(samples), "confident_fraction": confident_fraction(probs, threshold),
            "class_entropy": class_entropy(probs), "max_entropy": max_entropy(k),
            "class_histogram": torch.bincount(probs.argmax(1), minlength=k).tolist()}
