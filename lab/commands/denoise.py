"""``python -m lab sample`` and ``python -m lab evaluate``: the Denoising-steps experiment from the terminal."""
from __future__ import annotations

from lab.cli import command, common_args
from lab.experiments.denoise import DenoiseConfig, run_denoise, run_quality, run_step_sweep
from lab.metrics import FEATURE_NETWORKS
from lab.runs import recorded


def _sampler_args(p) -> None:
    p.add_argument("--model", default="ddpm-mnist", help="shipped model name or model folder")
    p.add_argument("--sampler", default=None, choices=["ddpm", "ddim", "langevin"],
                   help="default: ddim for DDPM models, langevin for score models")
    p.add_argument("--steps", type=int, default=50, help="DDPM/DDIM steps")
    p.add_argument("--eta", type=float, default=0.0, help="DDIM η")
    p.add_argument("--langevin-steps", type=int, default=DenoiseConfig.langevin_steps, help="Langevin steps per noise level")
    p.add_argument("--langevin-eps", type=float, default=2e-5, help="Langevin ε")
    p.add_argument("--no-denoise", action="store_true", help="skip Langevin's final denoising step")
    p.add_argument("--n", type=int, default=10, help="number of images (grid rows)")
    p.add_argument("--snapshots", type=int, default=10, help="grid columns")
    p.add_argument("--batch-size", type=int, default=250)
    common_args(p)


def config_from(args) -> DenoiseConfig:
    from lab.models.store import load_diffusion

    sampler = args.sampler
    if sampler is None:
        sampler = "langevin" if load_diffusion(args.model).kind == "score" else "ddim"
    return DenoiseConfig(model=args.model, sampler=sampler, steps=args.steps, eta=args.eta,
                         langevin_steps=args.langevin_steps, langevin_eps=args.langevin_eps,
                         langevin_denoise=not args.no_denoise, num_images=args.n, snapshots=args.snapshots,
                         seed=args.seed, device=args.device or "auto", batch_size=args.batch_size)


def _sample_args(p) -> None:
    _sampler_args(p)
    p.add_argument("--sweep", default=None, help="comma-separated step counts, e.g. 10,100,1000")
    p.add_argument("--metric-images", type=int, default=0,
                   help="--sweep: extra images per step count for the quality measure (0: the grid's own)")


@command("sample", "denoising-trajectory grid (rows: images, columns: steps), or a step-count sweep",
         _sample_args)
def _sample(args, progress) -> dict:
    import sys

    config = config_from(args)
    cmd = "python -m lab " + " ".join(sys.argv[1:])
    if args.sweep:
        counts = [int(c) for c in args.sweep.split(",") if c.strip()]
        with recorded("denoise-sweep", {**config.__dict__, "step_counts": counts, "metric_images": args.metric_images},
                      command=cmd) as run:
            result = run_step_sweep(config, counts, metric_images=args.metric_images or None, progress=progress)
            result.save(run)
        return {"run": str(run.dir), "rows": result.rows()}
    with recorded("denoise", config.__dict__, command=cmd) as run:
        result = run_denoise(config, progress=progress)
        result.save(run)
    return {"run": str(run.dir), "grid": str(run.path("grid.png")), "seconds": round(result.seconds, 3)}


def _evaluate_args(p) -> None:
    _sampler_args(p)
    p.add_argument("--fid-n", type=int, default=1000, help="samples (and real images) for FID")
    p.add_argument("--features", default="classifier", choices=FEATURE_NETWORKS,
                   help="FID features: the lab's digit classifier, Inception (online or LAB_INCEPTION_WEIGHTS), "
                        "or the face-api descriptor (faces)")
    p.add_argument("--reference", default=None, help="real dataset to compare with (default: the model's)")
    p.add_argument("--no-floor", action="store_true")
    p.add_argument("--write-card", action="store_true", help="store the metrics in the model folder's card")


@command("evaluate", "FID/KID (with the real-vs-real floor) and classifier quality of a model's samples",
         _evaluate_args)
def _evaluate(args, progress) -> dict:
    import sys
    from pathlib import Path

    from lab.models.store import resolve_model_path, update_metrics

    config = config_from(args)
    cmd = "python -m lab " + " ".join(sys.argv[1:])
    with recorded("denoise-quality", {**config.__dict__, "n": args.fid_n}, command=cmd) as run:
        result = run_quality(config, n=args.fid_n, reference=args.reference, feature_network=args.features,
                             with_floor=not args.no_floor, progress=progress)
        result.save(run)
    metrics = {"fid": result.fid["fid"], "fid_floor": result.floor["fid"] if result.floor else None,
               "fid_n": result.n, "fid_features": result.fid["feature_network"],
               "kid": result.fid["kid"], "confident_fraction": result.quality.get("confident_fraction"),
               "class_entropy": result.quality.get("class_entropy"), "sampler": config.sampler,
               "sampler_steps": config.steps if config.sampler != "langevin" else config.langevin_steps,
               "evaluate_command": cmd}
    if args.write_card:
        where = resolve_model_path(args.model)
        if isinstance(where, Path):  # a face model has no class measures: the card lists what was measured
            update_metrics(where, {k: v for k, v in metrics.items() if v is not None})
    return {"run": str(run.dir), **metrics}
