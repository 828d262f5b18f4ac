"""Benchmark of DiffusionCLIP editing: do edits land in the target domain and keep the label? (issue 14)

Digits: MNIST "a digit" → "a sketch of a digit" with checkpoints/ddpm-mnist; faces: UTKFace "a photo of a face" →
"a pencil sketch of a face" with checkpoints/ddpm-utkface64 (label = gender, face-api identity), under "faces".
Each with the recipe of lab/experiments/edit/recipes.py (override with --set / --faces-set KEY=VALUE).

Judged by independent ConvNets (lab/metrics/judges.py; neither sees CLIP): a style judge trained with off-target
negatives — its false-"sketch" rate after a tint, hue shift, lower contrast, brightening, washing out, blur
(and, for faces, outlines over a tinted photo) is
reported and must stay ≤ 5 % — and a style-robust label judge (digit / gender). Keys:
  * target_style_fraction, label_kept_fraction (+ original_sketch_fraction, label judge on originals and on the
    procedural sketches of the same images); faces also same_person (face-api);
  * landed_fraction (and clip_pixel_landed, oracle_landed): the share of edits that are both judged the target
    style and keep their label — an editor that collapses every image into one target-looking blob scores high on
    the style fraction alone, never on this;
  * clip_pixel_style_fraction / clip_pixel_label_kept: the pixels of plain test images optimised against the
    directional CLIP loss (L1 leash, the editor's CLIP views), no diffusion model — is the CLIP signal perceptual?
    clip_path_cos: the directional cosine along the straight path to the procedural sketch (α = 0.01 … 1): near
    zero for a faint move and growing with α if the CLIP answers to the style, not to invisible changes;
  * oracle_style_fraction / oracle_label_kept: the same UNet copy fine-tuned with L2 to the procedural sketch of
    each training image instead of CLIP — can the backbone + DDIM path reach the target at all?
  * inversion_mse, speedup_batched (batched vs one image at a time, fp32; process CPU time).
The grids a person can check the numbers against (originals / reconstructions / edits / pixel diagnostic /
oracle) are written beside the JSON in a run folder under LAB_RUNS_DIR.

    python bench/edit.py --quick     # 64 edited test images per domain; about 15 min on 1 thread
    python bench/edit.py             # 500 digits, 200 faces
    python bench/edit.py --quick --validation --no-diagnose --set lambda_struct=0.3   # try a recipe on validation

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

DOMAINS = {
    "digits": dict(model="ddpm-mnist", data="mnist", label="digit", label_target=None, judge_limit=2000),
    "faces": dict(model="ddpm-utkface64", data="utkface", label="gender", label_target="gender", judge_limit=None),
}
STYLE_TARGET = 0.8
LABEL_TARGET = 0.95
FALSE_TARGET = 0.05


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def overrides(items: list[str], base: dict) -> dict:
    from lab.experiments.edit.config import EditConfig
    from lab.params import spec

    out = dict(base)
    for item in items:
        key, _, value = item.partition("=")
        out[key] = spec(EditConfig, key).parse(value)
    return out


def run_domain(domain: str, args, run) -> dict:
    import torch

    from lab.clip import load_clip
    from lab.data import load_dataset
    from lab.diffusion.editing import edit_batched
    from lab.diffusion.samplers import ddim_generate, ddim_invert
    from lab.experiments.edit.config import EditConfig
    from lab.experiments.edit.diagnose import clip_pixel_edit, oracle_finetune, path_cosines
    from lab.experiments.edit.measure import measure
    from lab.experiments.edit.prompts import backbone_defaults
    from lab.experiments.edit.recipes import recipe_for
    from lab.experiments.edit.run import identity_network, run_edit
    from lab.metrics.judges import train_judges
    from lab.models.store import load_diffusion
    from lab.train.diffusionclip import DiffusionClipLoss, FinetuneSettings
    from lab.viz.grids import image_grid
    from lab.viz.rows import label_rows

    spec = DOMAINS[domain]
    quick = args.quick
    started = time.time()
    judges = train_judges(spec["data"], "sketch", limit=spec["judge_limit"], steps=300 if quick else 800,
                          seed=args.seed, label_target=spec["label_target"])
    log(f"{domain}: judges {judges.summary()}")
    judge_seconds = time.time() - started
    suits = backbone_defaults(spec["model"])
    recipe = overrides(args.set if domain == "digits" else args.faces_set, recipe_for(spec["data"]))
    n_steps = 20 if quick else 40
    config = EditConfig(model=spec["model"], clip=args.clip, data=spec["data"], source=suits["source"],
                        target=suits["target"], n_inv_step=n_steps, n_test_step=n_steps, edit_n=0,
                        edit_batch_size=64, seed=args.seed, device=args.device, **recipe).validate()
    log(f"{domain}: fine-tuning ({config.to_command()})")
    result = run_edit(config)
    model = load_diffusion(config.model, config.device)
    n_edit = args.n_edit or (64 if quick else (500 if domain == "digits" else 200))
    if args.validation:  # training images the fine-tuning did not see: for choosing recipes, never the test set
        test = load_dataset(config.data, "train", size=model.size, channels=model.channels, limit=n_edit,
                            seed=args.seed + 7, target=spec["label_target"])
        tuned_on = load_dataset(config.data, config.split, size=model.size, channels=model.channels,
                                limit=config.n_train, seed=config.seed).images.flatten(1)
        unseen = torch.tensor([not bool((tuned_on == img).all(1).any()) for img in test.images.flatten(1)])
        x, labels = test.to_float()[unseen], test.labels[unseen]
    else:
        test = load_dataset(config.data, "test", size=model.size, channels=model.channels, limit=n_edit,
                            seed=args.seed + 1, target=spec["label_target"])
        x, labels = test.to_float(), test.labels
    t0, n_inv, n_test, batch = config.t0, config.n_inv_step, config.n_test_step, config.edit_batch_size

    clock = time.process_time  # CPU time of this process: fair on a machine whose cores other jobs share
    t = clock()
    edited, latents = edit_batched(model.unet, result.tuned.unet, model.scheduler, x, t0, n_inv, n_test, batch)
    batched_fp32_ips = len(x) / (clock() - t)
    t = clock()
    edited_bf16, _ = edit_batched(model.unet, result.tuned.unet, model.scheduler, x, t0, n_inv, n_test, batch,
                                  precision="bf16")
    batched_bf16_ips = len(x) / (clock() - t)
    n_loop = 8 if quick else 20
    t = clock()
    with torch.no_grad():
        for i in range(n_loop):
            z = ddim_invert(model.unet, x[i:i + 1].to(model.device), model.scheduler, n_inv, t0=t0)
            ddim_generate(result.tuned.unet, z, model.scheduler, n_test, t0, batch_size=1)
    loop_ips = n_loop / (clock() - t)
    recon = ddim_generate(model.unet, latents, model.scheduler, n_test, t0, batch)
    speed = speed_figures(model, n_inv + n_test, batched_fp32_ips, batched_bf16_ips, loop_ips, clock)
    speed["bf16_vs_fp32_mean_abs_diff"] = round(float((edited_bf16 - edited).abs().mean()), 4)

    clip = load_clip(config.clip, device=model.device)
    notes: list[str] = []
    identity = identity_network(config, model, model.device, notes) if domain == "faces" else None
    direction = DiffusionClipLoss(clip, config.source, config.target).to(model.device)
    m = measure(clip, direction, x, recon, edited, identity)
    from lab.experiments.edit.diagnose import style_renderer

    sketches = style_renderer("sketch", model.channels)(x)
    out = {
        "model": config.model, "data": config.data, "label": spec["label"], "source": config.source,
        "target": config.target, "recipe": {k: getattr(config, k) for k in recipe}, "n_edited": len(x),
        "edited_images": ("validation: training images the fine-tuning did not use" if args.validation
                          else "test"),
        "n_train": config.n_train, "command": config.to_command(),
        "target_style_fraction": round(judges.style_fraction(edited), 4),
        "label_kept_fraction": round(judges.label_kept(edited, labels), 4),
        "landed_fraction": round(judges.landed(edited, labels), 4),
        "original_sketch_fraction": round(judges.style_fraction(x), 4),
        "procedural_sketch_fraction": round(judges.style_fraction(sketches), 4),
        "label_judge_on_procedural_sketches": round(judges.label_kept(sketches, labels), 4),
        **judges.summary(),
        "inversion_mse": m["inversion_mse"], "clip_direction_before": m["clip_direction_before"],
        "clip_direction_after": m["clip_direction_after"],
        **speed, "edit_batch_size": batch,
        "finetune_seconds": result.metrics["finetune_seconds"], "judge_seconds": round(judge_seconds, 1),
    }
    if identity is not None:
        out["same_person"] = m.get(identity.kept_metric)
    rows = [("original", x), ("reconstruction", recon), ("edited", edited)]
    if not args.no_diagnose:
        n_diag = 32 if quick else 64
        log(f"{domain}: pixel diagnostic")
        pixels, history = clip_pixel_edit(clip, x[:n_diag], config.source, config.target,
                                          views=config.clip_views or 4, lambda_l1=args.pixel_l1,
                                          steps=150 if quick else 300, seed=args.seed)
        path = path_cosines(clip, x[:n_diag], sketches[:n_diag], direction.text_direction)
        out.update({"clip_pixel_style_fraction": round(judges.style_fraction(pixels), 4),
                    "clip_pixel_label_kept": round(judges.label_kept(pixels, labels[:n_diag]), 4),
                    "clip_pixel_landed": round(judges.landed(pixels, labels[:n_diag]), 4),
                    "clip_pixel_cos": round(history[-1]["cos"], 4),
                    "clip_pixel_cos_procedural": round(path[1.0], 4),   # the path's end: the sketches themselves
                    "clip_path_cos": {str(a): round(c, 4) for a, c in path.items()},
                    "clip_pixel_settings": {"steps": history[-1]["step"], "lambda_l1": args.pixel_l1,
                                            "views": config.clip_views or 4, "lr": 0.01, "n": n_diag}})
        log(f"{domain}: oracle diagnostic")
        train = load_dataset(config.data, config.split, size=model.size, channels=model.channels,
                             limit=config.n_train, seed=config.seed).to_float()
        settings = FinetuneSettings(t0=t0, n_train_step=config.n_train_step, iterations=config.iterations,
                                    lr=config.lr, batch_size=config.batch_size, seed=config.seed)
        tuned_o, _ = oracle_finetune(model, train, "sketch", settings, n_inv)
        oracle, _ = edit_batched(model.unet, tuned_o, model.scheduler, x, t0, n_inv, n_test, batch, latents=latents)
        out.update({"oracle_style_fraction": round(judges.style_fraction(oracle), 4),
                    "oracle_label_kept": round(judges.label_kept(oracle, labels), 4),
                    "oracle_landed": round(judges.landed(oracle, labels), 4)})
        rows += [("CLIP on pixels", torch.cat([pixels, x[n_diag:]])), ("oracle fine-tune", oracle)]
    k = min(16, len(x))
    scale = max(1, 56 // model.size)
    grid = image_grid(torch.cat([r[1][:k] for r in rows]), nrow=k, scale=scale)
    label_rows(grid, [r[0] for r in rows], cell=model.size * scale).save(run.add(f"{domain}-grid.png"))
    out["grid"] = str(run.path(f"{domain}-grid.png"))
    out["targets_met"] = {"target_style_fraction": out["target_style_fraction"] >= STYLE_TARGET,
                          "false_target_rate_max": out["false_target_rate_max"] <= FALSE_TARGET}
    return out


def speed_figures(model, calls: int, fp32_ips: float, bf16_ips: float, loop_ips: float, clock) -> dict:
    """Throughputs, speed-ups and MFU: achieved FLOP/s (the UNet's FLOPs counted once × network calls per edit)
    over this machine's dense-matmul peak at the same dtype and thread count, measured on the same clock."""
    import torch

    from lab.metrics.speed import matmul_peak, mfu, unet_flops

    flops = unet_flops(model.unet, model.size, model.channels) * calls
    peak32 = matmul_peak(model.device, torch.float32, clock=clock)
    peak16 = matmul_peak(model.device, torch.bfloat16, clock=clock)
    best = max(fp32_ips, bf16_ips)
    return {"batched_images_per_s": round(best, 3), "batched_fp32_images_per_s": round(fp32_ips, 3),
            "batched_bf16_images_per_s": round(bf16_ips, 3), "loop_images_per_s": round(loop_ips, 3),
            "speedup_batched": round(best / loop_ips, 2), "speedup_batched_fp32": round(fp32_ips / loop_ips, 2),
            "gflop_per_edit": round(flops / 1e9, 3), "peak_gflops_fp32": round(peak32 / 1e9, 1),
            "peak_gflops_bf16": round(peak16 / 1e9, 1),
            "mfu_batched_edit": round(max(mfu(fp32_ips, flops, peak32), mfu(bf16_ips, flops, peak16)), 3),
            "mfu_batched_edit_fp32": round(mfu(fp32_ips, flops, peak32), 3),
            "mfu_batched_edit_bf16": round(mfu(bf16_ips, flops, peak16), 3),
            "mfu_per_image": round(mfu(loop_ips, flops, peak32), 3)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--clip", default="clip-lab")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a digit recipe setting (an EditConfig field), e.g. --set lr=1e-4 (repeatable)")
    p.add_argument("--faces-set", action="append", default=[], metavar="KEY=VALUE", help="the same for faces")
    p.add_argument("--n-edit", type=int, default=None, help="edited test images (default 500 / 200, quick 64)")
    p.add_argument("--pixel-l1", type=float, default=0.1, help="λ_L1 of the pixel diagnostic")
    p.add_argument("--no-diagnose", action="store_true", help="skip the pixel and oracle diagnostics")
    p.add_argument("--validation", action="store_true",
                   help="edit and judge training images the fine-tuning did not use (to choose a recipe) instead "
                        "of test images")
    p.add_argument("--no-faces", action="store_true", help="digits only")
    p.add_argument("--faces-only", action="store_true", help="faces only")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="auto")
    args = p.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from lab.config import cpu_name
    from lab.device import resolve_device
    from lab.models.store import list_models
    from lab.runs import recorded

    started = time.time()
    out = {"bench": "edit", "quick": args.quick, "clip": args.clip}
    with recorded("bench-edit", {k: v for k, v in vars(args).items()}, command="python " + " ".join(sys.argv)) as run:
        if not args.faces_only:
            out.update(run_domain("digits", args, run))
        if args.no_faces:
            out["faces"] = None
        elif DOMAINS["faces"]["model"] not in list_models("ddpm"):
            out["faces"], out["faces_note"] = None, f"checkpoints/{DOMAINS['faces']['model']} is missing"
        else:
            out["faces"] = run_domain("faces", args, run)
        out.update({"device": str(resolve_device(args.device)), "cpu": cpu_name(), "threads": args.threads,
                    "throughput_clock": f"process CPU time, {args.threads} thread(s)",
                    "run": str(run.dir), "wall_seconds": round(time.time() - started, 1)})
        run.save_json("bench.json", out)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
