"""Devices and mixed precision, for every trainer, sampler and experiment: one place to pick and to autocast."""
from __future__ import annotations

import contextlib
import functools
import logging
import os

import torch

from lab.config import get_settings
from lab.errors import LabError

log = logging.getLogger(__name__)


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


@functools.lru_cache(maxsize=1)
def cpu_bf16_native() -> bool | None:
    """Whether this CPU computes bf16 in hardware (the ``avx512_bf16`` or ``amx_bf16`` flag of Linux's
    /proc/cpuinfo); None where that cannot be read (macOS, Windows). Without it PyTorch emulates bf16 and autocast
    is far slower than fp32: a ``ddpm-mnist`` training step on a 2-core AVX2 EPYC took 15 s under bf16 against
    1.9 s in fp32 (docs/RESULTS.md)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            flags = next((line.split(":", 1)[1].split() for line in fh if line.startswith("flags")), None)
    except OSError:
        return None
    if flags is None:
        return None
    return "avx512_bf16" in flags or "amx_bf16" in flags


@functools.lru_cache(maxsize=1)
def warn_slow_cpu_bf16() -> bool:
    """Log once, when bf16 autocast is asked for on a CPU that only emulates bf16; True when it warned."""
    if cpu_bf16_native() is not False:
        return False
    log.warning("bf16 on the CPU was asked for, but this CPU has no bf16 instructions (no AVX512-BF16/AMX): "
                "PyTorch emulates it, which is several times slower than fp32 here. Drop --bf16 / untick "
                "'bf16 on CPU'.")
    return True


def autocast_for(device: torch.device, cpu_bf16: bool = False):
    """bf16/fp16 autocast on CUDA (AMP). On CPU nothing unless ``cpu_bf16`` — it pays off only on CPUs with
    bf16 instructions (AVX512-BF16/AMX) and for the larger (64 px) networks."""
    if device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    if cpu_bf16 and device.type == "cpu":
        warn_slow_cpu_bf16()
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
