"""The batch-adaptation figure: test accuracy per epoch of every training set, mean ± std over seeds."""
from __future__ import annotations

import plotly.graph_objects as go

from lab.metrics import mean_std
from lab.viz.plots import line_figure

COLOURS = ["#636efa", "#ef553b", "#00a67e", "#ab63fa"]
SERIES = (("target_acc", "target test"), ("source_acc", "source test"))


def accuracy_curves(runs: dict[str, list[list[dict]]], order: list[str], title: str,
                    error_bars: bool = True) -> go.Figure:
    """``runs``: training set → one history per seed (``[{"epoch", "source_acc", "target_acc"}, …]``); one colour
    per training set (its place in ``order``), target test solid and source test dotted."""
    series, errors, epochs = {}, {}, []
    for condition, histories in runs.items():
        if not histories:
            continue
        epochs = [e["epoch"] for e in histories[0]]
        for key, name in SERIES:
            stats = [mean_std([h[i][key] for h in histories if i < len(h)]) for i in range(len(epochs))]
            series[f"{condition} · {name}"] = [m for m, _ in stats]
            errors[f"{condition} · {name}"] = [s for _, s in stats]
    fig = line_figure(epochs, series, title, "epoch", "accuracy", errors=errors if error_bars else None)
    for trace in fig.data:
        condition = trace.name.split(" · ")[0]
        trace.line.color = trace.marker.color = COLOURS[order.index(condition) % len(COLOURS)]
        if trace.name.endswith("source test"):
            trace.line.dash = "dot"
    fig.update_yaxes(range=[0, 1.02])
    return fig
