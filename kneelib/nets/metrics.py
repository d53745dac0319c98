"""Segmentation metrics of one scan: Dice, VOE, CV of volumes, ASSD (mm), volumes (mL).

All functions take binary masks of one scan, numpy arrays of shape (H, W, D) (any number of
axes works as long as ``spacing`` has one entry per axis). A mask may be ``bool`` or an
integer array holding only 0 and 1; anything else (other integers, floats such as
probabilities) raises ``ValueError``, so an unthresholded prediction cannot slip through.
``pred`` and ``truth`` must have the same shape.

Empty masks give a defined value, never an exception:

========  ===============  =====================
metric    both empty       exactly one empty
========  ===============  =====================
dice      1.0              0.0
voe       0.0              1.0
cv        0.0              sqrt(2) (its maximum)
assd      0.0              nan (no surface to measure to)
========  ===============  =====================
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _as_mask(mask: np.ndarray, name: str) -> np.ndarray:
    """Return ``mask`` as a bool array; accept bool or integer 0/1, reject anything else."""
    arr = np.asarray(mask)
    if arr.dtype == np.bool_:
        return arr
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must be a bool or 0/1 integer mask, got dtype {arr.dtype} "
                         "(threshold probabilities first)")
    if arr.size and (arr.min() < 0 or arr.max() > 1):
        raise ValueError(f"{name} must hold only 0 and 1, found values in [{arr.min()}, {arr.max()}]")
    return arr.astype(bool)


def _pair(pred: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, truth = _as_mask(pred, "pred"), _as_mask(truth, "truth")
    if pred.shape != truth.shape:
        raise ValueError(f"pred and truth shapes differ: {pred.shape} vs {truth.shape}")
    return pred, truth


def _spacing(spacing: Sequence[float], ndim: int) -> tuple[float, ...]:
    sp = tuple(float(s) for s in spacing)
    if len(sp) != ndim or not all(np.isfinite(s) and s > 0 for s in sp):
        raise ValueError(f"spacing must be {ndim} positive finite values in mm, got {tuple(spacing)}")
    return sp


def dice(pred: np.ndarray, truth: np.ndarray) -> float:
    """Dice coefficient 2|A∩B| / (|A| + |B|).

    Args:
        pred: predicted mask (H, W, D), bool or 0/1 integer.
        truth: reference mask, same shape.

    Returns:
        Dice in [0, 1]; 1.0 when both masks are empty, 0.0 when only one is.
    """
    pred, truth = _pair(pred, truth)
    total = int(pred.sum()) + int(truth.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.logical_and(pred, truth).sum()) / total


def voe(pred: np.ndarray, truth: np.ndarray) -> float:
    """Volumetric overlap error 1 - |A∩B| / |A∪B| (one minus the Jaccard index).

    Args:
        pred: predicted mask (H, W, D), bool or 0/1 integer.
        truth: reference mask, same shape.

    Returns:
        VOE in [0, 1] as a fraction (not percent); 0.0 when both masks are empty, 1.0 when
        only one is.
    """
    pred, truth = _pair(pred, truth)
    union = int(np.logical_or(pred, truth).sum())
    if union == 0:
        return 0.0
    return 1.0 - int(np.logical_and(pred, truth).sum()) / union


def cv(pred: np.ndarray, truth: np.ndarray) -> float:
    """Coefficient of variation of the two volumes: std / mean of (|A|, |B|).

    The standard deviation is the sample one (ddof=1), as in the knee-segmentation
    literature (e.g. Desai et al.), so for two volumes a, b: CV = sqrt(2) |a - b| / (a + b).
    The ratio is unitless, so voxel counts give the same value as volumes in mL.

    Args:
        pred: predicted mask (H, W, D), bool or 0/1 integer.
        truth: reference mask, same shape.

    Returns:
        CV as a fraction (not percent), in [0, sqrt(2)]; 0.0 when both masks are empty.
    """
    pred, truth = _pair(pred, truth)
    vols = np.array([pred.sum(), truth.sum()], dtype=np.float64)
    if vols.sum() == 0:
        return 0.0
    return float(np.std(vols, ddof=1) / np.mean(vols))


def _crop_to_union(pred: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Crop both masks to the bounding box of their union plus a 1-voxel margin.

    The surface distances do not change: every surface voxel lies inside the box, and the
    margin keeps the erosion that finds the surface seeing background where the full
    volume has it. It saves most of the distance-transform time on a small tissue.
    """
    idx = np.nonzero(np.logical_or(pred, truth))
    box = tuple(slice(max(int(i.min()) - 1, 0), int(i.max()) + 2) for i in idx)
    return pred[box], truth[box]


def assd(pred: np.ndarray, truth: np.ndarray, spacing: Sequence[float]) -> float:
    """Average symmetric surface distance in mm (``medpy.metric.binary.assd``).

    Surfaces are the mask voxels with a background face neighbour (6-connectivity in 3-D);
    distances are Euclidean, scaled by ``spacing``. medpy's definition is the mean of the
    two directed averages: (mean over pred's surface of the distance to truth's surface +
    mean over truth's surface of the distance to pred's surface) / 2, which is symmetric.

    Args:
        pred: predicted mask (H, W, D), bool or 0/1 integer.
        truth: reference mask, same shape.
        spacing: voxel size in mm along each axis, e.g. (0.365, 0.365, 0.7).

    Returns:
        ASSD in mm; 0.0 when both masks are empty; nan when exactly one is empty (there is
        no surface to measure to, and nan keeps the scan out of ``np.nanmean`` summaries
        instead of letting an infinity swamp them).
    """
    pred, truth = _pair(pred, truth)
    sp = _spacing(spacing, pred.ndim)
    n_pred, n_truth = int(pred.sum()), int(truth.sum())
    if n_pred == 0 and n_truth == 0:
        return 0.0
    if n_pred == 0 or n_truth == 0:
        return float("nan")
    # Imported here, not at module level: kneelib.nets.evaluate imports this module, and the GPU check
    # (benchmarks/gpu_check.py) uses evaluate.predict_volume on machines that have no medpy.
    from medpy.metric.binary import assd as medpy_assd

    pred, truth = _crop_to_union(pred, truth)
    return float(medpy_assd(pred, truth, voxelspacing=sp))


def volume_ml(mask: np.ndarray, spacing: Sequence[float]) -> float:
    """Volume of a mask in millilitres.

    Args:
        mask: binary mask (H, W, D), bool or 0/1 integer.
        spacing: voxel size in mm along each axis.

    Returns:
        number of voxels times the voxel volume (mm^3), divided by 1000 (1 mL = 1000 mm^3).
    """
    mask = _as_mask(mask, "mask")
    sp = _spacing(spacing, mask.ndim)
    return float(mask.sum()) * float(np.prod(sp)) / 1000.0


def scan_metrics(pred: np.ndarray, truth: np.ndarray, spacing: Sequence[float]) -> dict[str, float]:
    """All metrics of one scan.

    Args:
        pred: predicted mask (H, W, D), bool or 0/1 integer.
        truth: reference mask, same shape.
        spacing: voxel size in mm along each axis.

    Returns:
        ``{"dice", "voe", "cv", "assd_mm", "pred_ml", "truth_ml"}``: Dice, VOE and CV as
        fractions, ASSD in mm, the two volumes in mL.
    """
    pred, truth = _pair(pred, truth)
    return {
        "dice": dice(pred, truth),
        "voe": voe(pred, truth),
        "cv": cv(pred, truth),
        "assd_mm": assd(pred, truth, spacing),
        "pred_ml": volume_ml(pred, spacing),
        "truth_ml": volume_ml(truth, spacing),
    }
