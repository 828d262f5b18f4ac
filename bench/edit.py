"""Benchmark of the DiffusionCLIP editing tab: MNIST digits "a digit" → "a sketch of a digit" with the shipped
CLIP (checkpoints/clip-lab) and DDPM (checkpoints/ddpm-mnist).

Measures
  * inversion_mse: invert (t0, n_inv_step) then generate (n_test_step) with the original model, test digits;
  * speedup_batched: images/s of batched editing over the reference flow (one image at a time, fp32), same
    model, same steps, measured in this run;
  * target_style_fraction / label_kept_fraction: edited test digits judged by a style classifier (7 styles)
    and a digit classifier trained here on MNIST train rendered in all styles — both independent of CLIP.
Faces (UTKFace photo → sketch) need a 64-px face DDPM (checkpoints/ddpm-utkface64), which is not shipped
yet: reported as null.

    python bench/edit.py            # 500 edited test digits, 32 fine-tuning images
    python bench/edit.py --quick    # 100 edited digits, 16 fine-tuning images (< 10 min on 2 CPU cores)

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


def train_judges(seed: int, steps: int, per_style: int):
    """A style classifier (7 styles) and a style-robust digit classifier on MNIST train in all styles."""
    import torch

    from lab.data import load_dataset, set_channels
    from lab.data.styles import STYLES, apply_style
    from lab.metrics.classify import accuracy
    from lab.models.cnn import ConvNet
    from lab.train.loop import TrainConfig, fit
    from lab.train.losses import ClassifierLoss

    def rendered(split, n, s):
        ds = load_dataset("mnist", split, limit=n, seed=s)
        xs, styles, digits = [], [], []
        for i, style in enumerate(STYLES):
            img = apply_style(ds.images, style, seed=s + i) if style != "plain" else ds.images
            xs.append(set_channels(img, 1).float().div(127.5).sub(1))
            styles.append(torch.full((len(ds),), i))
            digits.append(ds.labels)
        return torch.cat(xs), torch.cat(styles), torch.cat(digits)

    from lab.config import get_settings
    from safetensors.torch import load_file, save_file

    x, s, d = rendered("train", per_style, seed + 10)
    xt, st, dt = rendered("test", 100, seed + 20)
    out = {}
    for name, labels, test_labels, k in (("style", s, st, len(STYLES)), ("digit", d, dt, 10)):
        net = ConvNet(in_channels=1, image_size=28, num_classes=k)
        # judges are cached (they do not depend on the edit): a rerun measures the same way, faster
        cached = get_settings().cache_dir / f"bench-edit-judge-{name}-{seed}-{steps}-{per_style}.safetensors"
        if cached.exists():
            net.load_state_dict(load_file(cached))
        else:
            fit(net, ClassifierLoss(augment=False), x, labels,
                TrainConfig(steps=steps, batch_size=64, lr=1e-3, warmup=20, ema_decay=None, seed=seed, device="cpu"))
            cached.parent.mkdir(parents=True, exist_ok=True)
            save_file({k_: v.contiguous() for k_, v in net.state_dict().items()}, cached)
        out[name] = (net.eval(), round(accuracy(net, xt, test_labels), 4))
        log(f"{name} judge: test accuracy {out[name][1]}")
    return out, STYLES.index("sketch")


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--model", default="ddpm-mnist")
    p.add_argument("--clip", default="clip-lab")
    p.add_argument("--source", default="a digit")
    p.add_argument("--target", default="a sketch of a digit")
    p.add_argument("--t0", type=int, default=400)
    p.add_argument("--n-inv-step", type=int, default=None, help="default 40, quick 20")
    p.add_argument("--n-train-step", type=int, default=6)
    p.add_argument("--n-test-step", type=int, default=None, help="default 40, quick 20")
    p.add_argument("--lambda-clip", type=float, default=1.0)
    p.add_argument("--lambda-l1", type=float, default=0.1)
    p.add_argument("--lambda-id", type=float, default=0.5)
    p.add_argument("--lambda-struct", type=float, default=0.0, help="structure loss (the editors' recipe: 1)")
    p.add_argument("--iterations", type=int, default=None, help="default 8, quick 6")
    p.add_argument("--clip-views", type=int, default=0)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--variant", default="full", choices=["full", "eff"])
    p.add_argument("--n-train", type=int, default=None, help="fine-tuning images (default 32, quick 16)")
    p.add_argument("--n-edit", type=int, default=None, help="edited test digits (default 500, quick 50)")
    p.add_argument("--n-loop", type=int, default=None, help="images for the one-at-a-time baseline (default 20, quick 8)")
    p.add_argument("--edit-batch-size", type=int, default=100)
    p.add_argument("--judge-steps", type=int, default=None, help="default 600, quick 200")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="auto")
    p.add_argument("--save-as", default=None, help="also save the fine-tuned model under this name")
    args = p.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from lab.config import cpu_name, resolve_device
    from lab.data import load_dataset
    from lab.diffusion.samplers import ddim_invert
    from lab.experiments.edit import EditConfig, run_edit
    from lab.train.diffusionclip import edit_batched, generate

    quick = args.quick
    args.n_inv_step = args.n_inv_step or (20 if quick else 40)
    args.n_test_step = args.n_test_step or (20 if quick else 40)
    n_train, n_edit = args.n_train or (16 if quick else 32), args.n_edit or (50 if quick else 500)
    n_loop = args.n_loop or (8 if quick else 20)
    started = time.time()
    judges, sketch = train_judges(args.seed, args.judge_steps or (200 if quick else 600), 200 if quick else 1000)
    judge_seconds = time.time() - started

    config = EditConfig(model=args.model, clip=args.clip, source=args.source, target=args.target, data="mnist",
                        n_train=n_train, t0=args.t0, n_inv_step=args.n_inv_step, n_train_step=args.n_train_step,
                        n_test_step=args.n_test_step, lambda_clip=args.lambda_clip, lambda_l1=args.lambda_l1,
                        lambda_id=args.lambda_id, lambda_struct=args.lambda_struct, clip_views=args.clip_views,
                        iterations=args.iterations or (6 if quick else 8), lr=args.lr,
                        variant=args.variant, edit_n=0, edit_batch_size=args.edit_batch_size, seed=args.seed,
                        device=args.device, save_as=args.save_as)
    log("fine-tuning")
    result = run_edit(config)
    log(f"fine-tuned: {result.metrics}")
    model, tuned = None, result.tuned
    from lab.models.store import load_diffusion

    device = resolve_device(args.device)
    model = load_diffusion(args.model, device)
    test = load_dataset("mnist", "test", limit=n_edit, seed=args.seed + 1)
    x = test.to_float()

    log("editing")
    # batched editing (the lab's flow, fp32 and bf16 autocast) and the reference flow: one image at a time, fp32
    # CPU time of this process (one thread): fair on a machine whose cores other jobs share
    clock = time.process_time
    t = clock()
    edited, latents = edit_batched(model.unet, tuned.unet, model.scheduler, x, args.t0, args.n_inv_step,
                                   args.n_test_step, args.edit_batch_size)
    batched_fp32_ips = len(x) / (clock() - t)
    t = clock()
    edited_bf16, _ = edit_batched(model.unet, tuned.unet, model.scheduler, x, args.t0, args.n_inv_step,
                                  args.n_test_step, args.edit_batch_size, precision="bf16")
    batched_bf16_ips = len(x) / (clock() - t)
    bf16_vs_fp32_mae = float((edited_bf16 - edited).abs().mean())
    batched_ips = max(batched_fp32_ips, batched_bf16_ips)
    t = clock()
    with torch.no_grad():
        for i in range(n_loop):
            xi = x[i:i + 1].to(device)
            zi = ddim_invert(model.unet, xi, model.scheduler, args.n_inv_step, t0=args.t0)
            generate(tuned.unet, model.scheduler, zi, args.n_test_step, args.t0)
    loop_ips = n_loop / (clock() - t)
    with torch.no_grad():
        recon = torch.cat([generate(model.unet, model.scheduler, latents[i:i + args.edit_batch_size].to(device),
                                    args.n_test_step, args.t0).cpu() for i in range(0, len(x), args.edit_batch_size)])
    inversion_mse = float(((recon.clamp(-1, 1) - x) ** 2).mean())

    style_net, style_acc = judges["style"]
    digit_net, digit_acc = judges["digit"]
    with torch.no_grad():
        style_hat = style_net(edited).argmax(1)
        digit_hat = digit_net(edited).argmax(1)
        orig_style = style_net(x).argmax(1)
    from lab.clip import load_clip
    from lab.train.diffusionclip import DiffusionClipLoss
    from lab.experiments.edit import measure

    clip = load_clip(args.clip, device=device)
    loss = DiffusionClipLoss(clip, config.source, config.target).to(device)
    m = measure(clip, loss, x, recon.clamp(-1, 1), edited, None)
    out = {
        "bench": "edit", "quick": quick, "model": args.model, "clip": args.clip, "source": config.source,
        "target": config.target, "t0": args.t0, "n_inv_step": args.n_inv_step, "n_train_step": args.n_train_step,
        "n_test_step": args.n_test_step,
        "lambdas": [args.lambda_clip, args.lambda_l1, args.lambda_id, args.lambda_struct],
        "clip_views": args.clip_views,
        "iterations": config.iterations, "lr": args.lr, "variant": args.variant, "n_train": n_train,
        "n_edited": len(x),
        "inversion_mse": round(inversion_mse, 5),
        "batched_images_per_s": round(batched_ips, 3), "loop_images_per_s": round(loop_ips, 3),
        "batched_fp32_images_per_s": round(batched_fp32_ips, 3), "batched_bf16_images_per_s": round(batched_bf16_ips, 3),
        "speedup_batched_fp32": round(batched_fp32_ips / loop_ips, 2), "bf16_vs_fp32_mean_abs_diff": round(bf16_vs_fp32_mae, 4),
        "edit_batch_size": args.edit_batch_size, "n_loop": n_loop, "throughput_clock": "process CPU time, 1 thread",
        "speedup_batched": round(batched_ips / loop_ips, 2),
        "target_style_fraction": round(float((style_hat == sketch).float().mean()), 4),
        "original_sketch_fraction": round(float((orig_style == sketch).float().mean()), 4),
        "label_kept_fraction": round(float((digit_hat == test.labels).float().mean()), 4),
        "style_judge_test_accuracy": style_acc, "digit_judge_test_accuracy": digit_acc,
        "clip_direction_before": m["clip_direction_before"], "clip_direction_after": m["clip_direction_after"],
        "finetune_seconds": result.metrics["finetune_seconds"], "judge_seconds": round(judge_seconds, 1),
        "faces": None, "faces_note": "needs checkpoints/ddpm-utkface64 (not shipped yet)",
        "device": str(device), "cpu": cpu_name(), "threads": args.threads,
        "wall_seconds": round(time.time() - started, 1),
    }
    if result.saved_to:
        out["saved_to"] = result.saved_to
    try:
        from lab.viz.grids import image_grid

        k = 16
        image_grid(torch.cat([x[:k], recon[:k].clamp(-1, 1), edited[:k]]), nrow=k, scale=2).save(
            Path(os.environ.get("LAB_RUNS_DIR", "runs")) / "bench-edit-grid.png")
    except OSError:
        pass
    print(json.dumps(out))


if __name__ == "__main__":
    main()
