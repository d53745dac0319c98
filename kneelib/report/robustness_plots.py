"""The claim x setting heatmap of 08_robustness."""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go


def robustness_matrix(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """From a claim x setting table (``kneelib.study.robustness.robustness_table``, rows with test ==
    "claim"): the share of seeds in which each claim holds (claims as rows, settings as columns, nan
    when not answerable) and the matching cell texts (holds k/n, mean margin and its 95% interval)."""
    rows = table[table.test == "claim"] if "test" in table else table
    claims = list(dict.fromkeys(rows.id))
    settings = list(dict.fromkeys(rows.setting))
    share = pd.DataFrame(math.nan, index=claims, columns=settings)
    text = pd.DataFrame("n/a", index=claims, columns=settings)
    for r in rows.itertuples():
        if not math.isnan(r.margin_mean):
            held, n = (int(v) for v in str(r.holds_in_seeds).split("/"))
            share.loc[r.id, r.setting] = held / n
            interval = "" if math.isnan(r.ci95_low) else f"<br>[{r.ci95_low:.2g}, {r.ci95_high:.2g}]"
            text.loc[r.id, r.setting] = f"{r.holds_in_seeds} · {r.margin_mean:+.2g}{interval}"
    return share, text


def figure_robustness(table: pd.DataFrame, labels: dict[str, str] | None = None) -> go.Figure:
    """Heatmap: colour = share of seeds in which the claim holds under each setting; text = seeds
    held, mean margin (> 0: holds) and its 95% interval across seeds. ``labels`` renames settings."""
    share, text = robustness_matrix(table)
    columns = [(labels or {}).get(s, s) for s in share.columns]
    fig = go.Figure(go.Heatmap(z=share.values, x=columns, y=list(share.index), text=text.values,
                               texttemplate="%{text}", zmin=0, zmax=1, colorscale="RdBu",
                               colorbar_title="share of seeds<br>where it holds"))
    fig.update_layout(title="Claims under each training recipe (seeds held · mean margin [95% interval])",
                      width=max(600, 230 * len(columns) + 200), height=120 + 55 * len(share.index),
                      yaxis_autorange="reversed")
    return fig
