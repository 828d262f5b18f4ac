"""Everything a GPU is for, in one call (issue 16): run it once when a device machine is lent.

  * batched translation against the reference per-image flow (batch 1, fp32): ``speedup_translate_*`` (target
    ≥ 20×), and the seconds of the seed's workload — 1,500 images at 64 px with the face translator and at 28 px
    with the digit translator (target < 60 s each);
  * training throughput (images/s, MFU, memory peak) of the shipped UNets at their training batch size;
  * training the shipped DDPMs further for ``--train-minutes`` each (resumable folders under --out; copy them
    into checkpoints/ with their cards when they are better).

    python bench/device.py                 # on the GPU: about 8 minutes
    python bench/device.py --smoke         # the same code on the CPU with tiny sizes: under 2 minutes

The last line printed is one JSON object.
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

TRANSLATORS = {"digits": ("diffusionclip-mnist-sketch", "mnist"), "faces": ("diffusionclip-utkface-sketch", "utkface")}
TRAINED = ("ddpm-mnist", "ddpm-utkface64")   # each at the batch size its card records


def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def translation(name: str, editor: str, data: str, n: int, n_reference: int, batch_size: int, device,
                steps: int | None = None) -> dict:
    """Seconds and images/s of translating ``n`` images batched (bf16 autocast on CUDA), against the reference
    flow: one image at a time in fp32 (``steps``: fewer DDIM steps than the translator's, for the smoke run)."""
    import torch

    from lab.data import load_dataset
    from lab.diffusion.editing import edit_batched
    from lab.experiments.edit.saved import load_saved_edit
    from lab.models.store import list_models

    if editor not in list_models("ddpm"):
        return {"measured": False, "reason": f"checkpoints/{editor} is not shipped"}
    tuned, base, cfg = load_saved_edit(editor, device)
    ds = load_dataset(data, "train", size=tuned.size, channels=tuned.channels, limit=n)
    x = ds.to_float()
    steps = (cfg["t0"], steps or cfg["n_inv_step"], steps or cfg["n_test_step"])
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    precision = "bf16" if device.type == "cuda" else "fp32"
    edit_batched(base.unet, tuned.unet, base.scheduler, x[:batch_size], *steps, batch_size, precision=precision)
    sync(device)
    t = time.perf_counter()
    edit_batched(base.unet, tuned.unet, base.scheduler, x, *steps, batch_size, precision=precision)
    sync(device)
    seconds = time.perf_counter() - t
    t = time.perf_counter()
    for i in range(n_reference):
        edit_batched(base.unet, tuned.unet, base.scheduler, x[i:i + 1], *steps, 1, precision="fp32")
    sync(device)
    reference_ips = n_reference / (time.perf_counter() - t)
    out = {"measured": True, "editor": editor, "images": len(x), "size": tuned.size, "batch_size": batch_size,
           "precision": precision, "seconds": round(seconds, 2), "images_per_s": round(len(x) / seconds, 1),
           "reference_images_per_s": round(reference_ips, 2),
           "speedup": round(len(x) / seconds / reference_ips, 1), "steps": list(steps)}
    if device.type == "cuda":
        out["memory_peak_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    return out


def train_further(name: str, minutes: float, out: Path, device) -> dict:
    """Continue a shipped DDPM from its weights for about ``minutes`` (steps from a measured step time)."""
    from lab.models.store import read_info, resolve_model_path, trained_batch_size
    from lab.train.config import TrainConfig
    from lab.train.recipes import train_diffusion

    info = read_info(resolve_model_path(name))
    data, batch_size = info.get("data", {}), trained_batch_size(name)
    probe = TrainConfig(steps=20, batch_size=batch_size, lr=2e-4, warmup=5, checkpoint_every=10_000,
                        device=str(device))
    t = time.perf_counter()
    train_diffusion("ddpm", out / f"{name}-probe", data=data.get("name", "mnist"), size=data.get("size"),
                    config=probe, init_from=name, resume=False)
    per_step = (time.perf_counter() - t) / 20
    steps = max(20, int(minutes * 60 / per_step))
    config = TrainConfig(steps=steps, batch_size=batch_size, lr=2e-4, warmup=100, checkpoint_every=500,
                         device=str(device))
    folder = train_diffusion("ddpm", out / name, data=data.get("name", "mnist"), size=data.get("size"), config=config,
                             init_from=name, command=f"python bench/device.py --train-minutes {minutes}")
    return {"folder": str(folder), "steps": steps, "seconds_per_step": round(per_step, 4)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="the same code on the CPU with tiny sizes (< 2 min)")
    p.add_argument("--device", default="auto")
    p.add_argument("--train-minutes", type=float, default=None, help="per shipped DDPM (default 2.5; smoke 0)")
    p.add_argument("--out", type=Path, default=None, help="folder for further-trained models (default: cache)")
    args = p.parse_args()

    import torch

    from lab.config import cpu_name, get_settings
    from lab.device import resolve_device
    from lab.metrics.speed import train_throughput
    from lab.models.store import list_models, load_diffusion, trained_batch_size

    started = time.time()
    device = resolve_device("cpu" if args.smoke else args.device)
    if args.smoke:
        torch.set_num_threads(min(2, os.cpu_count() or 1))
    n, n_ref, batch, steps = (8, 2, 4, 3) if args.smoke else (1500, 20, 250, None)
    out = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
           "torch": torch.__version__, "smoke": args.smoke, "translate": {}, "train": {}}
    for name, (editor, data) in TRANSLATORS.items():
        out["translate"][name] = translation(name, editor, data, n, n_ref, batch, device, steps)
    for name in TRAINED:
        if name not in list_models("ddpm"):
            out["train"][name] = {"measured": False, "reason": f"checkpoints/{name} is not shipped"}
            continue
        model = load_diffusion(name, device)
        out["train"][name] = train_throughput(model.unet, model.scheduler,
                                              4 if args.smoke else trained_batch_size(name),
                                              steps=1 if args.smoke else 20, warmup=1 if args.smoke else 3)
    minutes = args.train_minutes if args.train_minutes is not None else (0 if args.smoke else 2.5)
    if minutes > 0:
        folder = args.out or get_settings().cache_dir / "device-runs"
        out["train_further"] = {name: train_further(name, minutes, folder, device) for name in TRAINED
                                if name in list_models("ddpm")}
    t = out["translate"]
    out.update({
        "speedup_translate_digits": t["digits"].get("speedup"), "speedup_translate_faces": t["faces"].get("speedup"),
        "seconds_1500_digits": t["digits"].get("seconds") if not args.smoke else None,
        "seconds_1500_faces": t["faces"].get("seconds") if not args.smoke else None,
        "targets": {"speedup_translate": ">= 20", "seconds_1500": "< 60"},
        "wall_seconds": round(time.time() - started, 1)})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
