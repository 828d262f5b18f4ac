"""Epoch-wise training of the lab's ConvNet, evaluated on named test sets after every epoch.

The batch-adaptation experiment trains one such network per (training set, seed). Binary tasks use
one logit with a sigmoid and binary cross-entropy (the seed's); more classes use cross-entropy.
Images are uint8 ``[N, C, H, W]``; they go to [-1, 1] batch by batch.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lab.device import autocast_for, resolve_device
from lab.errors import LabError
from lab.metrics.classify import accuracy, as_model_input
from lab.models.cnn import ConvNet
from lab.progress import ProgressFn
from lab.train.losses import random_affine


@dataclass
class CNNTrainConfig:
    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    augment: bool = False         # small random shifts/rotations of the training images
    seed: int = 0
    device: str = "auto"

    def validate(self) -> None:
        for name, low, high in (("epochs", 1, 500), ("batch_size", 1, 4096)):
            value = getattr(self, name)
            if not isinstance(value, int) or not low <= value <= high:
                raise LabError(f"{name} must be a whole number between {low} and {high}, not {value!r}.")
        if not 0 < self.lr < 1:
            raise LabError(f"The learning rate must be in (0, 1), not {self.lr}.")


def make_cnn(channels: int, size: int, num_classes: int) -> ConvNet:
    """The seed's CNN; a binary task gets a single logit."""
    if num_classes < 2:
        raise LabError(f"A classifier needs at least two classes, not {num_classes}.")
    return ConvNet(in_channels=channels, image_size=size, num_classes=1 if num_classes == 2 else num_classes)


def classification_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    if logits.shape[1] == 1:
        return F.binary_cross_entropy_with_logits(logits.squeeze(1).float(), labels.float())
    return F.cross_entropy(logits.float(), labels)


def train_cnn(images: torch.Tensor, labels: torch.Tensor, num_classes: int,
              tests: dict[str, tuple[torch.Tensor, torch.Tensor]], config: CNNTrainConfig,
              progress: ProgressFn | None = None) -> tuple[ConvNet, list[dict]]:
    """Train a fresh ConvNet (seeded) on (images, labels); after each epoch record the mean training loss
    and the accuracy on every test set: ``[{"epoch": 1, "loss": …, "<name>_acc": …}, …]``."""
    config.validate()
    if len(images) == 0:
        raise LabError("The training set is empty.")
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    net = make_cnn(images.shape[1], images.shape[-1], num_classes).to(device).train()
    opt = torch.optim.Adam(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    gen = torch.Generator().manual_seed(config.seed)
    aug = torch.Generator(device).manual_seed(config.seed + 1)
    batches = -(-len(images) // config.batch_size)
    history = []
    for epoch in range(1, config.epochs + 1):
        started, total = time.perf_counter(), 0.0
        order = torch.randperm(len(images), generator=gen)
        for b in range(batches):
            index = order[b * config.batch_size:(b + 1) * config.batch_size]
            x, y = as_model_input(images[index], device), labels[index].to(device)
            if config.augment:
                x = random_affine(x, aug, max_shift=0.1, max_degrees=10.0, max_scale=0.1)
            with autocast_for(device):
                loss = classification_loss(net(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(index)
            if progress is not None:
                progress((epoch - 1) * batches + b + 1, config.epochs * batches, f"epoch {epoch}/{config.epochs}")
        entry = {"epoch": epoch, "loss": total / len(images), "seconds": time.perf_counter() - started}
        entry.update({f"{name}_acc": accuracy(net, x_test, y_test) for name, (x_test, y_test) in tests.items()})
        history.append(entry)
    return net.eval(), history
