"""Devices and mixed precision, for every trainer, sampler and experiment: one place to pick and to autocast."""
from __future__ import annotations

import contextlib
import os

import torch

from lab.config import get_settings
from lab.errors import LabError


def resolve_device(name: str | torch.device | None = None) -> torch.device:
    """'auto' (or None: LAB_DEVICE) picks CUDA, then Apple MPS, then CPU; anything else is taken as given. Under
    ``accelerate launch`` / torchrun (``LOCAL_RANK`` set) 'auto' and 'cuda' mean this process's own GPU."""
    if isinstance(name, torch.device):
        return name
    name = name or get_settings().device
    local = os.environ.get("LOCAL_RANK")
    if name in ("auto", "cuda") and local is not None and torch.cuda.is_available():
        return torch.device("cuda", int(local) % torch.cuda.device_count())
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise LabError(f"Unknown device {name!r}: use auto, cpu, cuda or cuda:N.") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise LabError(f"Device {name!r} was asked for but CUDA is not available here: use --device cpu.")
    return device


def autocast_for(device: torch.device, cpu_bf16: bool = False):
    """bf16/fp16 autocast on CUDA (AMP). On CPU nothing unless ``cpu_bf16`` — it pays off only on CPUs with
    bf16 instructions (AVX512-BF16/AMX) and for the larger (64 px) networks."""
    if device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    if cpu_bf16 and device.type == "cpu":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def training_attention(device: torch.device, bf16: bool):
    """The attention kernel for a training step. On CPU under bf16 autocast PyTorch's default (flash) kernel is
    slow backwards: the math kernel makes a whole ``ddpm-mnist`` training step (batch 128, attention at 7 x 7) 1.45x
    faster (1.41-1.47 -> 1.00 s on 2 threads, docs/RESULTS.md); in fp32, on CUDA and when sampling the default
    stays best."""
    if bf16 and device.type == "cpu":
        from torch.nn.attention import SDPBackend, sdpa_kernel
        return sdpa_kernel(SDPBackend.MATH)
    return contextlib.nullcontext()


def set_threads(threads: int | None) -> None:
    """CPU threads for torch (None: leave torch's default, all cores)."""
    if threads:
        torch.set_num_threads(threads)
