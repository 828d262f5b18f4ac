"""``python -m lab discovery <action>``: the Domain-discovery experiment from the terminal.

  reconstruct  invert unseen (and in-domain) images at each t0 and generate them back: MSE / PSNR
  stats        norms and pairwise angles of the inverted latents vs Gaussian noise, separability
  discover     new latents (slerp / mix / gaussian) through the geometric filter, generated; FID, copies
  finetune     the tuning baseline: fine-tune a copy on the few-shot set, sample, the same metrics

Example: python -m lab discovery discover --model ddpm-mnist --target fashion --shots 100 --count 500
"""
from __future__ import annotations

import argparse
import shlex
import sys

from lab.commands.registry import command, common_args
from lab.errors import LabError


def _tolerance(text: str):
    if str(text).lower() in ("off", "none"):
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a number or 'off', not {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("tolerances must not be negative")
    return value


def _arguments(p: argparse.ArgumentParser) -> None:
    from lab.data import STYLES
    from lab.experiments.discovery import TARGETS

    p.add_argument("action", choices=["reconstruct", "stats", "discover", "finetune"])
    p.add_argument("--model", default="ddpm-mnist", help="the frozen DDPM: a shipped name or a model folder")
    p.add_argument("--target", default="fashion", choices=TARGETS, help="the unseen domain")
    p.add_argument("--style", default="plain", choices=STYLES, help="a style applied to the target dataset")
    p.add_argument("--target-path", default=None, help="folder of images for --target folder")
    p.add_argument("--files", nargs="+", default=None, help="image files as the unseen domain (sets --target upload)")
    p.add_argument("--shots", type=int, default=100, help="few-shot target images")
    p.add_argument("--in-domain", default="auto", help="contrast data: auto (the model's), none, or a dataset")
    p.add_argument("--t0", type=int, default=900, help="inversion depth")
    p.add_argument("--steps", type=int, default=50, help="DDIM steps between 0 and t0 (n_inv_step)")
    p.add_argument("--classifier", default="auto", help="FID/diversity features: auto, none, or a classifier")
    p.add_argument("--batch-size", type=int, default=250)
    p.add_argument("--t0s", default="300,600,900", help="reconstruct: comma-separated t0 values")
    p.add_argument("--n", type=int, default=16, help="reconstruct: images per domain")
    p.add_argument("--method", default="slerp", choices=["slerp", "mix", "gaussian"], help="discover: proposals")
    p.add_argument("--count", type=int, default=64, help="discover/finetune: samples to generate")
    p.add_argument("--norm-tol", type=_tolerance, default=2.0, help="discover: ± %% of the mean norm, or off")
    p.add_argument("--origin-tol", type=_tolerance, default=2.0, help="discover: ± degrees, or off")
    p.add_argument("--pair-tol", type=_tolerance, default=2.0, help="discover: ± degrees, or off")
    p.add_argument("--margin", type=float, default=0.2, help="discover: slerp t in [margin, 1 - margin]")
    p.add_argument("--mix-count", type=int, default=3, help="discover: latents per mix")
    p.add_argument("--budget", type=int, default=20_000, help="discover: most candidates to propose")
    p.add_argument("--fid-n", type=int, default=None, help="samples used for FID (default: all)")
    p.add_argument("--no-metrics", action="store_true", help="skip FID, diversity and the copy check")
    p.add_argument("--train-steps", type=int, default=300, help="finetune: steps")
    p.add_argument("--lr", type=float, default=1e-4, help="finetune: learning rate")
    p.add_argument("--train-batch", type=int, default=32, help="finetune: batch size")
    p.add_argument("--save", action="store_true", help="finetune: keep the fine-tuned model in the run folder")
    common_args(p)


@command("discovery", "reconstruct and expand an unseen domain with a frozen diffusion model (Zhu et al.)",
         _arguments)
def _discovery(args, progress) -> dict:
    from lab.experiments.discovery import (DiscoveryConfig, DiscoverySettings, FinetuneSettings, parse_t0s,
                                           run_discover, run_finetune, run_reconstruct, run_stats)
    from lab.runs import recorded

    config = DiscoveryConfig(model=args.model, target="upload" if args.files else args.target,
                             target_style=args.style, target_path=args.target_path, shots=args.shots,
                             in_domain=args.in_domain, t0=args.t0, steps=args.steps, classifier=args.classifier,
                             seed=args.seed, device=args.device or "auto", batch_size=args.batch_size)
    cmd = "python -m lab " + shlex.join(sys.argv[1:])
    files = args.files
    if args.action == "reconstruct":
        t0s = parse_t0s(args.t0s)
        with recorded("discovery-reconstruct", {**config.__dict__, "t0s": t0s, "n_images": args.n},
                      command=cmd) as run:
            result = run_reconstruct(config, t0s, args.n, files=files, progress=progress)
            result.save(run)
        _print_notes(result.notes)
        return {"run": str(run.dir), "rows": result.rows}
    if args.action == "stats":
        with recorded("discovery-stats", config.__dict__, command=cmd) as run:
            result = run_stats(config, files=files, progress=progress)
            result.save(run)
        _print_notes(result.notes)
        return {"run": str(run.dir), "rows": result.rows, "separability": result.separability}
    if args.action == "discover":
        settings = DiscoverySettings(
            method=args.method, count=args.count,
            norm_tolerance=None if args.norm_tol is None else args.norm_tol / 100.0,
            origin_tolerance=args.origin_tol, pair_tolerance=args.pair_tol, t_margin=args.margin,
            mix_count=args.mix_count, max_candidates=args.budget, metrics=not args.no_metrics, fid_n=args.fid_n)
        with recorded("discovery", {**config.__dict__, **settings.__dict__}, command=cmd) as run:
            result = run_discover(config, settings, files=files, progress=progress)
            result.save(run)
        _print_notes(result.notes)
        return {"run": str(run.dir), "samples": str(run.path("discovered.png")), **_short(result.summary())}
    if args.train_steps < 1:
        raise LabError("--train-steps must be at least 1.")
    settings = FinetuneSettings(train_steps=args.train_steps, lr=args.lr, batch_size=args.train_batch,
                                count=args.count, metrics=not args.no_metrics, fid_n=args.fid_n, save=args.save)
    with recorded("discovery-finetune", {**config.__dict__, **settings.__dict__}, command=cmd) as run:
        result = run_finetune(config, settings, files=files, progress=progress)
        result.info["command"] = cmd
        result.save(run, keep_model=args.save)
    _print_notes(result.notes)
    return {"run": str(run.dir), "samples": str(run.path("finetuned_samples.png")),
            "train_seconds": round(result.train_seconds, 1), "sample_seconds": round(result.sample_seconds, 1),
            "rows": result.rows()}


def _short(summary: dict) -> dict:
    metrics = summary.get("metrics") or {}
    fid, floor = metrics.get("fid"), metrics.get("floor")
    out = {k: summary[k] for k in ("accepted", "proposed", "acceptance", "targets", "t0_used", "seconds")}
    if metrics:
        out.update({"fid": fid and fid["fid"], "fid_n": fid and fid["n"], "fid_floor": floor and floor["fid"],
                    "nn_copy_fraction": metrics["copies"]["nn_copy_fraction"], "diversity": metrics["diversity"]})
    return out


def _print_notes(notes: list[str]) -> None:
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
