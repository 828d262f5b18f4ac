"""The DANN comparison's figures: accuracy (or discriminator) curves per placement, and a t-SNE of one run's
backbone features on both domains."""
from __future__ import annotations

import torch

from lab.errors import LabError
from lab.metrics import mean_std
from lab.viz.plots import line_figure, scatter_figure, tsne_2d

CURVES = ("accuracy", "domain")


def curves_figure(runs, metric: str = "accuracy", task: str = "", note: str = "", errors: bool = False):
    """Per epoch and placement of ``runs`` (each with ``placement`` and a ``history`` of epoch entries; mean over
    seeds, ± std as error bars if ``errors``): 'accuracy' draws target (solid) and source (dotted) test accuracy;
    'domain' the discriminator's training accuracy. ``note`` (backbone and weights) is written under the plot."""
    if metric not in CURVES:
        raise LabError(f"Unknown curve {metric!r}: choose accuracy or domain.")
    keys = [("target_acc", "target"), ("source_acc", "source")] if metric == "accuracy" else [("domain_acc", "domain")]
    series, spread, epochs = {}, {}, []
    for placement in dict.fromkeys(r.placement for r in runs):
        done = [r for r in runs if r.placement == placement and r.history]
        if not done or (metric == "domain" and placement == "none"):
            continue
        epochs = [e["epoch"] for e in done[0].history]
        for key, name in keys:
            stats = [mean_std([r.history[i][key] for r in done if i < len(r.history)]) for i in range(len(epochs))]
            label = f"{placement} · {name}" if metric == "accuracy" else placement
            series[label], spread[label] = [m for m, _ in stats], [s for _, s in stats]
    title = (f"{task}: test accuracy per epoch" if metric == "accuracy"
             else f"{task}: discriminator accuracy on training batches (chance = 0.5)")
    fig = line_figure(epochs, series, title, "epoch", "accuracy" if metric == "accuracy" else "domain accuracy",
                      errors=spread if errors else None)
    for trace in fig.data:
        if trace.name.endswith("· source"):
            trace.line.dash = "dot"
    if metric == "domain":
        fig.add_hline(y=0.5, line_dash="dash", line_color="grey", annotation_text="chance")
    fig.update_layout(annotations=list(fig.layout.annotations) + [dict(
        text=note, xref="paper", yref="paper", x=0, y=-0.18, showarrow=False, font=dict(size=11, color="grey"))])
    return fig


def tsne_figure(features: dict, data: dict, label: str, color_by: str = "domain", points: int = 500, seed: int = 0):
    """t-SNE of one run's backbone features on both test sets (``features``: source/target → features, labels),
    coloured by domain or by class (then the marker tells the domain); ``data`` names the domains and classes."""
    if color_by not in ("domain", "class"):
        raise LabError(f"Colour the t-SNE by 'domain' or 'class', not {color_by!r}.")
    if not features:
        raise LabError(f"The features of run {label!r} were not saved, so it has no t-SNE.")
    names = data.get("class_names") or []
    xs, ys = features["source"]["features"][:points], features["source"]["labels"][:points]
    xt, yt = features["target"]["features"][:points], features["target"]["labels"][:points]
    emb = tsne_2d(torch.cat([xs, xt]).numpy(), seed=seed)
    domains = [data.get("source", "source")] * len(xs) + [data.get("target", "target")] * len(xt)
    classes = [names[i] if i < len(names) else str(i) for i in torch.cat([ys, yt]).tolist()]
    if color_by == "domain":
        return scatter_figure(emb, domains, f"t-SNE of backbone features ({label}), by domain",
                              hover=[f"class {c}" for c in classes])
    symbols = ["circle" if i < len(xs) else "x" for i in range(len(domains))]
    return scatter_figure(emb, classes, f"t-SNE of backbone features ({label}), by class "
                          f"(○ {domains[0]}, × {domains[-1]})", symbols=symbols, hover=domains)
