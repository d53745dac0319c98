"""The claim x setting heatmap of 08_robustness."""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go

from kneelib.study.verdicts import CONTRADICTED, INCONCLUSIVE, SUPPORTED

_SCORE = {SUPPORTED: 1.0, INCONCLUSIVE: 0.0, CONTRADICTED: -1.0}


def robustness_matrix(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """From a claim x setting table (``kneelib.study.robustness.robustness_table``, rows with test ==
    "claim"): each claim's verdict as a score (claims as rows, settings as columns: 1 supported, 0
    inconclusive, -1 contradicted, nan n/a) and the matching cell texts (verdict, effect and its 95%
    interval, seeds with a positive margin)."""
    rows = table[table.test == "claim"] if "test" in table else table
    claims = list(dict.fromkeys(rows.id))
    settings = list(dict.fromkeys(rows.setting))
    score = pd.DataFrame(math.nan, index=claims, columns=settings)
    text = pd.DataFrame("n/a", index=claims, columns=settings)
    for r in rows.itertuples():
        if r.verdict in _SCORE:
            score.loc[r.id, r.setting] = _SCORE[r.verdict]
            interval = "" if math.isnan(r.ci_low) else f"<br>[{r.ci_low:.2g}, {r.ci_high:.2g}]"
            text.loc[r.id, r.setting] = f"{r.verdict}<br>{r.effect:+.2g}{interval} · {r.positive_in_seeds}"
    return score, text


def figure_robustness(table: pd.DataFrame, labels: dict[str, str] | None = None) -> go.Figure:
    """Heatmap: colour = verdict of each claim under each setting (blue supported, white inconclusive, red
    contradicted, blank n/a); text = verdict, effect [95% interval], seeds with a positive margin.
    ``labels`` renames settings."""
    score, text = robustness_matrix(table)
    columns = [(labels or {}).get(s, s) for s in score.columns]
    fig = go.Figure(go.Heatmap(z=score.values, x=columns, y=list(score.index), text=text.values,
                               texttemplate="%{text}", zmin=-1, zmax=1, colorscale="RdBu",
                               colorbar=dict(title="verdict", tickvals=[-1, 0, 1],
                                             ticktext=["contradicted", "inconclusive", "supported"])))
    fig.update_layout(title="Claims under each training recipe (verdict, effect [95% interval] · seeds positive)",
                      width=max(600, 230 * len(columns) + 200), height=120 + 60 * len(score.index),
                      yaxis_autorange="reversed")
    return fig
