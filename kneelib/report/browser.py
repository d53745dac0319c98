"""An interactive activation-map browser for JupyterLab (ipywidgets + plotly FigureWidget).

Usage in a notebook::

    browser = ActivationBrowser(maps_by_net, images, truth_masks, scan_labels=labels)
    browser.widget  # display it

The controls pick the example slice, the layer group, one or several nets (shown in a
grid after the input slice, at most five panels a row) and whether the ground-truth outlines are drawn. Every change
updates the one ``FigureWidget`` in place; it is never rebuilt, so zoom and the page layout
stay put. ``FigureWidget`` needs the ``anywidget`` package; outside a kernel ipywidgets falls
back to a dummy comm, so the callbacks can be driven from plain Python (that is how the tests
work).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go
import torch

from kneelib.report.activation_plots import MAP_COLORSCALE, image_rgb, image_stack, mask_outline, outline_traces

ROW_PX = (180, 250)  # height of one row of panels, title included, in pixels: with 5 and with 1-2 columns
TITLE_PX = 24  # of which the panel titles take
MARGIN_PX = 110  # figure title, legend and margins, in pixels
MAX_COLUMNS = 5  # panels per row; more selected nets wrap onto further rows
GAP = 0.01  # horizontal gap between panels, as a fraction of the figure width


def _axis_suffix(panel: int) -> str:
    """Plotly axis id suffix of panel ``panel`` (0-based): '' for x/y, then '2', '3', ..."""
    return "" if panel == 0 else str(panel + 1)


class ActivationBrowser:
    """Browse activation maps of several nets, slice by slice and group by group.

    Args:
        maps_by_net: net name (e.g. ``"F(s)"``, ``"T|F(s)"``) -> group -> maps (N, H, W) in
            [0, 1] of the same N images (e.g. from :func:`kneelib.compare.activations.activation_maps`).
        images: (N, H, W) or (N, 1, H, W) input slices.
        truth_masks: tissue name -> (N, H, W) bool ground-truth masks.
        scan_labels: N labels for the example selector (default ``"example i"``).

    Attributes:
        figure: the ``go.FigureWidget``; panel 0 is the input slice, panel i the i-th
            selected net. Heatmap traces carry ``meta={"kind": "map", "net": ...}``, outline
            traces ``meta={"kind": "outline", "tissue": ...}``.
        example, group, nets, outlines: the control widgets.
        widget: the VBox to display.
    """

    def __init__(self, maps_by_net: Mapping[str, Mapping[str, np.ndarray]],
                 images: np.ndarray | torch.Tensor, truth_masks: Mapping[str, np.ndarray],
                 scan_labels: Sequence[str] | None = None) -> None:
        self.maps = maps_by_net
        self.images = image_stack(images)
        self.truth = truth_masks
        self.net_names = list(maps_by_net)
        if not self.net_names:
            raise ValueError("maps_by_net is empty")
        n = len(self.images)
        labels = list(scan_labels) if scan_labels is not None else [f"example {i}" for i in range(n)]
        if len(labels) != n:
            raise ValueError(f"{len(labels)} scan_labels for {n} images")
        first = maps_by_net[self.net_names[0]]
        self.group_names = [g for g in first if all(g in maps_by_net[m] for m in self.net_names)]
        if not self.group_names:
            raise ValueError("the nets share no layer group")
        self._check_shapes()

        self.example = widgets.Dropdown(options=list(zip(labels, range(n), strict=True)), value=0,
                                        description="example")
        self.group = widgets.Dropdown(options=self.group_names, value=self.group_names[0],
                                      description="group")
        self.nets = widgets.SelectMultiple(options=self.net_names, value=(self.net_names[0],),
                                           rows=min(len(self.net_names), 9), description="nets")
        self.outlines = widgets.ToggleButton(value=True, description="ground truth",
                                             tooltip="draw the ground-truth outlines")
        self.figure = go.FigureWidget(layout=self._base_layout())
        self._build_panels()
        self.update()
        for w in (self.example, self.group, self.nets, self.outlines):
            w.observe(self._on_change, names="value")
        # Controls above the figure (a wrapping row), so they stay in view however many nets
        # are shown; the figure below takes the notebook's width.
        controls = widgets.HBox([widgets.VBox([self.example, self.group, self.outlines]), self.nets],
                                layout=widgets.Layout(flex_flow="row wrap"))
        self.widget = widgets.VBox([controls, self.figure])

    # -- checks and layout --------------------------------------------------------------------

    def _check_shapes(self) -> None:
        shape = self.images.shape
        for net in self.net_names:
            for g in self.group_names:
                if np.shape(self.maps[net][g]) != shape:
                    raise ValueError(f"maps[{net!r}][{g!r}] has shape {np.shape(self.maps[net][g])}, "
                                     f"images {shape}")
        for tissue, m in self.truth.items():
            if np.shape(m) != shape:
                raise ValueError(f"truth_masks[{tissue!r}] has shape {np.shape(m)}, images {shape}")

    def _base_layout(self) -> go.Layout:
        # One x/y axis pair per possible panel (image + every net), so a selection change only
        # moves domains and hides axes instead of rebuilding the layout.
        axes = {}
        for p in range(1 + len(self.net_names)):
            s = _axis_suffix(p)
            axes[f"xaxis{s}"] = {"anchor": f"y{s}", "showticklabels": False, "showgrid": False,
                                 "zeroline": False, "constrain": "domain"}
            axes[f"yaxis{s}"] = {"anchor": f"x{s}", "showticklabels": False, "showgrid": False,
                                 "zeroline": False, "scaleanchor": f"x{s}",
                                 "constrain": "domain"}
        return go.Layout(**axes, height=ROW_PX[1] + MARGIN_PX, autosize=True, plot_bgcolor="black",
                         margin={"l": 10, "r": 10, "t": 50, "b": 10},
                         coloraxis={"colorscale": MAP_COLORSCALE, "cmin": 0.0, "cmax": 1.0,
                                    "colorbar": {"title": {"text": "activation"}, "len": 0.9}},
                         legend={"orientation": "h", "y": -0.02, "itemsizing": "constant"})

    def _panel_traces(self, panel: int, net: str | None) -> list:
        """The traces of one panel: the slice (net None) or a net's heatmap, then outlines."""
        s = _axis_suffix(panel)
        axes = {"xaxis": f"x{s}", "yaxis": f"y{s}"}
        if net is None:
            first = go.Image(z=np.zeros((1, 1, 3), np.uint8), hoverinfo="skip", meta={"kind": "image"},
                             **axes)
        else:
            first = go.Heatmap(z=[[0.0]], coloraxis="coloraxis", name=net,
                               meta={"kind": "map", "net": net}, **axes)
        # Outline data are filled in by update(); only panel 0's appear in the legend.
        outlines = outline_traces(self.truth, 0, show_legend=panel == 0, **axes)
        return [first, *outlines]

    def grid(self, k: int) -> tuple[int, int]:
        """(rows, columns) of the panel grid for ``k`` panels: at most ``MAX_COLUMNS`` per row."""
        cols = min(k, MAX_COLUMNS)
        return -(-k // cols), cols

    def _build_panels(self) -> None:
        """Replace the traces and panel domains for the current net selection.

        Panels fill a grid of at most ``MAX_COLUMNS`` columns, and the figure takes the width of
        the notebook (no fixed width), so no selection makes it wider than the notebook, and the
        controls above it never scroll out of view. Every axis gets an explicit
        range on every rebuild (y from the last row down to row 0), so each panel, the input slice
        included, keeps image orientation whatever plotly's autorange would pick for the new traces.
        """
        selected = list(self.nets.value)
        k = 1 + len(selected)
        rows, cols = self.grid(k)
        h, w = self.images.shape[1:]
        row_px = int(np.interp(cols, [2, MAX_COLUMNS], ROW_PX[::-1]))  # the panels narrow as columns are added
        title_gap = TITLE_PX / (rows * row_px)  # room for a panel title above each row, in paper units
        traces, layout = [], {}
        names = ["image", *selected]
        for p in range(1 + len(self.net_names)):
            s = _axis_suffix(p)
            used = p < k
            r, c = divmod(p, cols)
            x_dom = [c / cols + GAP / 2, (c + 1) / cols - GAP / 2] if used else [0.0, 0.01]
            y_dom = [1 - (r + 1) / rows, 1 - r / rows - title_gap] if used else [0.0, 0.01]
            # The panel title is the x axis title on top: it follows the domain plotly actually
            # draws after keeping the pixels square, which a paper-positioned annotation does not.
            title = {"text": names[p] if used else "", "standoff": 4}
            layout[f"xaxis{s}"] = {"domain": x_dom, "visible": used, "side": "top", "title": title,
                                   "autorange": False, "range": [-0.5, w - 0.5]}
            layout[f"yaxis{s}"] = {"domain": y_dom, "visible": used, "autorange": False,
                                   "range": [h - 0.5, -0.5]}
        for p, net in enumerate([None, *selected]):
            traces += self._panel_traces(p, net)
        with self.figure.batch_update():
            self.figure.data = []
            self.figure.add_traces(traces)
            self.figure.update_layout(layout, height=row_px * rows + MARGIN_PX)

    # -- callbacks ----------------------------------------------------------------------------

    def _on_change(self, change: dict) -> None:
        """Observer of every control: a new net selection needs new panels, then refresh data."""
        if change["owner"] is self.nets:
            self._build_panels()
        self.update()

    def update(self) -> None:
        """Show the chosen example and group in every panel; outlines visible iff toggled on."""
        i, group, show = self.example.value, self.group.value, self.outlines.value
        outline_rc = {t: mask_outline(m[i]) for t, m in self.truth.items()}
        with self.figure.batch_update():
            for tr in self.figure.data:
                kind = tr.meta["kind"]
                if kind == "image":
                    tr.z = image_rgb(self.images[i])
                elif kind == "map":
                    tr.z = np.asarray(self.maps[tr.meta["net"]][group][i], dtype=np.float32)
                else:
                    rows, cols = outline_rc[tr.meta["tissue"]]
                    tr.x, tr.y, tr.visible = cols, rows, show
            self.figure.layout.title = {"text": f"{self.example.label} | {group}", "x": 0.01}
