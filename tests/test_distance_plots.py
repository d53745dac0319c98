"""kneelib.report.distance_plots: the Fig. 4 tissue matrix for any tissues."""

from __future__ import annotations

import numpy as np
import pandas as pd

from kneelib.report.distance_plots import figure_tissue_matrix, tissue_matrix


def _tissue(rows: list[tuple[str, str, float, float]]) -> pd.DataFrame:
    return pd.DataFrame([{"pair": f"{a}-{b}", "tissue_a": a, "tissue_b": b, "d_ab": ab, "d_ba": ba,
                          "tissue_distance": (ab + ba) / 2, "asymmetry": abs(ab - ba) / ((ab + ba) / 2)}
                         for a, b, ab, ba in rows])


def test_matrix_of_the_paper_tissues_keeps_f_t_m():
    m = tissue_matrix(_tissue([("F", "T", 1.0, 2.0), ("F", "M", 3.0, 4.0), ("M", "T", 5.0, 6.0)]))
    assert list(m.index) == list(m.columns) == ["F", "T", "M"]
    assert m.loc["F", "T"] == 1.0 and m.loc["T", "F"] == 2.0 and m.loc["M", "T"] == 5.0 and m.loc["T", "M"] == 6.0
    assert np.isnan(np.diag(m.values)).all()


def test_matrix_and_figure_of_two_multi_letter_tissues():
    tissue = _tissue([("TL", "TM", 0.5, 0.25)])
    m = tissue_matrix(tissue)
    assert list(m.index) == ["TL", "TM"] and m.loc["TL", "TM"] == 0.5 and m.loc["TM", "TL"] == 0.25
    fig = figure_tissue_matrix(tissue)
    assert list(fig.data[0].x) == ["to lateral tibial cartilage", "to medial tibial cartilage"]
    assert list(fig.data[0].y) == ["from lateral tibial cartilage (s)", "from medial tibial cartilage (s)"]
