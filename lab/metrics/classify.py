"""Classifier-based measures: accuracy, confident fraction, class entropy."""
from __future__ import annotations

import math

import torch


@torch.no_grad()
def predict_proba(net, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Softmax over classes for [-1, 1] images, in batches, on the net's device."""
    net.eval()
    device = next(net.parameters()).device
    out = [torch.softmax(net(images[i:i + batch_size].to(device)).float(), 1).cpu()
           for i in range(0, len(images), batch_size)]
    return torch.cat(out) if out else torch.empty(0)


def accuracy(net, images: torch.Tensor, labels: torch.Tensor) -> float:
    return (predict_proba(net, images).argmax(1) == labels.cpu()).float().mean().item()


def confident_fraction(probs: torch.Tensor, threshold: float = 0.9) -> float:
    """The share of samples whose top class has probability above ``threshold``."""
    return (probs.max(1).values > threshold).float().mean().item()


def class_entropy(probs: torch.Tensor) -> float:
    """Entropy (nats) of the histogram of predicted classes; log(K) when every class is equally frequent."""
    counts = torch.bincount(probs.argmax(1), minlength=probs.shape[1]).float()
    p = counts / counts.sum()
    p = p[p > 0]
    return float(-(p * p.log()).sum()) + 0.0  # no -0.0


def max_entropy(num_classes: int) -> float:
    return math.log(num_classes)
