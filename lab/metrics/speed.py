"""Speed against the machine's own limit: FLOPs of a network counted once (``torch.utils.flop_counter``), the
dense-matmul peak of this machine at the same dtype and thread count measured by a short probe, and the model
FLOP/s utilisation (MFU) of a measured throughput."""
from __future__ import annotations

import time

import torch


@torch.no_grad()
def forward_flops(net, *inputs) -> float:
    """FLOPs of one forward pass of ``net`` on ``inputs`` (a multiply-add counts 2), per the first input's batch."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        net(*inputs)
    return counter.get_total_flops() / len(inputs[0])


def unet_flops(unet, size: int, channels: int, device=None) -> float:
    """FLOPs of one UNet2DModel forward per image (batch of 2 at ``size`` px)."""
    device = device or next(unet.parameters()).device
    x = torch.zeros(2, channels, size, size, device=device)
    t = torch.full((2,), 500.0, device=device)
    return forward_flops(lambda a, b: unet(a, b).sample, x, t)


def matmul_peak(device=None, dtype: torch.dtype = torch.float32, n: int = 1024, seconds: float = 1.0,
                clock=time.perf_counter) -> float:
    """FLOP/s of dense n×n matmuls on ``device`` at ``dtype`` with the current torch thread count — the yardstick
    the MFU figures divide by (the best of a few timed bursts after a warm-up). ``clock``: the clock the
    throughput it is compared with was measured on (``time.process_time`` on a CPU shared with other jobs)."""
    device = torch.device(device or "cpu")
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(3):
        a @ b
    sync()
    best, end = 0.0, clock() + seconds
    while clock() < end:
        reps, t = 4, clock()
        for _ in range(reps):
            a @ b
        sync()
        best = max(best, 2 * n ** 3 * reps / max(clock() - t, 1e-9))
    return best


def mfu(images_per_s: float, flops_per_image: float, peak: float) -> float:
    """Achieved FLOP/s over the peak FLOP/s (0 … 1)."""
    return images_per_s * flops_per_image / peak if peak > 0 else float("nan")


def train_throughput(unet, scheduler, batch_size: int, steps: int = 10, warmup: int = 2, bf16: bool = False,
                     clock=time.perf_counter) -> dict:
    """Images/s of DDPM training steps (ε loss, AdamW) of ``unet`` at ``batch_size``, after ``warmup`` steps, with
    its MFU (a training step counts 3 forward passes: forward + backward) and, on CUDA, the memory peak."""
    from lab.device import autocast_for
    from lab.train.losses import EpsilonLoss

    device = next(unet.parameters()).device
    size, channels = int(unet.config.sample_size), int(unet.config.in_channels)
    x = torch.rand(batch_size, channels, size, size, device=device) * 2 - 1
    loss_fn, opt = EpsilonLoss(scheduler), torch.optim.AdamW(unet.parameters(), lr=1e-4)
    unet.train()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def step(i: int) -> None:
        g = torch.Generator(device).manual_seed(i)
        with autocast_for(device, bf16):
            loss = loss_fn(unet, x, None, g)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for i in range(warmup):
        step(i)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t = clock()
    for i in range(steps):
        step(warmup + i)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    ips = batch_size * steps / (clock() - t)
    flops = 3 * unet_flops(unet, size, channels)
    peak = matmul_peak(device, torch.bfloat16 if (bf16 or device.type == "cuda") else torch.float32, clock=clock)
    out = {"images_per_s": round(ips, 1), "batch_size": batch_size, "gflop_per_image": round(flops / 1e9, 3),
           "peak_gflops": round(peak / 1e9, 1), "mfu": round(mfu(ips, flops, peak), 3)}
    if device.type == "cuda":
        out["memory_peak_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    unet.eval()
    return out
