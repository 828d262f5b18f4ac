"""``python -m lab sample`` and ``python -m lab evaluate``: the Denoising-steps experiment from the terminal.

  python -m lab sample --model ddpm-mnist --sampler ddim --steps 50 --n 10      # trajectory grid
  python -m lab sample --model ddpm-mnist --sweep 10,100,1000                   # the seed's step-count sweep
  python -m lab evaluate --model ddpm-mnist --fid-n 1000 --write-card           # FID/KID + floor + quality
"""
from __future__ import annotations

from lab.commands.registry import command, threads_arg
from lab.experiments.denoise.config import DenoiseConfig, QualityConfig, SweepConfig, TSweepConfig


def _sampler(args) -> dict:
    """The sampler settings the model's card recommends when no sampler was given (``sampler_settings``: the
    card's ``sampling`` entry, else DDIM 50 for a DDPM, DPM-Solver 50 for a VE-SDE score model, annealed Langevin
    for an NCSN one); options given on the line win."""
    if hasattr(args, "sampler"):
        return {}
    from lab.experiments.denoise.compare import sampler_settings
    from lab.models.store import load_diffusion, model_kind

    name = getattr(args, "model", DenoiseConfig.model)
    if model_kind(name) == "gan":
        return {}  # a GAN samples with its generator: no sampler to choose
    model = load_diffusion(name)
    settings = sampler_settings({**model.info, "kind": model.kind})
    return {k: v for k, v in settings.items() if not hasattr(args, k)}


def _sample_args(p) -> None:
    SweepConfig.add_arguments(p)
    threads_arg(p)


@command("sample", "denoising-trajectory grid (rows: images, columns: steps), or a step-count sweep (--sweep)",
         _sample_args)
def _sample(args, progress) -> dict:
    from lab.runs import recorded

    if hasattr(args, "step_counts"):
        from lab.experiments.denoise.sample import run_step_sweep

        config = SweepConfig.from_args(args, base=_sampler(args)).validate()
        with recorded("denoise-sweep", config.__dict__, command=config.to_command()) as run:
            result = run_step_sweep(config, progress=progress)
            result.save(run)
        return {"run": str(run.dir), "rows": result.rows()}
    from lab.experiments.denoise.sample import run_denoise

    config = DenoiseConfig.from_args(args, base=_sampler(args)).validate()
    with recorded("denoise", config.__dict__, command=config.to_command()) as run:
        result = run_denoise(config, progress=progress)
        result.save(run)
    return {"run": str(run.dir), "grid": str(run.path("grid.png")), "seconds": round(result.seconds, 3)}


def _evaluate_args(p) -> None:
    QualityConfig.add_arguments(p)
    p.add_argument("--write-card", action="store_true", help="store the metrics in the model folder's card")
    threads_arg(p)


@command("evaluate", "FID/KID (with the real-vs-real floor) and classifier quality of a model's samples",
         _evaluate_args)
def _evaluate(args, progress) -> dict:
    from pathlib import Path

    from lab.experiments.denoise.quality import run_quality
    from lab.models.store import model_kind, resolve_model_path, update_metrics
    from lab.runs import recorded

    config = QualityConfig.from_args(args, base=_sampler(args)).validate()
    cmd = config.to_command()
    with recorded("denoise-quality", config.__dict__, command=cmd) as run:
        result = run_quality(config, n=config.fid_n, reference=config.reference, feature_network=config.features,
                             with_floor=config.floor, progress=progress)
        result.save(run)
    metrics = {"fid": result.fid["fid"], "fid_floor": result.floor["fid"] if result.floor else None,
               "fid_n": result.n, "fid_features": result.fid["feature_network"],
               "kid": result.fid["kid"], "confident_fraction": result.quality.get("confident_fraction"),
               "class_entropy": result.quality.get("class_entropy"), "sampler": config.sampler,
               "sampler_steps": config.steps if config.sampler != "langevin" else config.langevin_steps,
               **({"sampler": "generator", "sampler_steps": 1} if model_kind(config.model) == "gan" else {}),
               "evaluate_command": cmd}
    if args.write_card:
        where = resolve_model_path(config.model)
        if isinstance(where, Path):  # a face model has no class measures: the card lists what was measured
            update_metrics(where, {k: v for k, v in metrics.items() if v is not None})
    return {"run": str(run.dir), **metrics}


def _t_sweep_args(p) -> None:
    from pathlib import Path

    TSweepConfig.add_arguments(p)
    p.add_argument("--out", type=Path, default=None,
                   help="folder for the models, one per T (default: under LAB_CACHE_DIR/t-sweep; resumable)")
    threads_arg(p)


@command("t-sweep", "the seed's training-T sweep: one DDPM per T (10, 100, 1000), same steps; FID and grids per T",
         _t_sweep_args)
def _t_sweep(args, progress) -> dict:
    from lab.config import get_settings
    from lab.diffusion.cache import content_key
    from lab.experiments.denoise.tsweep import run_t_sweep, sweep_grid
    from lab.runs import recorded

    config = TSweepConfig.from_args(args).validate()
    folder = args.out or get_settings().cache_dir / "t-sweep" / content_key(config.__dict__)
    with recorded("denoise-t-sweep", config.__dict__, command=config.to_command()) as run:
        result = run_t_sweep(config, folder, progress=progress)
        result.save(run)
        sweep_grid(result).save(run.add("t_sweep.png"))
    return {"run": str(run.dir), "rows": result.rows, "grids": str(run.path("t_sweep.png"))}
