"""Benchmark: training and sampling speed of the shipped UNets against this machine's own limit (issue 16).

    python bench/train.py --threads 1            # ddpm-mnist at its batch size 128 and ddpm-utkface64 at 32
    python bench/train.py --quick --threads 1    # ddpm-mnist only, fewer steps: about 2 minutes

For each UNet: training images/s (ε loss, AdamW; fp32 and bf16 autocast) and ``mfu_train`` — the UNet's FLOPs
counted once with ``torch.utils.flop_counter`` (a training step = 3 forward passes), times images/s, over the
dense-matmul peak of this machine measured in the same run at the same dtype and thread count. Then where the time
of one batched forward pass goes (``torch.profiler``, share of self CPU time per operator family) and what
``torch.compile`` gains on it — the measurements behind the MFU discussion in docs/RESULTS.md. Times are process
CPU time, fair on a machine whose cores other jobs share. The last line printed is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

MODELS = ("ddpm-mnist", "ddpm-utkface64")   # each at the batch size it was trained at (its card)
FAMILIES = {"convolution": ("conv",), "matmul / attention": ("mm", "addmm", "bmm", "attention", "linear"),
            "normalisation": ("norm",), "activation": ("silu", "gelu", "relu"),
            "copies / layout": ("copy", "cat", "contiguous", "clone", "to", "upsample")}


def op_shares(unet, x, t) -> dict:
    """Share of self CPU time per operator family in ``unet(x, t)`` (3 repeats, no grad)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(3):
            unet(x, t)
    times: dict[str, float] = {}
    for event in prof.key_averages():
        name = event.key.replace("aten::", "")
        family = next((f for f, keys in FAMILIES.items() if any(k in name for k in keys)), "elementwise / other")
        times[family] = times.get(family, 0.0) + event.self_cpu_time_total
    total = sum(times.values()) or 1.0
    return {k: round(v / total, 3) for k, v in sorted(times.items(), key=lambda kv: -kv[1])}


def forward_speed(unet, size: int, channels: int, batch: int, clock, compiled: bool = False) -> float:
    """Images/s of a no-grad forward pass at ``batch`` (after a warm-up call)."""
    import torch

    net = torch.compile(unet) if compiled else unet
    x = torch.rand(batch, channels, size, size) * 2 - 1
    t = torch.full((batch,), 500.0)
    with torch.no_grad():
        net(x, t)
        start = clock()
        for _ in range(3):
            net(x, t)
        return 3 * batch / (clock() - start)


def measure(name: str, steps: int, compile_probe: bool) -> dict:
    import torch

    from lab.metrics.speed import matmul_peak, mfu, train_throughput, unet_flops
    from lab.models.store import load_diffusion, trained_batch_size

    clock = time.process_time
    batch_size = trained_batch_size(name)
    model = load_diffusion(name, "cpu")
    size, channels = model.size, model.channels
    fp32 = train_throughput(model.unet, model.scheduler, batch_size, steps=steps, warmup=1, clock=clock)
    bf16 = train_throughput(load_diffusion(name, "cpu").unet, model.scheduler, batch_size, steps=steps, warmup=1,
                            bf16=True, clock=clock)
    flops = unet_flops(model.unet, size, channels)
    peak = matmul_peak("cpu", torch.float32, clock=clock)
    batch = 64
    fwd = forward_speed(model.unet, size, channels, batch, clock)
    out = {"train_fp32": fp32, "train_bf16": bf16, "mfu_train": max(fp32["mfu"], bf16["mfu"]),
           "gflop_per_forward": round(flops / 1e9, 3), "forward_images_per_s": round(fwd, 1),
           "mfu_forward_fp32": round(mfu(fwd, flops, peak), 3),
           "forward_time_shares": op_shares(model.unet, torch.rand(batch, channels, size, size) * 2 - 1,
                                            torch.full((batch,), 500.0))}
    if compile_probe:
        try:
            compiled = forward_speed(model.unet, size, channels, batch, clock, compiled=True)
            out["mfu_forward_compiled_fp32"] = round(mfu(compiled, flops, peak), 3)
        except Exception as err:  # noqa: BLE001 — no C++ compiler, an unsupported op: say so, keep the rest
            out["mfu_forward_compiled_fp32"] = f"not measured: {type(err).__name__}: {str(err)[:120]}"
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="ddpm-mnist only, 3 timed steps")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile probe")
    args = p.parse_args()

    import torch

    from lab.config import cpu_name
    from lab.models.store import list_models

    torch.set_num_threads(args.threads)
    started = time.time()
    names = ["ddpm-mnist"] if args.quick else list(MODELS)
    out: dict = {"models": {}}
    for name in names:
        if name not in list_models("ddpm"):
            out["models"][name] = {"measured": False, "reason": f"checkpoints/{name} is not shipped"}
            continue
        print(f"[{time.strftime('%H:%M:%S')}] {name}", file=sys.stderr, flush=True)
        out["models"][name] = measure(name, 3 if args.quick else 6, not args.no_compile)
    first = out["models"].get("ddpm-mnist", {})
    out.update({"mfu_train": first.get("mfu_train"), "mfu_forward_fp32": first.get("mfu_forward_fp32"),
                "device": "cpu", "cpu": cpu_name(), "threads": torch.get_num_threads(), "torch": torch.__version__,
                "clock": "process CPU time", "quick": args.quick, "wall_seconds": round(time.time() - started, 1)})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
