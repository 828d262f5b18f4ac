"""``python -m lab dann``: where should the gradient reversal layer go? The DANN tab from the terminal.

    python -m lab dann --task usps-mnist --backbone lenet --placements none,stage1,stage2,stage3 --seeds 0,1,2
    python -m lab dann --task officehome --officehome ~/data/OfficeHome --backbone resnet50 --size 224
    python -m lab dann --config runs/<run>/config.json        # repeat a saved comparison
"""
from __future__ import annotations

import shlex
import sys
from dataclasses import asdict
from pathlib import Path

from lab.commands.registry import command, config_values
from lab.errors import LabError


def _int_list(text: str) -> list[int]:
    try:
        return [int(v) for v in text.replace(";", ",").split(",") if v.strip()]
    except ValueError:
        raise LabError(f"Expected whole numbers separated by commas, e.g. 0,1,2 (got {text!r}).") from None


def _args(p) -> None:
    from lab.experiments.dann import OFFICE_HOME_DOMAINS, TASKS
    from lab.models.dann import BACKBONES, PLACEMENTS

    p.add_argument("--config", type=Path, default=None,
                   help="a saved config.json (from a run folder or the tab's export); other options override it")
    p.add_argument("--task", choices=list(TASKS), default=None, help="default: usps-mnist")
    p.add_argument("--backbone", choices=list(BACKBONES), default=None, help="default: lenet")
    p.add_argument("--placements", default=None,
                   help=f"comma-separated GRL placements from {', '.join(PLACEMENTS)} (default: none,stage1,stage2,stage3)")
    p.add_argument("--seeds", default=None, help="comma-separated seeds, e.g. 0,1,2 (default: 0)")
    p.add_argument("--weights", choices=["auto", "imagenet", "scratch"], default=None,
                   help="ResNet start: ImageNet weights when they can be had (auto), required, or from scratch")
    p.add_argument("--size", type=int, default=None, help="image size (default: 32 for digits, 224 for Office-Home)")
    p.add_argument("--officehome", default=None, help="Office-Home folder holding Art/, Clipart/, Product/, Real_World/")
    p.add_argument("--officehome-source", choices=OFFICE_HOME_DOMAINS, default=None, help="default: Clipart")
    p.add_argument("--officehome-target", choices=OFFICE_HOME_DOMAINS, default=None, help="default: Real_World")
    p.add_argument("--source-limit", type=int, default=None, help="a class-balanced subset of the source training set")
    p.add_argument("--target-limit", type=int, default=None, help="a subset of the unlabelled target training set")
    p.add_argument("--test-limit", type=int, default=None, help="a subset of each test set (default: all)")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--steps-per-epoch", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None, help="per domain")
    p.add_argument("--optimizer", choices=["sgd", "adam"], default=None)
    p.add_argument("--lr", type=float, default=None, help="μ₀ (default 0.01)")
    p.add_argument("--lr-schedule", choices=["annealed", "constant"], default=None,
                   help="annealed: μ₀/(1+10p)^0.75 (the paper's)")
    p.add_argument("--weight-decay", type=float, default=None)
    p.add_argument("--lambda-schedule", choices=["dann", "constant"], default=None,
                   help="dann: λ_max(2/(1+exp(−10p))−1); constant: λ_max throughout (the seed: 0.001)")
    p.add_argument("--lambda", dest="lambda_max", type=float, default=None, help="λ_max (default 1)")
    p.add_argument("--no-augment", action="store_true", help="no random affine warps of source images")
    p.add_argument("--augment-scale", type=float, default=None, help="± relative scale of the warps (default 0.15)")
    p.add_argument("--source-only-sees-target", action="store_true",
                   help="the 'none' run also forwards target batches (BatchNorm statistics of both domains)")
    p.add_argument("--eval-limit", type=int, default=None, help="test images per domain for the per-epoch curves "
                   "(0: all; final numbers always use the full test sets)")
    p.add_argument("--no-tsne", action="store_true", help="skip the t-SNE figures of the best run")
    p.add_argument("--device", default=None, help="auto (default), cpu, cuda, cuda:N, mps")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: all cores)")


def config_from(args):
    from lab.experiments.dann import DANNConfig

    overrides = {"task": args.task, "backbone": args.backbone, "weights": args.weights, "size": args.size,
                 "officehome_path": args.officehome, "officehome_source": args.officehome_source,
                 "officehome_target": args.officehome_target, "source_limit": args.source_limit,
                 "target_limit": args.target_limit, "test_limit": args.test_limit, "epochs": args.epochs,
                 "steps_per_epoch": args.steps_per_epoch, "batch_size": args.batch_size,
                 "optimizer": args.optimizer, "lr": args.lr, "lr_schedule": args.lr_schedule,
                 "weight_decay": args.weight_decay, "lambda_schedule": args.lambda_schedule,
                 "lambda_max": args.lambda_max, "augment_scale": args.augment_scale, "device": args.device}
    values = config_values(args.config, overrides)
    if args.placements:
        values["placements"] = [p.strip() for p in args.placements.split(",") if p.strip()]
    if args.seeds:
        values["seeds"] = _int_list(args.seeds)
    if args.no_augment:
        values["augment"] = False
    if args.source_only_sees_target:
        values["source_only_sees_target"] = True
    if args.eval_limit is not None:
        values["eval_limit"] = args.eval_limit or None
    config = DANNConfig.from_dict(values)
    config.validate()
    return config


@command("dann", "DANN: train with the gradient reversal layer at each placement, compare source/target accuracy",
         _args)
def _dann(args, progress) -> dict:
    from lab.experiments.dann import run_dann
    from lab.runs import recorded
    from lab.viz.export import save_figure

    config = config_from(args)
    cmd = "python -m lab " + shlex.join(sys.argv[1:])
    with recorded("dann", asdict(config), command=cmd) as run:
        result = run_dann(config, progress=progress, record=run)
        result.save(run)
        if not args.no_tsne:
            label = result.best_run_label()
            for color_by in ("domain", "class"):
                save_figure(result.tsne_figure(label, color_by), run.path(f"tsne_{color_by}"))
    best = result.best()
    return {"run": str(run.dir), "task": config.label(), "weights": result.weights,
            "input_pad": result.input_pad["pad"], "table": result.display_rows(),
            "best_placement": best["placement"], "target_acc_best": best["target_acc_mean"]}
