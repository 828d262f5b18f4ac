"""Class-conditional sampling from the terminal.

Training (``python -m lab train <kind>``, lab/commands/train.py):
  label-embed       label embedding added to the time embedding (method 1)
  cfg               the same with label dropout (methods 1 and 5: classifier-free guidance)
  condnorm          conditional BatchNorm / GroupNorm in the resnet blocks (method 2)
  auxclf            unconditional denoiser + jointly trained classifier head (method 3)
  noisy-classifier  p(y | x_t, t) for classifier guidance of an unconditional DDPM (method 4)
  judge             a clean classifier of the same labels, the independent judge (UTKFace age/race, CelebA)

Sampling and measuring:
  python -m lab conditional --method cfg --scale 3                  # grid + accuracy, FID, t-SNE
  python -m lab conditional --method cfg --sweep 0,1,2,3,5          # guidance-scale sweep
  python -m lab conditional --compare --models cfg=my-cfg           # the five methods on the same noise
  python -m lab conditional --preset faces                          # one row per gender × age (UTKFace 64 px)
"""
from __future__ import annotations

import argparse

from lab.commands.registry import command, threads_arg
from lab.experiments.conditional.config import CompareConfig, ConditionalConfig, SweepConfig
from lab.experiments.conditional.methods import METHODS
from lab.experiments.conditional.presets import PRESETS, preset
from lab.params import specs


def _method_defaults(args) -> dict:
    """The preset's values (``--preset``), then the model and scale that suit the method when neither the preset
    nor the command line gave them: its shipped model, its best scale. Options given on the line win."""
    out = dict(preset(args.preset).values) if getattr(args, "preset", None) else {}
    method = METHODS.get(getattr(args, "method", out.get("method", ConditionalConfig.method)))
    if method is None:
        return out
    if not hasattr(args, "model") and "model" not in out:
        out["model"] = method.default_model
    if not hasattr(args, "scale") and "scale" not in out:
        out["scale"] = method.default_scale
    return out


def _conditional_args(p: argparse.ArgumentParser) -> None:
    SweepConfig.add_arguments(p, defaults={"model": "the method's shipped model",
                                           "scale": "the method's best shipped scale"})
    CompareConfig.add_arguments(p, skip=tuple(s.name for s in specs(SweepConfig)))
    p.add_argument("--preset", default=None, choices=list(PRESETS),
                   help="ready-made settings: " + "; ".join(f"{p.name}: {p.note}" for p in PRESETS.values()))
    p.add_argument("--compare", action="store_true", help="compare the methods (--methods, --models, --scales) on "
                                                          "the same noise")
    threads_arg(p)


@command("conditional", "class-conditional grid (one row per class) with conditional accuracy, FID and t-SNE; "
                        "--compare for the five methods, --sweep for guidance scales", _conditional_args)
def _conditional(args, progress) -> dict:
    from lab.runs import recorded

    if args.compare:
        from lab.experiments.conditional.compare import run_compare

        config = CompareConfig.from_args(args).validate()
        with recorded("conditional-compare", config.__dict__, command=config.to_command()) as run:
            result = run_compare(config, progress=progress)
            result.save(run)
        return {"run": str(run.dir), "rows": result.rows}
    if hasattr(args, "scales"):
        from lab.experiments.conditional.sweep import run_sweep

        config = SweepConfig.from_args(args, base=_method_defaults(args)).validate()
        with recorded("conditional-sweep", config.__dict__, command=config.to_command()) as run:
            result = run_sweep(config, progress=progress)
            result.save(run)
        return {"run": str(run.dir), "rows": result.rows, "best": result.best()}
    from lab.experiments.conditional.sample import run_grid

    config = ConditionalConfig.from_args(args, base=_method_defaults(args)).validate()
    with recorded("conditional", config.__dict__, command=config.to_command()) as run:
        result = run_grid(config, progress=progress)
        result.save(run)
    summary = result.summary()
    summary.pop("per_class", None)
    return {"run": str(run.dir), "grid": str(run.path("grid.png")), **summary, "per_class": result.table()}
