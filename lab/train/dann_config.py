"""The settings of one DANN training run (``lab.train.dann.train_dann``), declared once: the ``dann`` command and
the DANN tab show them through ``lab.experiments.dann.config.DANNConfig``, which adds the task and the placements."""
from __future__ import annotations

from dataclasses import dataclass

from lab.params import Params, param

OPTIMIZERS = ("sgd", "adam")
LR_SCHEDULES = ("annealed", "constant")
LAMBDA_SCHEDULES = ("dann", "constant")


@dataclass
class DANNTraining(Params):
    """What every (placement, seed) run of a comparison shares."""
    epochs: int = param(5, "training epochs per run", low=1, high=200, label="Epochs")
    steps_per_epoch: int = param(200, "optimiser steps per epoch (the test accuracy is measured after each)", low=1,
                                 high=10_000, label="Steps per epoch")
    batch_size: int = param(64, "images per domain in each step (each step sees twice as many; at least 2 for "
                                "BatchNorm)", low=2, high=512, label="Batch per domain")
    optimizer: str = param("sgd", "sgd (momentum 0.9, the paper's) or adam", choices=OPTIMIZERS, label="Optimizer")
    lr: float = param(0.01, "μ₀, the initial learning rate", low=1e-6, high=0.5, label="Learning rate μ₀")
    lr_schedule: str = param("annealed", "annealed: μ₀/(1+10p)^0.75 (the paper's); constant: μ₀ throughout",
                             choices=LR_SCHEDULES, label="LR schedule")
    weight_decay: float = param(5e-4, "weight decay", low=0.0, high=1.0, label="Weight decay")
    lambda_schedule: str = param("dann", "dann: λ_max(2/(1+exp(−10p))−1); constant: λ_max throughout (the seed: "
                                         "0.001)", choices=LAMBDA_SCHEDULES, label="λ schedule")
    lambda_max: float = param(1.0, "λ_max, or the constant λ", low=0.0, high=10.0, flag="--lambda",
                              label="λ (max, or the constant; the seed: 0.001)")
    augment: bool = param(True, "random affine warps of source images", label="Augment source (random affine)")
    augment_scale: float = param(0.15, "± relative scale of the warps", low=0.0, high=0.45,
                                 label="± scale of the warps")
    source_only_sees_target: bool = param(False, "the 'none' run also forwards target batches (BatchNorm "
                                                 "statistics of both domains)",
                                          label="Source-only run also forwards target batches (BatchNorm sees "
                                                "both domains)")
    eval_limit: int = param(2000, "test images per domain for the per-epoch curves (0: all; the final numbers "
                                  "always use the full test sets)", low=0, high=1_000_000,
                            label="Test images per epoch (0 = all)")
    feature_points: int = param(1000, "backbone features kept per domain (t-SNE, proxy A-distance)", low=1,
                                high=100_000, label="Feature points")
    device: str = param("auto", "auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N, mps", label="Device")

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch


@dataclass
class DANNTrainConfig(DANNTraining):
    """One run: the shared settings plus its seed and whether images are flipped."""
    seed: int = param(0, "random seed (the label network starts from the same weights for every placement)",
                      low=0, high=2**31 - 1, cli=False)
    flip: bool = param(False, "random horizontal flips of source images too (objects, not digits)", cli=False)
