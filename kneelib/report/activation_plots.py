"""Fig. 5 and the pieces the activation browser shares with it: the input slice as an image,
ground-truth outlines, and the grid of activation maps of several nets at several depths.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots
from scipy.ndimage import binary_erosion

# Outline colours for the ground-truth tissues, in the order the masks come (a study has up to eight): they
# stand out on the Inferno maps and on the white legend.
OUTLINE_COLORS = ("#00e5ff", "#39ff14", "#ff00ff", "#ffd700", "#1e90ff", "#ff7f50", "#adff2f", "#c0c0c0")
MAP_COLORSCALE = "Inferno"


def mask_outline(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Boundary pixels of a 2-D mask: mask pixels with a background 4-neighbour.

    Args:
        mask: (H, W) bool or 0/1.

    Returns:
        (rows, cols) int arrays of the boundary pixels, for a scatter with x=cols, y=rows.
    """
    mask = np.asarray(mask).astype(bool)
    edge = mask & ~binary_erosion(mask, border_value=0)
    rows, cols = np.nonzero(edge)
    return rows, cols


def image_rgb(image: np.ndarray, percentiles: tuple[float, float] = (1.0, 99.0)) -> np.ndarray:
    """A grayscale slice as uint8 RGB for ``go.Image``, windowed to the given percentiles.

    Args:
        image: (H, W) float intensities.
        percentiles: intensities at these percentiles map to black and white (robust to
            the few very bright voxels of DESS fluid).

    Returns:
        uint8 array (H, W, 3).
    """
    image = np.asarray(image, dtype=np.float64)
    lo, hi = np.percentile(image, percentiles)
    scaled = np.clip((image - lo) / (hi - lo), 0, 1) if hi > lo else np.zeros_like(image)
    return np.repeat((scaled * 255).round().astype(np.uint8)[..., None], 3, axis=2)


def image_stack(images: np.ndarray | torch.Tensor) -> np.ndarray:
    """Input slices (N, 1, H, W) or (N, H, W), array or tensor -> numpy array (N, H, W)."""
    x = images.detach().cpu().numpy() if torch.is_tensor(images) else np.asarray(images)
    if x.ndim == 4 and x.shape[1] == 1:
        x = x[:, 0]
    if x.ndim != 3:
        raise ValueError(f"images must be (N, 1, H, W) or (N, H, W), got {x.shape}")
    return x


def outline_traces(truth_masks: Mapping[str, np.ndarray], index: int, show_legend: bool,
                   **axes: str) -> list[go.Scatter]:
    """One marker scatter of boundary pixels per tissue, for image ``index`` of each mask stack.

    Args:
        truth_masks: tissue -> (N, H, W) bool.
        index: which image of the stacks.
        show_legend: whether these traces get legend entries (only once per figure).
        axes: optional ``xaxis=``/``yaxis=`` ids, e.g. ``xaxis="x2", yaxis="y2"``.
    """
    traces = []
    for k, (tissue, masks) in enumerate(truth_masks.items()):
        rows, cols = mask_outline(masks[index])
        traces.append(go.Scatter(
            x=cols, y=rows, mode="markers", name=tissue, legendgroup=tissue, showlegend=show_legend,
            marker={"size": 2, "color": OUTLINE_COLORS[k % len(OUTLINE_COLORS)]},
            hoverinfo="skip", meta={"kind": "outline", "tissue": tissue}, **axes))
    return traces


def _image_axes(fig: go.Figure, row: int, col: int) -> None:
    """Image orientation (row 0 at the top), square pixels, no ticks, for one subplot."""
    sub = fig.get_subplot(row, col)
    x_id = sub.xaxis.plotly_name.replace("axis", "")
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False, constrain="domain",
                     row=row, col=col)
    fig.update_yaxes(showticklabels=False, showgrid=False, zeroline=False, autorange="reversed",
                     scaleanchor=x_id, constrain="domain", row=row, col=col)


def figure_activation_grid(maps_by_net: Mapping[str, Mapping[str, np.ndarray]],
                           images: np.ndarray | torch.Tensor,
                           truth_masks: Mapping[str, np.ndarray],
                           group_list: Sequence[str], slice_index: int = 0) -> go.Figure:
    """Fig. 5: activation maps of every net (rows) at the chosen depths (columns).

    The first column holds the input slice, in the first row only; each other panel is a
    heatmap of one net's map at one group on the shared colour scale 0..1, with the
    ground-truth outline of every tissue drawn on top (legend entries toggle a tissue).

    Args:
        maps_by_net: net name (e.g. ``"F(s)"``, ``"T|F(s)"``) -> group -> maps (N, H, W) in [0, 1].
        images: (N, H, W) or (N, 1, H, W) input slices.
        truth_masks: tissue name -> (N, H, W) bool ground-truth masks.
        group_list: groups to show, left to right.
        slice_index: which of the N images to show.

    Returns:
        a plotly Figure with len(maps_by_net) * len(group_list) heatmaps.
    """
    nets = list(maps_by_net)
    imgs = image_stack(images)
    if not 0 <= slice_index < len(imgs):
        raise IndexError(f"slice_index {slice_index} outside 0..{len(imgs) - 1}")
    specs = [[{}] + [{}] * len(group_list)] + [[None] + [{}] * len(group_list) for _ in nets[1:]]
    fig = make_subplots(rows=len(nets), cols=1 + len(group_list), specs=specs,
                        column_titles=["image", *group_list], row_titles=nets,
                        horizontal_spacing=0.01, vertical_spacing=0.01)
    fig.add_trace(go.Image(z=image_rgb(imgs[slice_index]), hoverinfo="skip"), row=1, col=1)
    _image_axes(fig, 1, 1)
    for tr in outline_traces(truth_masks, slice_index, show_legend=True):
        fig.add_trace(tr, row=1, col=1)
    for r, net in enumerate(nets, start=1):
        for c, group in enumerate(group_list, start=2):
            z = np.asarray(maps_by_net[net][group][slice_index], dtype=np.float32)
            fig.add_trace(go.Heatmap(z=z, coloraxis="coloraxis", name=f"{net} {group}",
                                     meta={"kind": "map", "net": net, "group": group}), row=r, col=c)
            for tr in outline_traces(truth_masks, slice_index, show_legend=False):
                fig.add_trace(tr, row=r, col=c)
            _image_axes(fig, r, c)
    fig.update_layout(
        coloraxis={"colorscale": MAP_COLORSCALE, "cmin": 0.0, "cmax": 1.0,
                   "colorbar": {"title": {"text": "normalized<br>activation"}}},
        height=170 * len(nets) + 80, width=170 * (1 + len(group_list)) + 160,
        margin={"l": 20, "r": 20, "t": 60, "b": 20}, plot_bgcolor="black",
        legend={"orientation": "h", "y": -0.02, "itemsizing": "constant"})
    return fig
