"""Soft Dice loss, per sample, as in the reference MedSegPy recipe (facts.md section 3)."""

from __future__ import annotations

import torch


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """Mean over the batch of 1 - (2 sum(y p) + smooth) / (sum(y) + sum(p) + smooth).

    Args:
        logits: (N, 1, H, W) raw network outputs; p = sigmoid(logits).
        target: (N, 1, H, W) binary mask (0/1, any float dtype).
        smooth: added to numerator and denominator. 1.0 (one pixel) keeps the loss of a slice
            without the tissue near 0 once the net predicts nothing there, instead of near 1.

    Returns: scalar tensor in [0, 1], computed in float32 even under autocast.
    """
    if logits.shape != target.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and target {tuple(target.shape)} differ in shape")
    p = torch.sigmoid(logits.float()).flatten(1)  # (N, H*W)
    y = target.float().flatten(1)
    dice = (2 * (p * y).sum(1) + smooth) / (p.sum(1) + y.sum(1) + smooth)
    return (1 - dice).mean()
