"""Figure helpers that must stay small at the paper's 384 x 384 slices."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio

from kneelib.report.plots import _mask_heatmap


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
