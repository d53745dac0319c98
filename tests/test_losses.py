"""kneelib.nets.losses.soft_dice_loss against values computed by hand."""

from __future__ import annotations

import pytest
import torch

from kneelib.nets.losses import REDUCTIONS, soft_dice_loss

BIG = 40.0  # sigmoid(40) == 1 and sigmoid(-40) ~ 4e-18 in float32: hard 0/1 predictions


def _mask(n_on: int, size: int = 8) -> torch.Tensor:
    m = torch.zeros(1, 1, size, size)
    m.view(-1)[:n_on] = 1
    return m


def _logits_from(pred: torch.Tensor) -> torch.Tensor:
    """Logits whose sigmoid is (numerically) the 0/1 prediction ``pred``."""
    return torch.where(pred > 0.5, torch.tensor(BIG), torch.tensor(-BIG))


# What holds under either reduction (on one slice the two are the same Dice) is tested under both.
both_reductions = pytest.mark.parametrize("reduction", REDUCTIONS)


@both_reductions
def test_perfect_prediction_is_zero(reduction: str) -> None:
    y = _mask(8)
    assert soft_dice_loss(_logits_from(y), y, reduction=reduction).item() == pytest.approx(0.0, abs=1e-6)


@both_reductions
def test_all_zero_prediction(reduction: str) -> None:
    # 1 - (2*0 + 1) / (0 + 8 + 1) = 1 - 1/9
    y = _mask(8)
    loss = soft_dice_loss(torch.full_like(y, -BIG), y, reduction=reduction)
    assert loss.item() == pytest.approx(1 - 1 / 9, abs=1e-6)


@both_reductions
def test_empty_mask_empty_prediction_is_zero(reduction: str) -> None:
    y = torch.zeros(1, 1, 8, 8)
    assert soft_dice_loss(torch.full_like(y, -BIG), y, reduction=reduction).item() == pytest.approx(0.0, abs=1e-6)


@both_reductions
def test_half_overlap(reduction: str) -> None:
    # mask: first 8 pixels; prediction: pixels 4..11 -> overlap 4, sum(y)=8, sum(p)=8
    # loss = 1 - (2*4 + 1) / (8 + 8 + 1) = 1 - 9/17
    y = _mask(8)
    pred = torch.zeros_like(y)
    pred.view(-1)[4:12] = 1
    loss = soft_dice_loss(_logits_from(pred), y, reduction=reduction)
    assert loss.item() == pytest.approx(1 - 9 / 17, abs=1e-6)


@both_reductions
def test_soft_probabilities_zero_logits(reduction: str) -> None:
    # logits 0 -> p = 0.5 everywhere; 64 pixels, 8 in the mask:
    # 1 - (2*0.5*8 + 1) / (32 + 8 + 1) = 1 - 9/41
    y = _mask(8)
    loss = soft_dice_loss(torch.zeros_like(y), y, reduction=reduction)
    assert loss.item() == pytest.approx(1 - 9 / 41, abs=1e-6)


@both_reductions
def test_smooth_parameter(reduction: str) -> None:
    y = _mask(8)
    loss = soft_dice_loss(torch.full_like(y, -BIG), y, smooth=2.0, reduction=reduction)
    assert loss.item() == pytest.approx(1 - 2 / 10, abs=1e-6)


def test_per_sample_average() -> None:
    y1, y2 = _mask(8), _mask(8)
    p1 = torch.full_like(y1, -BIG)        # loss 1 - 1/9
    p2 = torch.zeros_like(y2)
    p2.view(-1)[4:12] = 1
    p2 = _logits_from(p2)                 # loss 1 - 9/17
    batch = soft_dice_loss(torch.cat([p1, p2]), torch.cat([y1, y2]), reduction="sample")
    expected = ((1 - 1 / 9) + (1 - 9 / 17)) / 2
    assert batch.item() == pytest.approx(expected, abs=1e-6)
    # not a pooled Dice over the batch: pooled would be 1 - (2*4 + 1) / (8 + 16 + 1)
    assert batch.item() != pytest.approx(1 - 9 / 25, abs=1e-3)


