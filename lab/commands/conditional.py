"""Class-conditional sampling from the terminal.

Training (``python -m lab train <kind>``, lab/commands/train.py):
  label-embed       label embedding added to the time embedding (method 1)
  cfg               the same with label dropout (methods 1 and 5: classifier-free guidance)
  condnorm          conditional BatchNorm / GroupNorm in the resnet blocks (method 2)
  auxclf            unconditional denoiser + jointly trained classifier head (method 3)
  noisy-classifier  p(y | x_t, t) for classifier guidance of an unconditional DDPM (method 4)
  judge             a clean classifier of the same labels, the independent judge (UTKFace age/race, CelebA)

Sampling and measuring: ``python -m lab conditional`` (grid + metrics, ``--compare``, ``--sweep``).
"""
from __future__ import annotations

import argparse

from lab.commands.registry import command, command_line, common_args


# --- sampling, comparing, sweeping -------------------------------------------------------------

def _pairs(text: str | None, what: str) -> dict[str, str]:
    from lab.errors import LabError
    from lab.experiments.conditional import METHODS

    out = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep or key.strip() not in METHODS:
            raise LabError(f"--{what} takes METHOD=VALUE pairs separated by commas with METHOD one of "
                           f"{', '.join(METHODS)} (got {part!r}).")
        out[key.strip()] = value.strip()
    return out


def _conditional_args(p: argparse.ArgumentParser) -> None:
    from lab.experiments.conditional import METHODS

    p.add_argument("--method", default="cfg", choices=list(METHODS))
    p.add_argument("--model", default=None, help="model name or folder (default: the shipped one for the method; "
                                                 "classifier-guidance: the unconditional DDPM)")
    p.add_argument("--classifier", default="noisy-classifier-mnist", help="classifier-guidance: the noisy classifier")
    p.add_argument("--scale", type=float, default=None, help="w (cfg) or s (classifier-guidance, auxclf)")
    p.add_argument("--sampler", default="ddim", choices=["ddim", "ddpm"])
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--eta", type=float, default=0.0)
    p.add_argument("--per-class", type=int, default=10, help="samples per class (grid columns show up to 10)")
    p.add_argument("--classes", default="all", help="'all' or class names/numbers separated by commas")
    p.add_argument("--judge", default="auto", help="the independent classifier (auto: trained on the same data)")
    p.add_argument("--no-fid", action="store_true")
    p.add_argument("--batch-size", type=int, default=250)
    p.add_argument("--sweep", default=None, help="guidance scales to sweep, e.g. 0,1,2,3,5")
    p.add_argument("--compare", action="store_true", help="all five methods on the same noise")
    p.add_argument("--models", default=None, help="--compare: METHOD=MODEL pairs, e.g. cfg=my-cfg,condnorm=my-cn")
    p.add_argument("--scales", default=None, help="--compare: METHOD=SCALE pairs, e.g. cfg=3,classifier-guidance=5")
    common_args(p)


@command("conditional", "class-conditional grid (one row per class) with conditional accuracy, FID and t-SNE; "
                        "--compare for the five methods, --sweep for guidance scales", _conditional_args)
def _conditional(args, progress) -> dict:
    from dataclasses import replace

    from lab.experiments.conditional import (DEFAULT_MODELS, DEFAULT_SCALES, ConditionalConfig, config_dict,
                                             default_entries, parse_scales, run_compare, run_grid, run_sweep)
    from lab.runs import recorded

    config = ConditionalConfig(method=args.method, model=args.model or DEFAULT_MODELS[args.method],
                               classifier=args.classifier,
                               scale=args.scale if args.scale is not None else DEFAULT_SCALES.get(args.method, 1.0),
                               sampler=args.sampler, steps=args.steps, eta=args.eta, per_class=args.per_class,
                               classes=args.classes, judge=args.judge, fid=not args.no_fid, seed=args.seed,
                               device=args.device or "auto", batch_size=args.batch_size)
    cmd = command_line()
    if args.compare:
        scales = {k: float(v) for k, v in _pairs(args.scales, "scales").items()}
        entries = default_entries(scales)
        for e in entries:
            e.model = _pairs(args.models, "models").get(e.method, e.model)
            e.classifier = args.classifier
        with recorded("conditional-compare", {**config_dict(config), "entries": [e.__dict__ for e in entries]},
                      command=cmd) as run:
            result = run_compare(entries, replace(config, tsne=False), progress=progress)
            result.save(run)
        return {"run": str(run.dir), "rows": result.rows}
    if args.sweep:
        values = parse_scales(args.sweep)
        with recorded("conditional-sweep", {**config_dict(config), "scales": values}, command=cmd) as run:
            result = run_sweep(config, values, progress=progress)
            result.save(run)
        return {"run": str(run.dir), "rows": result.rows, "best": result.best()}
    with recorded("conditional", config_dict(config), command=cmd) as run:
        result = run_grid(config, progress=progress)
        result.save(run)
    summary = result.summary()
    summary.pop("per_class", None)
    return {"run": str(run.dir), "grid": str(run.path("grid.png")), **summary,
            "per_class": result.table()}
