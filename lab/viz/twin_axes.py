"""A line chart with two y axes (e.g. conditional accuracy on the left, FID on the right, against a guidance
scale)."""
from __future__ import annotations


def twin_axes_figure(x, left: dict[str, list], right: dict[str, list], title: str, xlabel: str, left_label: str,
                     right_label: str, left_range: tuple[float, float] | None = None):
    """One line per entry of ``left`` (left axis) and of ``right`` (right axis, dashed); a right-hand series of
    only None values is left out."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from lab.viz.plots import LAYOUT

    fig = make_subplots(specs=[[{"secondary_y": True}]])
    for name, ys in left.items():
        fig.add_trace(go.Scatter(x=list(x), y=list(ys), name=name, mode="lines+markers"), secondary_y=False)
    for name, ys in right.items():
        if any(y is not None for y in ys):
            fig.add_trace(go.Scatter(x=list(x), y=list(ys), name=name, mode="lines+markers",
                                     line=dict(dash="dash")), secondary_y=True)
    fig.update_layout(title=title, **LAYOUT)
    fig.update_xaxes(title_text=xlabel)
    fig.update_yaxes(title_text=left_label, range=list(left_range) if left_range else None, secondary_y=False)
    fig.update_yaxes(title_text=right_label, secondary_y=True)
    return fig
