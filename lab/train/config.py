"""The settings of ``fit()`` (every trainer of the lab), declared once: the CLI's ``train`` options come from here."""
from __future__ import annotations

from dataclasses import dataclass

from lab.params import Params, param


@dataclass
class TrainConfig(Params):
    steps: int = param(10_000, "optimiser steps", low=1, high=10_000_000, label="Training steps")
    batch_size: int = param(128, "batch size", low=1, high=65_536)
    lr: float = param(1e-3, "peak learning rate (AdamW; warm-up, then cosine decay)", low=0, high=0.999,
                     label="The learning rate")
    weight_decay: float = param(0.0, "AdamW weight decay", low=0, high=1, cli=False)
    warmup: int = param(500, "learning-rate warm-up steps", low=0, high=1_000_000)
    grad_clip: float = param(1.0, "gradient-norm clipping", low=0, high=1e6, cli=False)
    ema_decay: float | None = param(0.999, "EMA decay of the weights (0 or none: no EMA)", flag="--ema", low=0,
                                    high=0.999999)
    checkpoint_every: int = param(1000, "write a resumable checkpoint every this many steps", low=1,
                                  high=10_000_000)
    log_every: int = param(50, "record the mean loss every this many steps", low=1, high=1_000_000)
    seed: int = param(0, "random seed (batches and noise are drawn from (seed, step): resume is exact)", low=0,
                      high=2**31 - 1)
    device: str = param("auto", "auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N, mps")
    grad_accum: int = param(1, "gradient accumulation: global batches per optimiser step", low=1, high=1024)
    cpu_bf16: bool = param(False, "bf16 autocast on CPU too (CUDA always uses AMP); faster on CPUs with "
                                  "AVX512-BF16/AMX, several times slower on CPUs without", flag="--bf16")
    fp16_weights: bool = param(False, "store the final weights in fp16 (half the file size; they load back as "
                                      "fp32)", flag="--fp16-weights")

    def check(self) -> None:
        if self.lr <= 0:
            from lab.errors import LabError

            raise LabError(f"The learning rate must be in (0, 1), not {self.lr}.")
        if self.ema_decay == 0:
            self.ema_decay = None
