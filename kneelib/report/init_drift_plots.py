"""The init/drift figure of 06_controls: how far training moved each layer group, and how much of the
scratch nets' distance their inits explain (the numbers: :func:`kneelib.study.init_drift.drift_summary`)."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from kneelib.nets.unet import layer_groups

_PANELS = {"drift": (1, "drift relative to the start (Frobenius)"), "init_share": (2, "init share of d^2")}


def figure_init_drift(summary: pd.DataFrame, depth: int, title: str) -> go.Figure:
    """Two panels over the layer groups (shallow encoder -> latent -> shallow decoder -> head): left, each
    series of the ``"drift"`` panel (drift / init norm of scratch nets, relative displacement of
    fine-tuned ones); right, the init share of the scratch pairs' squared distance, with 1 (the inits alone)
    dashed. Error bars: sd over seeds and nets (or pairs).

    Args:
        summary: :func:`kneelib.study.init_drift.drift_summary` (panel, series, group, mean, sd).
        depth: U-Net depth, for the group order.
        title: the figure's title.
    """
    order = [g for g in layer_groups(depth) if g in set(summary.group)]
    fig = make_subplots(rows=1, cols=2, subplot_titles=[label for _, label in _PANELS.values()])
    for (panel, series), d in summary.groupby(["panel", "series"], sort=False):
        d = d.set_index("group").reindex(order)
        fig.add_trace(go.Scatter(x=order, y=d["mean"], mode="lines+markers", name=series,
                                 error_y={"type": "data", "array": d["sd"].fillna(0), "visible": True}),
                      row=1, col=_PANELS[panel][0])
    fig.add_trace(go.Scatter(x=order, y=[1.0] * len(order), mode="lines", name="d^2 = the inits' alone",
                             line={"dash": "dash", "color": "black"}), row=1, col=2)
    fig.update_yaxes(type="log", title_text="||w - w0|| / ||w0||", row=1, col=1)
    fig.update_yaxes(title_text="||w0a - w0b||^2 / ||wa - wb||^2", row=1, col=2)
    fig.update_xaxes(tickangle=-45)
    fig.update_layout(title=title, width=1200, height=520)
    return fig
