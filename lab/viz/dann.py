"""The DANN comparison's figures: accuracy (or discriminator) curves per row (placement and method), the proxy
A-distance per row on what its discriminator sees beside its target accuracy, and a t-SNE of one run's backbone
features on both domains."""
from __future__ import annotations

import torch

from lab.errors import LabError
from lab.metrics import mean_std
from lab.viz.plots import LAYOUT, line_figure, scatter_figure, tsne_2d

CURVES = ("accuracy", "domain")


def curves_figure(runs, metric: str = "accuracy", task: str = "", note: str = "", errors: bool = False):
    """Per epoch and row of ``runs`` (each with ``row``, ``method`` and a ``history`` of epoch entries; mean over
    seeds, ± std as error bars if ``errors``): 'accuracy' draws target (solid) and source (dotted) test accuracy;
    'domain' the discriminator's training accuracy. ``note`` (backbone and weights) is written under the plot."""
    if metric not in CURVES:
        raise LabError(f"Unknown curve {metric!r}: choose accuracy or domain.")
    keys = [("target_acc", "target"), ("source_acc", "source")] if metric == "accuracy" else [("domain_acc", "domain")]
    series, spread, epochs = {}, {}, []
    for placement in dict.fromkeys(r.row for r in runs):
        done = [r for r in runs if r.row == placement and r.history]
        if not done or (metric == "domain" and done[0].method == "none"):
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


def pad_figure(rows: list[dict], task: str = "", input_pad: float | None = None):
    """Per row: the proxy A-distance on what its discriminator sees (bars; for source only, on its own backbone
    output), on the backbone output (markers), and the target accuracy (a line, right axis), so the figure says
    whether the rows that adapt best are those whose discriminator was fooled."""
    import plotly.graph_objects as go

    names = [r["row"] for r in rows]
    seen = [r.get("pad_seen_mean", float("nan")) for r in rows]
    seen = [r["pad_mean"] if v != v else v for r, v in zip(rows, seen)]
    fig = go.Figure()
    fig.add_bar(x=names, y=seen, name="PAD: what the discriminator sees", marker_color="#4c78a8",
                error_y=dict(type="data", array=[r.get("pad_seen_std") or 0.0 for r in rows]))
    fig.add_scatter(x=names, y=[r["pad_mean"] for r in rows], mode="markers", name="PAD: backbone output",
                    marker=dict(symbol="diamond", size=11, color="#f58518"))
    base = next((r for r in rows if r["method"] == "none"), None)
    if base is not None:  # the source-only network, seen where each DANN row's discriminator looks: the "before"
        taps = {"stage1": "backbone", "stage2": "hidden", "stage3": "logits"}
        before = [base.get(f"pad_{taps[r['placement']]}_mean") if r["method"] == "dann" and r["placement"] in taps
                  else None for r in rows]
        fig.add_scatter(x=names, y=before, mode="markers", name="PAD there without adversary (source only)",
                        marker=dict(symbol="x", size=10, color="grey"))
    fig.add_scatter(x=names, y=[r["target_acc_mean"] for r in rows], mode="lines+markers", name="target accuracy",
                    yaxis="y2", line=dict(color="#54a24b"))
    if input_pad is not None and input_pad == input_pad:
        fig.add_hline(y=input_pad, line_dash="dash", line_color="grey", annotation_text="raw images")
    title = f"{task}: proxy A-distance (0 = indistinguishable, 2 = separable) and target accuracy"
    fig.update_layout(**{**LAYOUT, "margin": dict(l=60, r=70, t=70, b=140), "title": title,
                         "yaxis": dict(title="PAD", range=[0, 2.05]),
                         "yaxis2": dict(title="target accuracy", overlaying="y", side="right", range=[0, 1.02])})
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
