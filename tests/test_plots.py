"""Figure helpers: overlays that stay small at the paper's 384 x 384 slices, and figures of any tissues."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

from kneelib.report.plots import _mask_heatmap, figure_performance, figure_tissue_volumes


def test_mask_overlay_draws_the_mask_only_and_stays_small():
    rng = np.random.default_rng(0)
    mask = rng.random((384, 384)) < 0.1
    trace = _mask_heatmap(mask, "#ff0000", "femoral cartilage", True)
    z = np.asarray(trace.z)
    assert z.dtype == np.uint8 and np.array_equal(z, mask.astype(np.uint8))
    assert trace.colorscale[0][1] == "rgba(0,0,0,0)"  # pixels outside the mask are not drawn
    assert trace.colorscale[-1][1] == "#ff0000" and (trace.zmin, trace.zmax) == (0, 1)
    size = len(pio.to_json(go.Figure(trace)))
    as_float = len(pio.to_json(go.Figure(go.Heatmap(z=np.where(mask, 1.0, np.nan)))))
    assert size < 300_000 < as_float  # 384 x 384: about 0.2 MB, against 1.8 MB as float with NaN


def test_performance_figure_has_a_column_per_tissue_of_the_table():
    nets = {"F(s)": "femoral_cartilage", "P(s)": "patellar_cartilage", "P|F(s)": "patellar_cartilage",
            "F|P(s)": "femoral_cartilage"}
    per_scan = pd.DataFrame([{"net": n, "tissue": t, "kind": "fine-tuned" if "|" in n else "scratch", "dice": 0.8,
                              "assd_mm": 1.0, "scan_id": s} for n, t in nets.items() for s in ("a", "b")])
    fig = figure_performance(per_scan)
    assert [a.text for a in fig.layout.annotations] == ["femoral cartilage", "patellar cartilage"]
    # the scratch net first in each column, then the fine-tuned ones
    assert [tr.name for tr in fig.data if tr.xaxis == "x"] == ["F(s)", "F|P(s)"]
    assert [tr.name for tr in fig.data if tr.xaxis == "x2"] == ["P(s)", "P|F(s)"]


def test_tissue_volume_figure_draws_the_tissues_of_the_table():
    volumes = pd.DataFrame([{"split": "train", "tissue": t, "volume_ml": 1.0}
                            for t in ("medial_meniscus", "lateral_meniscus")])
    assert [tr.name for tr in figure_tissue_volumes(volumes).data] == ["medial meniscus", "lateral meniscus"]


def test_every_tissue_of_the_vocabulary_has_a_colour():
    from kneelib.names import ALL_TISSUES
    from kneelib.report.plots import TISSUE_COLORS

    assert set(TISSUE_COLORS) == set(ALL_TISSUES) and len(set(TISSUE_COLORS.values())) == len(ALL_TISSUES)
