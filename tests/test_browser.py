"""The activation browser, driven from Python: widget changes must update the figure in place."""

from __future__ import annotations

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go
import pytest

from kneelib.report.activation_plots import image_rgb, mask_outline
from kneelib.report.browser import ActivationBrowser

NETS = ["F(s)", "T(s)", "M(s)", "T|F(s)"]
GROUPS = ["enc_layer1", "enc_layer3", "dec_layer1"]
N, H, W = 3, 16, 16


@pytest.fixture
def data():
    gen = np.random.default_rng(0)
    maps = {net: {g: gen.random((N, H, W)).astype(np.float32) for g in GROUPS} for net in NETS}
    images = gen.normal(size=(N, 1, H, W))
    truth = {"femoral": np.zeros((N, H, W), bool), "tibial": np.zeros((N, H, W), bool)}
    truth["femoral"][0, 2:6, 2:8] = True
    truth["femoral"][2, 3:12, 4:6] = True
    truth["tibial"][:, 10:13, 2:14] = True
    return maps, images, truth


def maps_shown(browser):
    return [t for t in browser.figure.data if t.type == "heatmap"]


def outlines_shown(browser):
    return [t for t in browser.figure.data if t.type == "scatter"]


def check_panels(browser, maps, truth, example, group, nets, show):
    heat = maps_shown(browser)
    assert [t.meta["net"] for t in heat] == list(nets)
    for t in heat:
        assert np.array_equal(np.asarray(t.z), maps[t.meta["net"]][group][example])
    lines = outlines_shown(browser)
    assert len(lines) == len(truth) * (1 + len(nets))  # every panel, image included
    for t in lines:
        rows, cols = mask_outline(truth[t.meta["tissue"]][example])
        assert np.array_equal(np.asarray(t.x), cols) and np.array_equal(np.asarray(t.y), rows)
        assert t.visible is show
    (img,) = [t for t in browser.figure.data if t.type == "image"]
    assert np.array_equal(np.asarray(img.z), image_rgb(browser.images[example]))


def test_initial_state(data):
    maps, images, truth = data
    b = ActivationBrowser(maps, images, truth, scan_labels=["a", "b", "c"])
    assert isinstance(b.figure, go.FigureWidget)
    assert isinstance(b.widget, widgets.Box) and b.figure in b.widget.children
    assert b.example.value == 0 and b.group.value == "enc_layer1" and b.nets.value == ("F(s)",)
    check_panels(b, maps, truth, 0, "enc_layer1", ["F(s)"], True)
    assert b.figure.layout.title.text == "a | enc_layer1"
    assert b.figure.layout.coloraxis.cmin == 0 and b.figure.layout.coloraxis.cmax == 1


def test_widget_changes_update_figure_in_place(data):
    maps, images, truth = data
    b = ActivationBrowser(maps, images, truth)
    fig = b.figure
    b.group.value = "dec_layer1"
    check_panels(b, maps, truth, 0, "dec_layer1", ["F(s)"], True)
    b.nets.value = ("T(s)", "T|F(s)", "M(s)")
    check_panels(b, maps, truth, 0, "dec_layer1", ["T(s)", "T|F(s)", "M(s)"], True)
    b.example.value = 2
    check_panels(b, maps, truth, 2, "dec_layer1", ["T(s)", "T|F(s)", "M(s)"], True)
    b.outlines.value = False
    check_panels(b, maps, truth, 2, "dec_layer1", ["T(s)", "T|F(s)", "M(s)"], False)
    b.nets.value = ("M(s)",)
    check_panels(b, maps, truth, 2, "dec_layer1", ["M(s)"], False)
    b.outlines.value = True
    check_panels(b, maps, truth, 2, "dec_layer1", ["M(s)"], True)
    assert b.figure is fig and fig in b.widget.children  # never rebuilt
    assert b.figure.layout.title.text == "example 2 | dec_layer1"


def test_panel_axes_follow_selection(data):
    maps, images, truth = data
    b = ActivationBrowser(maps, images, truth)
    b.nets.value = ("F(s)", "T(s)")
    lay = b.figure.layout
    assert [lay.xaxis.visible, lay.xaxis2.visible, lay.xaxis3.visible, lay.xaxis4.visible] == [
        True, True, True, False]
    assert lay.xaxis3.domain[1] == pytest.approx(1 - 0.005)
    heat = maps_shown(b)
    assert [(t.xaxis, t.yaxis) for t in heat] == [("x2", "y2"), ("x3", "y3")]
    assert [lay.xaxis.title.text, lay.xaxis2.title.text, lay.xaxis3.title.text] == ["image", "F(s)", "T(s)"]
    b.nets.value = ()
    assert maps_shown(b) == [] and len(outlines_shown(b)) == len(truth)


def test_bad_inputs(data):
    maps, images, truth = data
    with pytest.raises(ValueError, match="scan_labels"):
        ActivationBrowser(maps, images, truth, scan_labels=["only one"])
    bad = {k: dict(v) for k, v in maps.items()}
    bad["T(s)"]["enc_layer1"] = bad["T(s)"]["enc_layer1"][:, :8]
    with pytest.raises(ValueError, match="T\\(s\\)"):
        ActivationBrowser(bad, images, truth)


def test_every_panel_keeps_image_orientation_and_the_grid_wraps(data):
    """Explicit ranges on every rebuild: row 0 at the top of every panel, the input slice included,
    whatever plotly's autorange would make of the new traces; no fixed width; 5 panels a row."""
    maps, images, truth = data
    b = ActivationBrowser(maps, images, truth)
    for nets in [("F(s)",), ("T(s)", "T|F(s)", "M(s)"), tuple(NETS), ("M(s)",)]:
        b.nets.value = nets
        k = 1 + len(nets)
        for p in range(k):
            s = "" if p == 0 else str(p + 1)
            assert list(b.figure.layout[f"yaxis{s}"].range) == [H - 0.5, -0.5], (nets, p)
            assert b.figure.layout[f"yaxis{s}"].autorange is False
            assert list(b.figure.layout[f"xaxis{s}"].range) == [-0.5, W - 0.5]
        assert b.figure.layout.width is None
    assert b.grid(1) == (1, 1) and b.grid(5) == (1, 5) and b.grid(6) == (2, 5) and b.grid(10) == (2, 5)
    b.nets.value = tuple(NETS)  # 5 panels: one row; the controls are a row above the figure
    assert b.figure.layout.yaxis5.domain[0] == b.figure.layout.yaxis.domain[0]
    assert b.widget.children[1] is b.figure and b.example in b.widget.children[0].children[0].children
