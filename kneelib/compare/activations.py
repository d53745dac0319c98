"""Activation maps of the U-Net's layer groups and their overlap between nets (Fig. 5 is drawn by
:mod:`kneelib.report.activation_plots`).

A *group* is one named level of :class:`kneelib.nets.unet.UNet2D`: ``enc_layer{i}``,
``dec_layer{i}`` or ``head`` (see :func:`kneelib.nets.unet.layer_groups`). Its activation is the
level's output: after the batch norm for a ConvPair level, the logits for ``head``.

To compare nets, each activation (N, C, h, w) is reduced to one map per image (see
:func:`reduce_activation`): mean absolute activation over channels, bilinear upsampling to
the image size, then min-max normalization of every map to [0, 1]. Two nets' maps of the
same image and group are then compared with :func:`map_correlation` (Pearson over pixels)
or :func:`topk_iou` (overlap of the most active pixels); :func:`overlap_table` lists all net
pairs, which is what claim C7 (femoral-cartilage nets share activation regions with both
tibial-cartilage and meniscus nets) is judged on.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from itertools import combinations

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from kneelib.nets.unet import UNet2D, layer_groups

# ---------------------------------------------------------------------------------------------
# Extracting activations


def _groups(model: UNet2D, groups: Sequence[str] | None) -> list[str]:
    known = layer_groups(model.depth)
    if groups is None:
        return known
    unknown = [g for g in groups if g not in known]
    if unknown:
        raise ValueError(f"unknown layer groups {unknown}; this net has {known}")
    return list(groups)


def _as_batch(images: torch.Tensor | np.ndarray, device: torch.device) -> torch.Tensor:
    """(N, 1, H, W) or (N, H, W) array/tensor -> float32 tensor (N, 1, H, W) on ``device``."""
    x = torch.as_tensor(np.asarray(images) if not torch.is_tensor(images) else images)
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4:
        raise ValueError(f"images must be (N, 1, H, W) or (N, H, W), got {tuple(x.shape)}")
    return x.to(device=device, dtype=torch.float32)


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode (batch norm uses its running statistics), then the caller's mode again."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _forward_with_hooks(model: UNet2D, x: torch.Tensor, groups: list[str],
                        detach: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Run ``model(x)`` recording the output of each group; the hooks are always removed."""
    out: dict[str, torch.Tensor] = {}

    def hook_for(name: str):
        def hook(_module, _inputs, output):
            out[name] = output.detach() if detach else output
        return hook

    handles = [model.level(g).register_forward_hook(hook_for(g)) for g in groups]
    try:
        logits = model(x)
    finally:
        for h in handles:
            h.remove()
    return logits, out


def layer_activations(model: UNet2D, images: torch.Tensor | np.ndarray,
                      groups: Sequence[str] | None = None,
                      batch_size: int | None = None) -> dict[str, torch.Tensor]:
    """Outputs of the named levels of a U-Net, from forward hooks.

    The model runs in eval mode under ``torch.no_grad()``; its previous train/eval mode is
    restored afterwards and no hook is left registered, even if the forward pass fails.

    Args:
        model: a :class:`kneelib.nets.unet.UNet2D`.
        images: (N, 1, H, W) or (N, H, W) float tensor or array, normalized like the
            training data; moved to the model's device.
        groups: level names (default: all, in :func:`kneelib.nets.unet.layer_groups` order).
        batch_size: images per forward pass (default: all at once); bounds memory.

    Returns:
        group -> float32 CPU tensor (N, C, h, w): C and h, w are the level's channels and
        resolution, e.g. ``enc_layer{i}`` has ``base_filters * 2**(i-1)`` channels at
        (H / 2**(i-1), W / 2**(i-1)); ``head`` is the logits (N, 1, H, W).
    """
    groups = _groups(model, groups)
    x = _as_batch(images, _device(model))
    step = batch_size or max(len(x), 1)
    chunks: dict[str, list[torch.Tensor]] = {g: [] for g in groups}
    with _eval_mode(model), torch.no_grad():
        for start in range(0, len(x), step):
            _, acts = _forward_with_hooks(model, x[start:start + step], groups, detach=True)
            for g in groups:
                chunks[g].append(acts[g].float().cpu())
    return {g: torch.cat(chunks[g]) for g in groups}


