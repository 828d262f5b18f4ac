"""Everything a GPU is for, in one call (issue 16): run it once when a device machine is lent.

  * batched translation against the reference per-image flow (batch 1, fp32): ``speedup_translate_*`` (target
    ≥ 20×), and the seconds of the seed's workload — 1,500 images at 64 px with the face translator and at 28 px
    with the digit translator (target < 60 s each);
  * training throughput (images/s, MFU, memory peak) of the shipped UNets at their training batch size;
  * training the shipped DDPMs further for ``--train-minutes`` each (resumable folders under --out; copy them
    into checkpoints/ with their cards when they are better); ``ddpm-mnist``'s run starts from ``--mnist-from``
    (default the shipped weights; e.g. the newest stage in staging/), and it and its start are measured at
    ``--measure-n`` samples (DDIM 50, classifier features): ``confident_fraction_ddpm`` (issue 17's target ≥ 0.9 at
    n = 10,000) before and after.

    python bench/device.py                 # on the GPU: about 8 minutes
    python bench/device.py --mnist-from staging/ddpm-mnist-cont2 --out "$OUT"/device-runs   # what comes back
    python bench/device.py --smoke         # the same code on the CPU with tiny sizes: about 2 minutes

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


def train_further(name: str, minutes: float, out: Path, device, init_from: str | None = None,
                  smoke: bool = False) -> dict:
    """Continue a shipped DDPM from its weights (or from ``init_from``: a folder of the same network) for about
    ``minutes`` (steps from a measured step time); ``smoke``: 3 steps of batch 4."""
    from lab.models.store import read_info, resolve_model_path, trained_batch_size
    from lab.train.config import TrainConfig
    from lab.train.recipes import train_diffusion

    init_from = init_from or name
    info = read_info(resolve_model_path(name))
    data, batch_size = info.get("data", {}), 4 if smoke else trained_batch_size(name)
    probe_steps = 2 if smoke else 20
    probe = TrainConfig(steps=probe_steps, batch_size=batch_size, lr=2e-4, warmup=1, checkpoint_every=10_000,
                        device=str(device))
    t = time.perf_counter()
    train_diffusion("ddpm", out / f"{name}-probe", data=data.get("name", "mnist"), size=data.get("size"),
                    config=probe, init_from=init_from, resume=False)
    per_step = (time.perf_counter() - t) / probe_steps
    steps = 3 if smoke else max(20, int(minutes * 60 / per_step))
    config = TrainConfig(steps=steps, batch_size=batch_size, lr=2e-4, warmup=1 if smoke else 100, ema_decay=0.9995,
                         checkpoint_every=500, device=str(device))
    folder = train_diffusion("ddpm", out / name, data=data.get("name", "mnist"), size=data.get("size"), config=config,
                             init_from=init_from,
                             command=f"python bench/device.py --train-minutes {minutes}"
                             + (f" --mnist-from {init_from}" if name == "ddpm-mnist" else ""))
    return {"folder": str(folder), "init_from": init_from, "steps": steps, "seconds_per_step": round(per_step, 4)}


def ddpm_quality(model: str, n: int, device) -> dict:
    """FID (classifier features), confident fraction and class entropy of ``model`` at ``n`` (DDIM 50, seed 0):
    the figures of issue 17's DDPM target, as ``bench/denoise.py`` measures them."""
    from lab.experiments.denoise.config import DenoiseConfig
    from lab.experiments.denoise.quality import run_quality

    t = time.perf_counter()
    q = run_quality(DenoiseConfig(model=model, sampler="ddim", steps=50, device=str(device)), n=n)
    return {"model": model, "n": n, "fid_classifier": round(q.fid["fid"], 2),
            "floor": round(q.floor["fid"], 2) if q.floor else None,
            "confident_fraction": round(float(q.quality["confident_fraction"]), 4),
            "class_entropy": round(float(q.quality["class_entropy"]), 4),
            "seconds": round(time.perf_counter() - t, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="the same code on the CPU with tiny sizes (about 2 min)")
    p.add_argument("--device", default="auto")
    p.add_argument("--train-minutes", type=float, default=2.5,
                   help="per shipped DDPM (0: no training; with --smoke: 3 steps of batch 4 whatever is given)")
    p.add_argument("--out", type=Path, default=None, help="folder for further-trained models (default: cache)")
    p.add_argument("--mnist-from", default="ddpm-mnist",
                   help="weights ddpm-mnist's further training starts from (a model name or folder)")
    p.add_argument("--measure-n", type=int, default=None,
                   help="samples for the before/after DDPM measurement (default 10,000; smoke 20; 0: none)")
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
    if args.smoke or args.train_minutes > 0:
        folder = args.out or get_settings().cache_dir / "device-runs"
        out["train_further"] = {name: train_further(name, args.train_minutes, folder, device,
                                                    args.mnist_from if name == "ddpm-mnist" else None, args.smoke)
                                for name in TRAINED if name in list_models("ddpm")}
        measure_n = args.measure_n if args.measure_n is not None else (20 if args.smoke else 10_000)
        further = out["train_further"].get("ddpm-mnist")
        if measure_n and further:
            before = ddpm_quality(args.mnist_from, measure_n, device)
            after = ddpm_quality(further["folder"], measure_n, device)
            out["ddpm_mnist_quality"] = {"before": before, "after": after, "target": "confident_fraction >= 0.9 "
                                         "at n = 10,000"}
            out["confident_fraction_ddpm"] = after["confident_fraction"]
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
