"""The known-relatedness figure of 09_relatedness: each measure against the rung of the ladder, a line per seed."""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from kneelib.study.relatedness import MEASURES, NETWORK, RUNGS, TRAINING, training_rows

_TITLES = {"kernel_distance": "kernel distance", "aligned_kernel_distance": "kernel distance after alignment",
           "relative_displacement": "relative displacement ||w - w_base|| / ||w_base||", "cka": "CKA (similarity)",
           "start_val_loss": "starting validation loss", "best_epoch": "best epoch"}
_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")


def _panel_title(measure: str, verdicts: dict[str, str]) -> str:
    verdict = verdicts.get(measure)
    return _TITLES[measure] + (f" · {verdict}" if verdict else "")


def figure_known_relatedness(table: pd.DataFrame, summary: pd.DataFrame | None = None) -> go.Figure:
    """One panel per measure (whole net) and per quantity of training, x the rung (0 the same task ... 4 another
    tissue), a line per seed. A measure of relatedness rises down the ladder (CKA, a similarity, falls).

    Args:
        table: the ladder's long table (``kneelib.study.ladder.ladder_table``).
        summary: optional ``kneelib.study.relatedness.summary_table``; its whole-net verdicts go in the titles.
    """
    verdicts = {} if summary is None else dict(zip(summary[summary.group == NETWORK].measure,
                                                   summary[summary.group == NETWORK].verdict))
    panels = [*MEASURES, *TRAINING]
    cols = 3
    rows = math.ceil(len(panels) / cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[_panel_title(m, verdicts) for m in panels],
                        vertical_spacing=0.22, horizontal_spacing=0.08)
    long = pd.concat([table[table.group == NETWORK], training_rows(table)], ignore_index=True)
    ticks = [f"{r.index} {r.label}" for r in RUNGS]
    for i, measure in enumerate(panels):
        row, col = divmod(i, cols)
        for j, (seed, d) in enumerate(long[long.measure == measure].groupby("seed", sort=True)):
            d = d.sort_values("rung")
            fig.add_trace(go.Scatter(x=[ticks[r] for r in d.rung], y=d.value, mode="lines+markers",
                                     name=f"seed {seed}", legendgroup=f"seed {seed}", showlegend=i == 0,
                                     line={"color": _COLORS[j % len(_COLORS)]}), row=row + 1, col=col + 1)
        fig.update_xaxes(categoryorder="array", categoryarray=ticks, tickangle=30, row=row + 1, col=col + 1)
    fig.update_layout(title="Known relatedness: each measure along the ladder (whole net; a line per seed)",
                      width=1300, height=380 * rows + 120)
    return fig
