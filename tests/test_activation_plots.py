"""Fig. 5: ground-truth outlines and the grid of activation maps."""

from __future__ import annotations

import numpy as np
import pytest

from kneelib.report.activation_plots import figure_activation_grid, mask_outline


def make_maps(nets, groups, n=3, h=12, w=12, seed=0):
    gen = np.random.default_rng(seed)
    return {net: {g: gen.random((n, h, w)).astype(np.float32) for g in groups} for net in nets}


def test_mask_outline():
    m = np.zeros((6, 6), bool)
    m[1:5, 1:5] = True
    rows, cols = mask_outline(m)
    assert len(rows) == 12  # a 4x4 square has 12 boundary pixels
    assert set(zip(rows, cols, strict=True)) == {(r, c) for r in range(1, 5) for c in range(1, 5)} - {
        (2, 2), (2, 3), (3, 2), (3, 3)}


def test_figure_activation_grid():
    nets = ["F(s)", "T(s)", "T|F(s)"]
    groups = ["enc_layer1", "enc_layer3", "dec_layer1"]
    maps = make_maps(nets, groups)
    images = np.random.default_rng(2).normal(size=(3, 1, 12, 12))
    truth = {"femoral": np.zeros((3, 12, 12), bool), "tibial": np.zeros((3, 12, 12), bool)}
    truth["femoral"][1, 2:6, 2:6] = True
    truth["tibial"][1, 8:10, 3:9] = True
    fig = figure_activation_grid(maps, images, truth, groups, slice_index=1)
    heat = [t for t in fig.data if t.type == "heatmap"]
    assert len(heat) == len(nets) * len(groups)
    assert all(t.coloraxis == "coloraxis" for t in heat)
    assert fig.layout.coloraxis.cmin == 0 and fig.layout.coloraxis.cmax == 1
    by_key = {(t.meta["net"], t.meta["group"]): t for t in heat}
    assert np.array_equal(by_key[("T(s)", "enc_layer3")].z, maps["T(s)"]["enc_layer3"][1])
    outlines = [t for t in fig.data if t.type == "scatter"]
    assert len(outlines) == 2 * (1 + len(nets) * len(groups))  # image panel + each map panel
    fem = outlines[0]
    assert fem.name == "femoral" and len(fem.x) == 12
    assert truth["femoral"][1][np.asarray(fem.y), np.asarray(fem.x)].all()
    assert sum(t.type == "image" for t in fig.data) == 1
    with pytest.raises(IndexError):
        figure_activation_grid(maps, images, truth, groups, slice_index=3)