@both_reductions
def test_target_dtypes_and_layout(reduction: str) -> None:
    y = _mask(8)
    logits = torch.randn_like(y)
    ref = soft_dice_loss(logits, y, reduction=reduction)
    assert soft_dice_loss(logits, y.to(torch.uint8), reduction=reduction).item() == pytest.approx(ref.item(), abs=1e-7)
    cl = soft_dice_loss(logits.contiguous(memory_format=torch.channels_last), y, reduction=reduction)
    assert cl.item() == pytest.approx(ref.item(), abs=1e-7)
    assert ref.dtype == torch.float32 and ref.ndim == 0


@both_reductions
def test_bf16_logits_computed_in_float32(reduction: str) -> None:
    y = _mask(8)
    logits = torch.randn_like(y)
    loss = soft_dice_loss(logits.to(torch.bfloat16), y, reduction=reduction)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(soft_dice_loss(logits, y, reduction=reduction).item(), abs=1e-2)


@pytest.mark.parametrize("shapes", [((2, 1, 8, 8), (2, 1, 8, 4)), ((2, 1, 8, 8), (1, 1, 8, 8)),
                                    ((2, 1, 8, 8), (2, 8, 8))])
def test_shape_mismatch_raises(shapes: tuple[tuple[int, ...], tuple[int, ...]]) -> None:
    with pytest.raises(ValueError, match="differ in shape"):
        soft_dice_loss(torch.zeros(shapes[0]), torch.zeros(shapes[1]), reduction="batch")


@both_reductions
def test_range_and_gradient_finite(reduction: str) -> None:
    torch.manual_seed(0)
    logits = (torch.randn(4, 1, 16, 16) * 30).requires_grad_()
    y = (torch.rand(4, 1, 16, 16) > 0.7).float()
    y[1] = 0  # one sample without the tissue
    loss = soft_dice_loss(logits, y, reduction=reduction)
    assert 0.0 <= loss.item() <= 1.0
    loss.backward()
    assert logits.grad is not None
    assert torch.isfinite(logits.grad).all()
    assert logits.grad.abs().sum() > 0


@both_reductions
def test_gradient_direction(reduction: str) -> None:
    """Raising the logit of a mask pixel lowers the loss; raising a background logit raises it."""
    y = _mask(8)
    logits = torch.zeros_like(y, requires_grad=True)
    soft_dice_loss(logits, y, reduction=reduction).backward()
    g = logits.grad.view(-1)
    assert (g[:8] < 0).all()
    assert (g[8:] > 0).all()


def test_batch_reduction_pools_pixels_and_punishes_false_positives_on_empty_slices() -> None:
    from kneelib.nets.losses import dice_sums

    y = torch.zeros(2, 1, 4, 4)
    y[0, 0, :2] = 1  # 8 pixels in slice 0; slice 1 has no tissue
    perfect = torch.where(y > 0, 50.0, -50.0)
    flooded = perfect.clone()
    flooded[1] = 50.0  # every pixel of the empty slice marked
    # per sample the empty slice costs 16/17 whether 16 pixels or just a few are marked
    assert soft_dice_loss(flooded, y, reduction="sample").item() == pytest.approx((0 + 16 / 17) / 2, abs=1e-6)
    # over the batch: 1 - (2*8 + 1) / (24 + 8 + 1)
    assert soft_dice_loss(flooded, y, reduction="batch").item() == pytest.approx(1 - 17 / 33, abs=1e-6)
    assert soft_dice_loss(perfect, y, reduction="batch").item() == pytest.approx(0.0, abs=1e-6)
    inter, p, t = dice_sums(flooded, y).tolist()
    assert (round(inter), round(p), round(t)) == (8, 24, 8)
    with pytest.raises(ValueError, match="reduction 'pixel'"):
        soft_dice_loss(perfect, y, reduction="pixel")


def test_reduction_has_no_default() -> None:
    """The suite trains with "batch" and validates with "sample": a caller must say which it means."""
    y = _mask(8)
    with pytest.raises(TypeError, match="reduction"):
        soft_dice_loss(torch.zeros_like(y), y)
    with pytest.raises(TypeError):
        soft_dice_loss(torch.zeros_like(y), y, 1.0, "batch")  # keyword only
