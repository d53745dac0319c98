"""Figures of weight distances: Fig. 3a / 3b (per layer group, by depth) and Fig. 4 (tissue matrix)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from kneelib.names import TISSUE_NAMES
from kneelib.nets.unet import layer_groups


def figure_group_distances(table: pd.DataFrame, depth: int, title: str,
                           null: dict[str, float] | None = None, null_label: str = "untrained He null",
                           empirical_null: dict[str, float] | None = None) -> go.Figure:
    """Distance per layer group (x, ordered shallow encoder -> latent -> shallow decoder), one line per
    net pair (mean over seeds, error bars = sd across seeds when there are several).

    Args:
        table: rows with columns pair, group, distance (and optionally seed).
        depth: U-Net depth, for the group order.
        null: optional expected distance per group between untrained nets, drawn dashed.
        empirical_null: optional measured distance between untrained nets, drawn dotted.
    """
    order = [g for g in layer_groups(depth) if g in set(table.group)]
    fig = go.Figure()
    for pair, d in table[table.group != "network"].groupby("pair", sort=False):
        stats = d.groupby("group").distance.agg(["mean", "std"]).reindex(order)
        fig.add_trace(go.Scatter(x=order, y=stats["mean"], mode="lines+markers", name=pair,
                                 error_y={"type": "data", "array": stats["std"].fillna(0), "visible": True}))
    if null is not None:
        fig.add_trace(go.Scatter(x=order, y=[null.get(g, np.nan) for g in order], mode="lines", name=null_label,
                                 line={"dash": "dash", "color": "black"}))
    if empirical_null is not None:
        fig.add_trace(go.Scatter(x=order, y=[empirical_null.get(g, np.nan) for g in order], mode="markers",
                                 name="untrained, measured", marker={"symbol": "x", "color": "black"}))
    fig.update_layout(title=title, xaxis_title="layer group (encoder shallow -> latent -> decoder shallow)",
                      yaxis_title="mean L2 distance per kernel", yaxis_type="log", width=1000, height=480)
    return fig


def tissue_matrix(tissue: pd.DataFrame, codes: list[str] | None = None) -> pd.DataFrame:
    """N x N matrix of the tissue codes ``codes`` (default: those of the table's pairs, in their order of
    appearance: F, T, M for the paper's pairs F-T, F-M, M-T): row A (base scratch net A(s)), column B,
    value d(A(s), B|A(s)); diagonal NaN (and any pair the table lacks)."""
    if codes is None:
        codes = list(dict.fromkeys(c for r in tissue.itertuples() for c in (r.tissue_a, r.tissue_b)))
    m = pd.DataFrame(np.nan, index=list(codes), columns=list(codes))
    for r in tissue.itertuples():
        m.loc[r.tissue_a, r.tissue_b] = r.d_ab
        m.loc[r.tissue_b, r.tissue_a] = r.d_ba
    return m


def figure_tissue_matrix(tissue: pd.DataFrame) -> go.Figure:
    """Fig. 4: bidirectional tissue distances; cell (A, B) = d(A(s), B|A(s)), with the tissue distance
    (mean of both directions) and the asymmetry listed per pair in the title; several seeds are averaged."""
    tissue = tissue.groupby(["pair", "tissue_a", "tissue_b"], sort=False, as_index=False).mean(numeric_only=True)
    m = tissue_matrix(tissue)
    text = [[("" if np.isnan(v) else f"{v:.3g}") for v in row] for row in m.values]
    fig = go.Figure(go.Heatmap(z=m.values, x=[f"to {TISSUE_NAMES[c]}" for c in m.columns],
                               y=[f"from {TISSUE_NAMES[c]} (s)" for c in m.index], text=text, texttemplate="%{text}",
                               colorscale="Viridis", colorbar_title="d"))
    summary = "; ".join(f"{r.pair}: {r.tissue_distance:.3g} (asym. {r.asymmetry:.2f})" for r in tissue.itertuples())
    fig.update_layout(title=f"Fig. 4: d(A(s), B|A(s)). Tissue distances {summary}", width=800, height=520,
                      yaxis_autorange="reversed")
    return fig


def figure_cka_heatmap(matrix: pd.DataFrame, title: str) -> go.Figure:
    """Layer-by-layer linear CKA of two nets (rows: net a's groups, columns: net b's)."""
    fig = go.Figure(go.Heatmap(z=matrix.values, x=list(matrix.columns), y=list(matrix.index), zmin=0, zmax=1,
                               colorscale="Magma", colorbar_title="CKA", texttemplate="%{z:.2f}"))
    fig.update_layout(title=title, width=800, height=700, yaxis_autorange="reversed")
    return fig


def figure_policy(summary: pd.DataFrame) -> go.Figure:
    """Test Dice vs fraction of training subjects, one panel per target|source pair, one line per
    strategy (mean over seeds, error bars = sd); solid at the profile's epochs, dashed at matched
    optimizer steps (``steps`` column of ``kneelib.study.policy.policy_summary``, when present)."""
    from plotly.subplots import make_subplots

    summary = summary if "steps" in summary else summary.assign(steps="epochs")
    pairs = [(t, s) for t, s in summary[summary.source != ""][["target", "source"]].drop_duplicates().itertuples(
        index=False)]
    fig = make_subplots(rows=1, cols=len(pairs), shared_yaxes=True, subplot_titles=[f"{t}|{s}(s)" for t, s in pairs])
    colors = {"scratch": "#444444", "finetune": "#9e9ac8", "finetune_depth_lr": "#e6550d"}
    full = summary[(summary.fraction == 1.0) & (summary.steps == "epochs")]
    for col, (target, source) in enumerate(pairs, start=1):
        for steps in dict.fromkeys(summary.steps):
            # the full-data point is shared by both variants
            rows = pd.concat([summary[summary.steps == steps], full]) if steps != "epochs" else summary[
                summary.steps == steps]
            d = rows[(rows.target == target) & rows.source.isin(["", source])]
            for strategy, ds in d.groupby("strategy", sort=False):
                ds = ds.sort_values("fraction")
                name = strategy if steps == "epochs" else f"{strategy} ({steps} steps)"
                fig.add_trace(go.Scatter(x=ds.fraction, y=ds.dice_mean, mode="lines+markers", name=name,
                                         legendgroup=name, showlegend=col == 1, line_color=colors[strategy],
                                         line_dash="solid" if steps == "epochs" else "dash",
                                         error_y={"type": "data", "array": ds.dice_sd.fillna(0)}), row=1, col=col)
    fig.update_xaxes(type="log", title_text="fraction of training subjects")
    fig.update_yaxes(title_text="test Dice", col=1)
    fig.update_layout(title="Limited-data policy: scratch vs fine-tune vs fine-tune with depth-dependent lr",
                      width=max(500, 330 * len(pairs)), height=450)
    return fig