# ---------------------------------------------------------------------------------------------
# Reducing activations to comparable maps


def _size(size: int | tuple[int, int] | None, h: int, w: int) -> tuple[int, int]:
    if size is None:
        return h, w
    if isinstance(size, int):
        return size, size
    return int(size[0]), int(size[1])


def normalize_maps(maps: torch.Tensor) -> torch.Tensor:
    """Min-max normalize every map to [0, 1] separately.

    Args:
        maps: (N, H, W) float tensor.

    Returns:
        (N, H, W) float tensor; each map's minimum becomes 0 and maximum 1. A constant map
        (no contrast to show) becomes all zeros instead of dividing by zero.
    """
    flat = maps.reshape(len(maps), -1)
    lo = flat.min(dim=1, keepdim=True).values
    span = flat.max(dim=1, keepdim=True).values - lo
    scaled = torch.where(span > 0, (flat - lo) / span.clamp_min(torch.finfo(flat.dtype).tiny),
                         torch.zeros_like(flat))
    return scaled.reshape(maps.shape)


def _upsample_normalize(maps: torch.Tensor, size: int | tuple[int, int] | None) -> torch.Tensor:
    """(N, h, w) -> bilinear to ``size`` -> min-max per map; (N, H', W') float32."""
    out_hw = _size(size, maps.shape[-2], maps.shape[-1])
    maps = maps.float()
    if out_hw != tuple(maps.shape[-2:]):
        maps = F.interpolate(maps[:, None], size=out_hw, mode="bilinear", align_corners=False)[:, 0]
    return normalize_maps(maps)


def reduce_activation(act: torch.Tensor, size: int | tuple[int, int] | None = None) -> torch.Tensor:
    """One comparable map per image: mean |activation| over channels, upsampled, scaled to [0, 1].

    Steps: (1) mean over channels of the absolute activation, so a channel counts whether
    it fires positively or negatively (after batch norm both signs carry signal);
    (2) bilinear upsampling (``align_corners=False``) to ``size``, so deep, coarse levels
    line up with the image; (3) min-max normalization of each map on its own (see
    :func:`normalize_maps`), so nets and levels whose activations differ in scale are
    comparable. For ``head`` the map is |logit|, i.e. how confident the net is.

    Args:
        act: (N, C, h, w) activation of one group.
        size: output size, an int for a square (size, size) or (H, W); None keeps (h, w).

    Returns:
        float32 tensor (N, H, W) with values in [0, 1].
    """
    if act.ndim != 4:
        raise ValueError(f"act must be (N, C, h, w), got {tuple(act.shape)}")
    return _upsample_normalize(act.float().abs().mean(dim=1), size)


def activation_maps(model: UNet2D, images: torch.Tensor | np.ndarray,
                    groups: Sequence[str] | None = None,
                    size: int | tuple[int, int] | None = None,
                    batch_size: int | None = None) -> dict[str, np.ndarray]:
    """:func:`layer_activations` followed by :func:`reduce_activation`, batch by batch.

    Args:
        model: a :class:`kneelib.nets.unet.UNet2D`.
        images: (N, 1, H, W) or (N, H, W) float tensor or array.
        groups: level names (default: all).
        size: output map size (default: the images' (H, W)).
        batch_size: images per forward pass (default: all at once); reducing each batch
            before the next keeps only the small maps in memory.

    Returns:
        group -> float32 array (N, H, W) with values in [0, 1].
    """
    x = _as_batch(images, torch.device("cpu"))
    size = size if size is not None else (x.shape[-2], x.shape[-1])
    step = batch_size or max(len(x), 1)
    parts: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(x), step):
        acts = layer_activations(model, x[start:start + step], groups)
        for g, a in acts.items():
            parts.setdefault(g, []).append(reduce_activation(a, size).numpy())
    return {g: np.concatenate(p).astype(np.float32) for g, p in parts.items()}


