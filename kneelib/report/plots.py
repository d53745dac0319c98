"""Figures of the data and of network performance (plotly): 01_data, Fig. 2 and learning curves.

Distance figures (Fig. 3, 4) live in ``kneelib.report.distance_plots``; activation figures (Fig. 5)
in ``kneelib.report.activation_plots``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from kneelib.data import formats
from kneelib.data.context import DataContext
from kneelib.names import PAPER_TISSUES, net_name
from kneelib.nets.metrics import volume_ml

# One colour per tissue of the vocabulary; the paper's three keep the colours they always had.
TISSUE_COLORS = {"femoral_cartilage": "#e6550d", "tibial_cartilage": "#3182bd", "meniscus": "#31a354",
                 "medial_tibial_cartilage": "#6baed6", "lateral_tibial_cartilage": "#08519c",
                 "patellar_cartilage": "#756bb1", "medial_meniscus": "#74c476", "lateral_meniscus": "#006d2c"}
KIND_COLORS = {"scratch": "#444444", "fine-tuned": "#9e9ac8"}


def split_table(ctx: DataContext) -> pd.DataFrame:
    """Subjects and scans per split."""
    rows = [{"split": s, "subjects": len({r.subject for r in ctx.split(s)}), "scans": len(ctx.split(s))}
            for s in ("train", "valid", "test")]
    return pd.DataFrame(rows)


def tissue_volume_table(ctx: DataContext, tissues: Sequence[str] = PAPER_TISSUES) -> pd.DataFrame:
    """Volume (mL, from the manifest's voxel spacing) of each of ``tissues`` in each scan; one row per
    (scan, tissue)."""
    rows = []
    for r in ctx.records:
        masks = formats.read_tissue_masks(r, ctx.root, tissues)
        for tissue, mask in masks.items():
            rows.append({"scan_id": r.scan_id, "split": r.split, "subject": r.subject, "timepoint": r.timepoint,
                         "tissue": tissue, "volume_ml": volume_ml(mask, r.spacing_mm)})
    return pd.DataFrame(rows)


def figure_tissue_volumes(volumes: pd.DataFrame) -> go.Figure:
    """Box plot of the tissue volumes of :func:`tissue_volume_table` per split, one box per tissue."""
    fig = go.Figure()
    for tissue in dict.fromkeys(volumes.tissue):
        d = volumes[volumes.tissue == tissue]
        fig.add_trace(go.Box(x=d.split, y=d.volume_ml, name=tissue.replace("_", " "), boxpoints="all",
                             marker_color=TISSUE_COLORS[tissue]))
    fig.update_layout(boxmode="group", title="Tissue volume per scan, by split", yaxis_title="volume (mL)",
                      width=900, height=450)
    return fig


def _best_slice(masks: dict[str, np.ndarray]) -> int:
    """The sagittal slice with the most labelled voxels of the tissues in ``masks`` (tissue -> (H, W, D))."""
    return int(np.argmax(sum(m.sum(axis=(0, 1)) for m in masks.values())))


def _mask_heatmap(mask: np.ndarray, color: str, name: str, show: bool) -> go.Heatmap:
    # uint8 0/1 with a transparent 0, not float NaN outside the mask: plotly stores a uint8 array in a
    # quarter of the bytes (a 384 x 384 overlay: 0.2 MB instead of 1.8 MB of HTML); it looks the same.
    z = np.ascontiguousarray(mask, dtype=np.uint8)
    return go.Heatmap(z=z, colorscale=[[0, "rgba(0,0,0,0)"], [1, color]], zmin=0, zmax=1, showscale=False,
                      opacity=0.45, name=name,
                      hoverinfo="skip", showlegend=show, legendgroup=name)


def figure_example_slices(ctx: DataContext, scans_per_split: int = 1,
                          tissues: Sequence[str] = PAPER_TISSUES) -> go.Figure:
    """Example sagittal slices from each split with an overlay of each of ``tissues``."""
    picks = [r for s in ("train", "valid", "test") for r in ctx.split(s)[:scans_per_split]]
    fig = make_subplots(rows=1, cols=len(picks), subplot_titles=[r.scan_id for r in picks],
                        horizontal_spacing=0.02)
    for col, r in enumerate(picks, start=1):
        image = formats.read_image(r, ctx.root)
        masks = formats.read_tissue_masks(r, ctx.root, tissues)
        k = _best_slice(masks)
        lo, hi = np.percentile(image[:, :, k], [1, 99.5])
        fig.add_trace(go.Heatmap(z=image[:, :, k], colorscale="gray", zmin=lo, zmax=hi, showscale=False,
                                 hovertemplate="row %{y}, col %{x}: %{z:.1f}<extra></extra>"), row=1, col=col)
        for tissue, mask in masks.items():
            fig.add_trace(_mask_heatmap(mask[:, :, k], TISSUE_COLORS[tissue], tissue.replace("_", " "), col == 1),
                          row=1, col=col)
    fig.update_yaxes(autorange="reversed", showticklabels=False, scaleanchor="x")
    fig.update_xaxes(showticklabels=False)
    fig.update_layout(title="Sagittal slices (slice with most labelled tissue) and the tissue masks",
                      width=320 * len(picks), height=420, legend_orientation="h")
    return fig


def figure_performance(per_scan: pd.DataFrame, metrics: tuple[str, ...] = ("dice", "assd_mm")) -> go.Figure:
    """Fig. 2: test performance per net, scratch vs fine-tuned, one column per tissue of ``per_scan``
    (in the order they appear there: the study's)."""
    titles = {"dice": "Dice", "voe": "VOE", "cv": "CV", "assd_mm": "ASSD (mm)"}
    tissues = list(dict.fromkeys(per_scan.tissue))
    fig = make_subplots(rows=len(metrics), cols=len(tissues), shared_yaxes="rows", vertical_spacing=0.08,
                        subplot_titles=[t.replace("_", " ") for t in tissues])
    for col, tissue in enumerate(tissues, start=1):
        d = per_scan[per_scan.tissue == tissue]
        for name in _net_order(d.net.unique(), tissue):
            dn = d[d.net == name]
            kind = dn.kind.iloc[0]
            for row, metric in enumerate(metrics, start=1):
                fig.add_trace(go.Box(y=dn[metric], name=name, boxpoints="all", marker_color=KIND_COLORS[kind],
                                     showlegend=False), row=row, col=col)
    for row, metric in enumerate(metrics, start=1):
        fig.update_yaxes(title_text=titles[metric], row=row, col=1)
    fig.update_layout(title="Fig. 2: test-set performance per network (grey: scratch, purple: fine-tuned)",
                      width=max(1000, 330 * len(tissues)), height=330 * len(metrics))
    return fig


def _net_order(names, tissue: str) -> list[str]:
    scratch = net_name(tissue)
    return [scratch] + sorted(n for n in names if n != scratch) if scratch in names else sorted(names)


def figure_learning_curves(history: pd.DataFrame) -> go.Figure:
    """Training and validation soft-Dice loss per epoch for every net; the best epoch is marked."""
    nets = list(dict.fromkeys(history.net))
    cols = 3
    rows = int(np.ceil(len(nets) / cols))
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=nets, shared_yaxes=True, vertical_spacing=0.12)
    for i, name in enumerate(nets):
        d = history[history.net == name]
        r, c = i // cols + 1, i % cols + 1
        for col, color in (("train_loss", "#1f77b4"), ("val_loss", "#d62728")):
            fig.add_trace(go.Scatter(x=d.epoch, y=d[col], mode="lines+markers", line_color=color,
                                     name=col.replace("_", " "), showlegend=i == 0, legendgroup=col), row=r, col=c)
        best = d[d.epoch == d.best_epoch.iloc[0]]
        fig.add_trace(go.Scatter(x=best.epoch, y=best.val_loss, mode="markers", marker_symbol="star",
                                 marker_size=12, marker_color="black", name="best (kept)", showlegend=i == 0,
                                 legendgroup="best"), row=r, col=c)
    fig.update_yaxes(title_text="soft-Dice loss", col=1)
    fig.update_layout(title="Learning curves", width=1000, height=280 * rows + 80)
    return fig
