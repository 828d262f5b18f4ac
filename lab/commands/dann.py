"""``python -m lab dann``: where should the gradient reversal layer go? The DANN tab from the terminal.

    python -m lab dann --task usps-mnist --backbone lenet --placements none,stage1,stage2,stage3 --seeds 0,1,2
    python -m lab dann --task mnist-usps --placements none,stage2,stage3 --methods dann,cdan,cdan+e --seeds 0,1,2
    python -m lab dann --task officehome --officehome ~/data/OfficeHome --backbone resnet50 --size 224
    python -m lab dann --config runs/<run>/config.json        # repeat a saved comparison
    python -m lab dann --config runs/<run>/config.json --resume runs/<run>   # finish a stopped one
"""
from __future__ import annotations

from dataclasses import asdict

from lab.commands.registry import command, config_arg, saved_config, threads_arg
from lab.experiments.dann.config import DANNConfig


def _args(p) -> None:
    config_arg(p)
    DANNConfig.add_arguments(p)
    p.add_argument("--no-tsne", action="store_true", help="skip the t-SNE figures of the best run")
    p.add_argument("--resume", default=None, help="a stopped comparison's run folder: its finished runs are kept")
    threads_arg(p)


@command("dann", "DANN/CDAN: train with the gradient reversal layer at each placement, compare source/target accuracy",
         _args)
def _dann(args, progress) -> dict:
    from lab.experiments.dann.results import load_result
    from lab.experiments.dann.run import run_dann
    from lab.runs import recorded
    from lab.viz.export import save_figure

    config = DANNConfig.from_args(args, base=saved_config(args.config)).validate()
    with recorded("dann", asdict(config), command=config.to_command("--no-tsne" if args.no_tsne else "")) as run:
        previous = load_result(args.resume) if args.resume else None
        result = run_dann(config, progress=progress, record=run, previous=previous)
        result.save(run)
        if not args.no_tsne:
            label = result.best_run_label()
            for color_by in ("domain", "class"):
                save_figure(result.tsne_figure(label, color_by), run.path(f"tsne_{color_by}"))
    best = result.best()
    return {"run": str(run.dir), "task": config.label(), "weights": result.weights,
            "usps_renderings": result.data.get("usps_renderings"), "input_pad": result.input_pad["pad"],
            "table": result.display_rows(), "verdict": result.verdict(), "beside_reference": result.reference_rows(),
            "best_row": best["row"], "best_placement": best["placement"], "best_method": best["method"],
            "target_acc_best": best["target_acc_mean"], "target_acc_best_std": best["target_acc_std"]}
