"""Plotly figures the tabs show; each returns a ``go.Figure`` ready for ``gr.Plot`` and export."""
from __future__ import annotations

import plotly.graph_objects as go

# the legend sits under the x axis: above the plot it covers two-line titles in the exported PNG/SVG/PDF
LAYOUT = dict(template="plotly_white", margin=dict(l=60, r=20, t=70, b=110), font=dict(size=13),
              legend=dict(orientation="h", yanchor="top", y=-0.22, xanchor="left", x=0))


def line_figure(x, series: dict[str, list], title: str, xlabel: str, ylabel: str,
                errors: dict[str, list] | None = None, log_x: bool = False, markers: bool = True) -> go.Figure:
    """One line per entry of ``series`` (name → y values over ``x``), optional ± error bands."""
    fig = go.Figure()
    for name, ys in series.items():
        err = (errors or {}).get(name)
        fig.add_trace(go.Scatter(x=list(x), y=list(ys), name=name, mode="lines+markers" if markers else "lines",
                                 error_y=dict(type="data", array=list(err), visible=True) if err else None))
    fig.update_layout(title=title, xaxis_title=xlabel, yaxis_title=ylabel, **LAYOUT)
    if len(series) > 4:  # a long legend: on the right, one entry per line
        fig.update_layout(legend=dict(orientation="v", yanchor="top", y=1, xanchor="left", x=1.02),
                          margin=dict(r=220))
    if log_x:
        fig.update_xaxes(type="log")
    return fig


def loss_figure(steps, losses, title: str = "Training loss") -> go.Figure:
    return line_figure(steps, {"loss": losses}, title, "step", "loss", markers=False)


def scatter_figure(points, groups: list[str], title: str, symbols: list[str] | None = None,
                   hover: list[str] | None = None) -> go.Figure:
    """2-D points (e.g. a t-SNE) coloured by ``groups`` and optionally shaped by ``symbols``."""
    import numpy as np

    points = np.asarray(points)
    fig = go.Figure()
    keys = list(dict.fromkeys(groups))
    for key in keys:
        idx = [i for i, g in enumerate(groups) if g == key]
        fig.add_trace(go.Scatter(
            x=points[idx, 0], y=points[idx, 1], mode="markers", name=str(key),
            marker=dict(size=6, opacity=0.8,
                        symbol=[symbols[i] for i in idx] if symbols else "circle"),
            text=[hover[i] for i in idx] if hover else None))
    fig.update_layout(title=title, xaxis=dict(showticklabels=False), yaxis=dict(showticklabels=False), **LAYOUT)
    return fig


def tsne_2d(features, seed: int = 0, perplexity: float = 30.0):
    """scikit-learn t-SNE of [N, D] features to [N, 2] (perplexity clipped for small N)."""
    import numpy as np
    from sklearn.manifold import TSNE

    features = np.asarray(features, dtype=np.float32)
    perplexity = float(min(perplexity, max(2.0, (len(features) - 1) / 3)))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(features)


def tradeoff_figure(x, y, labels: list[str], title: str, xlabel: str, ylabel: str) -> go.Figure:
    """Points of one sweep in order (a line through them), each named, on [0, 1] × [0, 1] axes: a trade-off
    such as style reached against label kept; the top right corner is the goal."""
    ys = [v if v is not None else 0.0 for v in y]
    fig = go.Figure(go.Scatter(x=list(x), y=ys, mode="lines+markers+text", text=labels, textposition="top center",
                               marker=dict(size=11), name="setting"))
    fig.update_layout(title=title, xaxis_title=xlabel, yaxis_title=ylabel, showlegend=False, **LAYOUT)
    fig.update_xaxes(range=[-0.05, 1.05], tickformat=".0%")
    fig.update_yaxes(range=[-0.05, 1.12], tickformat=".0%")
    return fig
