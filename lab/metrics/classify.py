"""Classifier-based measures: accuracy, confident fraction, class entropy; and the classifier's outputs and
features of a batch of images (the one path every metric takes to a ConvNet's embeddings)."""
from __future__ import annotations

import math

import torch

from lab.device import autocast_for


def as_model_input(images: torch.Tensor, device, quantize: bool = False) -> torch.Tensor:
    """uint8 images, or [-1, 1] floats, as [-1, 1] floats on ``device``; ``quantize`` rounds floats to 8 bits
    first (as torch-fidelity sees generated images, so feature statistics match ``lab.metrics.fid``)."""
    if images.dtype == torch.uint8:
        return images.to(device, non_blocking=True).float().div_(127.5).sub_(1.0)
    x = images.float()
    if quantize:
        x = x.clamp(-1, 1).add(1).mul(127.5).round().div(127.5).sub(1)
    return x.to(device, non_blocking=True)


def logits_to_labels(logits: torch.Tensor) -> torch.Tensor:
    """Predicted classes: the sign of a single logit (a binary classifier), else the argmax."""
    return (logits.squeeze(1) > 0).long() if logits.shape[1] == 1 else logits.argmax(1)


@torch.no_grad()
def outputs(net, images: torch.Tensor, batch_size: int = 500, features: bool = False,
            quantize: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Logits of a ConvNet for uint8 or [-1, 1] images, in batches, in eval mode (restored afterwards); with
    ``features`` also its embeddings (``ConvNet.embed``): (logits, features)."""
    was, device = net.training, next(net.parameters()).device
    net.eval()
    logits, feats = [], []
    for i in range(0, len(images), batch_size):
        x = as_model_input(images[i:i + batch_size], device, quantize)
        with autocast_for(device):
            if features:
                emb = net.embed(x)
                feats.append(emb.float().cpu())
                logits.append(net.head(emb).float().cpu())
            else:
                logits.append(net(x).float().cpu())
    net.train(was)
    out = torch.cat(logits) if logits else torch.empty(0)
    return (out, torch.cat(feats) if feats else torch.empty(0)) if features else out


def embed(net, images: torch.Tensor, batch_size: int = 500, quantize: bool = False) -> torch.Tensor:
    """The ConvNet's embeddings ``[N, hidden]`` of uint8 or [-1, 1] images."""
    return outputs(net, images, batch_size, features=True, quantize=quantize)[1]


def predict_proba(net, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Softmax over classes for uint8 or [-1, 1] images, in batches, on the net's device."""
    return torch.softmax(outputs(net, images, batch_size), 1)


def accuracy(net, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 500) -> float:
    """Top-1 accuracy (a single logit: its sign) on uint8 or [-1, 1] images."""
    if len(images) == 0:
        return 0.0
    return (logits_to_labels(outputs(net, images, batch_size)) == labels.cpu()).float().mean().item()


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