# ---------------------------------------------------------------------------------------------
# Overlap between two nets' maps


def _paired_maps(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two maps or stacks of maps -> float64 (N, P) each (P pixels), checking shapes."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"map shapes differ: {a.shape} vs {b.shape}")
    if a.ndim == 2:
        a, b = a[None], b[None]
    if a.ndim != 3:
        raise ValueError(f"maps must be (H, W) or (N, H, W), got {a.shape}")
    return a.reshape(len(a), -1), b.reshape(len(b), -1)


def map_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation over pixels, computed per image and averaged over images.

    Invariant to a positive affine change of either map's intensities (so to the min-max
    normalization). An image where either map is constant has no defined correlation and is
    left out of the average; if every image is like that the result is nan.

    Args:
        a: (N, H, W) or (H, W) map(s) of one net.
        b: same shape, the other net.

    Returns:
        mean correlation in [-1, 1] (or nan).
    """
    a, b = _paired_maps(a, b)
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    denom = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    valid = denom > 0
    if not valid.any():
        return float("nan")
    r = (a * b).sum(axis=1)[valid] / denom[valid]
    return float(np.clip(r, -1.0, 1.0).mean())


def _topk_mask(flat: np.ndarray, k: int) -> np.ndarray:
    """Bool (N, P): the k largest pixels of each row; ties broken by pixel order (row-major)."""
    order = np.argsort(-flat, axis=1, kind="stable")[:, :k]
    mask = np.zeros(flat.shape, dtype=bool)
    np.put_along_axis(mask, order, True, axis=1)
    return mask


def topk_iou(a: np.ndarray, b: np.ndarray, fraction: float = 0.1) -> float:
    """IoU of the most active pixels of two maps, per image, averaged over images.

    Each map's region is its k = max(1, round(fraction * pixels)) largest pixels (exactly k,
    ties broken by pixel order so the region size never depends on ties). With equal region
    sizes, IoU = overlap / (2k - overlap).

    Args:
        a: (N, H, W) or (H, W) map(s) of one net.
        b: same shape, the other net.
        fraction: share of the pixels in each region, in (0, 1].

    Returns:
        mean IoU in [0, 1].
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    a, b = _paired_maps(a, b)
    k = max(1, int(round(fraction * a.shape[1])))
    ma, mb = _topk_mask(a, k), _topk_mask(b, k)
    inter = np.logical_and(ma, mb).sum(axis=1)
    return float((inter / (2 * k - inter)).mean())


MEASURES = {"correlation": map_correlation, "topk_iou": topk_iou}


def overlap_table(maps_by_net: Mapping[str, Mapping[str, np.ndarray]], measure: str = "correlation",
                  fraction: float = 0.1) -> pd.DataFrame:
    """Overlap of activation maps for every unordered pair of nets and every shared group.

    Args:
        maps_by_net: net name (e.g. ``"F(s)"``, ``"T|F(s)"``) -> group -> maps (N, H, W)
            of the same N images, e.g. from :func:`activation_maps`.
        measure: ``"correlation"`` (:func:`map_correlation`) or ``"topk_iou"``
            (:func:`topk_iou` with ``fraction``).
        fraction: passed to :func:`topk_iou`.

    Returns:
        DataFrame with columns net_a, net_b, group, value: one row per pair (net_a before
        net_b in ``maps_by_net`` order, never a net with itself) and per group the two nets
        share, groups in net_a's order.
    """
    if measure not in MEASURES:
        raise ValueError(f"measure must be one of {sorted(MEASURES)}, got {measure!r}")
    rows = []
    for net_a, net_b in combinations(list(maps_by_net), 2):
        for group in [g for g in maps_by_net[net_a] if g in maps_by_net[net_b]]:
            a, b = maps_by_net[net_a][group], maps_by_net[net_b][group]
            value = topk_iou(a, b, fraction) if measure == "topk_iou" else map_correlation(a, b)
            rows.append({"net_a": net_a, "net_b": net_b, "group": group, "value": value})
    return pd.DataFrame(rows, columns=["net_a", "net_b", "group", "value"])
