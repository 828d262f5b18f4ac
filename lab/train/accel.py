"""The ``accelerate.Accelerator`` every trainer of the lab runs on: one process or many (``accelerate launch``),
one GPU or several nodes, data parallel (DDP), mixed precision and gradient accumulation.

Mixed precision: what ``accelerate launch`` / ``accelerate config`` set (``ACCELERATE_MIXED_PRECISION``) when a
run is launched; else bf16 on a CUDA GPU that has it (fp16 on an older one), and on a CPU only with ``--bf16``
(bf16 autocast pays off on CPUs with AVX512-BF16/AMX and for the larger networks).
"""
from __future__ import annotations

import os

import torch

from lab.device import resolve_device, warn_slow_cpu_bf16


def mixed_precision_for(device: torch.device, cpu_bf16: bool = False) -> str:
    launched = os.environ.get("ACCELERATE_MIXED_PRECISION")
    if launched:
        return launched
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if cpu_bf16 and device.type == "cpu":
        warn_slow_cpu_bf16()
        return "bf16"
    return "no"


def accelerator_for(device: str = "auto", cpu_bf16: bool = False, grad_accum: int = 1):
    """An Accelerator on ``device`` (auto: what ``accelerate launch`` gives, else CUDA, then MPS, then CPU).

    accelerate keeps one process-wide state; a single process that trains several models with different
    precision settings (the app, the tests) starts that state afresh for each — a launched multi-process run
    gets its one setting from the launcher and never changes it."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, PartialState
    from accelerate.utils import DataLoaderConfiguration

    target = resolve_device(device)
    precision = mixed_precision_for(target, cpu_bf16)
    cpu = target.type == "cpu"
    state = AcceleratorState._shared_state  # noqa: SLF001 — accelerate's own way to see an existing state
    if state and PartialState().num_processes == 1 and (state.get("_mixed_precision") != precision
                                                       or state.get("_cpu") != cpu):
        AcceleratorState._reset_state()  # noqa: SLF001 — a single process changing settings between trainings
    return Accelerator(cpu=cpu, mixed_precision=precision, gradient_accumulation_steps=grad_accum,
                       dataloader_config=DataLoaderConfiguration(split_batches=True))
