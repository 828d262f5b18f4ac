"""``python -m lab edit``: DiffusionCLIP editing from the terminal (the editing tab's engine).

  python -m lab edit --model ddpm-mnist --source "a digit" --target "a sketch of a digit" --n-train 8
  python -m lab edit --model ddpm-mnist --target "a sketch of a digit" --edit-split test --edit-n 200
  python -m lab edit --with-saved diffusionclip-mnist-sketch --edit-n 16       # no fine-tuning
  python -m lab edit --sweep-param lambda_l1 --sweep-values 0,0.1,0.3,1        # the trade-off sweep

Data and prompts not given suit the backbone (faces for a face DDPM).
"""
from __future__ import annotations

import shlex

from lab.commands.registry import command, threads_arg
from lab.experiments.edit.config import EditConfig, SavedEditConfig, TradeoffConfig
from lab.experiments.edit.recipes import RECIPE_FIELDS
from lab.params import specs

SUITED = "the backbone's (its data, prompts and recipe: lab/experiments/edit/recipes.py), else {}"


def _args(p) -> None:
    TradeoffConfig.add_arguments(p, defaults={name: SUITED.format(getattr(EditConfig, name))
                                              for name in ("data", "source", "target", *RECIPE_FIELDS)})
    shared = tuple(s.name for s in specs(EditConfig))
    SavedEditConfig.add_arguments(p, skip=shared, defaults={"with_saved": None})
    p.add_argument("--image", action="append", default=None,
                   help="edit (and fine-tune on) this image file instead of dataset images; repeatable")
    p.add_argument("--fit", action="store_true", help="--image: centre-crop/resize/convert to the model's format")
    threads_arg(p)


def _images(args, model: str):
    """The --image files as [-1, 1] tensors for ``model``, or None; and what repeats them on a command line."""
    if not args.image:
        return None, ""
    from lab.data.images import images_from_paths
    from lab.models.store import load_diffusion

    net = load_diffusion(model)
    extra = " ".join(f"--image {shlex.quote(f)}" for f in args.image) + (" --fit" if args.fit else "")
    return images_from_paths(args.image, net.size, net.channels, args.fit), extra


@command("edit", "DiffusionCLIP: fine-tune a DDPM copy with a directional CLIP loss and edit images by text", _args)
def _edit(args, progress) -> dict:
    if hasattr(args, "with_saved"):
        return _edit_saved(args, progress)
    if hasattr(args, "sweep_values") or hasattr(args, "sweep_param"):
        return _tradeoff(args, progress)
    from lab.experiments.edit.prompts import backbone_defaults
    from lab.experiments.edit.run import run_edit
    from lab.runs import recorded

    config = EditConfig.from_args(args, base=backbone_defaults(getattr(args, "model", EditConfig.model))).validate()
    uploads, extra = _images(args, config.model)
    with recorded("edit", config.__dict__, command=config.to_command(extra)) as run:
        result = run_edit(config, uploads=uploads, progress=progress)
        result.save(run)
    return {"run": str(run.dir), "grid": str(run.path("edit_grid.png")), "saved_to": result.saved_to,
            **result.metrics, "notes": result.notes}


def _edit_saved(args, progress) -> dict:
    from lab.experiments.edit.prompts import backbone_defaults
    from lab.experiments.edit.saved import edit_saved
    from lab.runs import recorded

    suits = {k: v for k, v in backbone_defaults(args.with_saved).items() if k == "data"}
    config = SavedEditConfig.from_args(args, base=suits).validate()
    uploads, extra = _images(args, config.with_saved)
    with recorded("edit-saved", {**config.__dict__, "images": args.image},
                  command=config.to_command(extra)) as run:
        result = edit_saved(config, uploads, progress)
        result.save(run)
    return {"run": str(run.dir), "grid": str(run.path("edit_grid.png")), "edited": len(result.edited),
            "seconds": round(result.seconds, 2)}


def _tradeoff(args, progress) -> dict:
    from lab.experiments.edit.prompts import backbone_defaults
    from lab.experiments.edit.tradeoff import run_tradeoff
    from lab.runs import recorded

    if args.image:
        from lab.errors import LabError

        raise LabError("The trade-off sweep judges dataset images against their labels: leave --image out.")
    config = TradeoffConfig.from_args(args, base=backbone_defaults(getattr(args, "model", EditConfig.model)))
    config.validate()
    with recorded("edit-tradeoff", config.__dict__, command=config.to_command()) as run:
        result = run_tradeoff(config, progress=progress)
        result.save(run)
    return {"run": str(run.dir), "figure": str(run.path("tradeoff.html")), "rows": result.rows,
            "verdict": result.verdict()}
