"""Activation hooks, map reduction and overlap measures."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kneelib.compare import activations as A
from kneelib.nets.unet import UNet2D

EXPECTED_SHAPES = {
    "enc_layer1": (2, 4, 32, 32),
    "enc_layer2": (2, 8, 16, 16),
    "enc_layer3": (2, 16, 8, 8),
    "dec_layer2": (2, 8, 16, 16),
    "dec_layer1": (2, 4, 32, 32),
    "head": (2, 1, 32, 32),
}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def model() -> UNet2D:
    return UNet2D(depth=3, base_filters=4, seed=0)


@pytest.fixture
def images() -> torch.Tensor:
    return torch.randn(2, 1, 32, 32, generator=torch.Generator().manual_seed(1))


def no_hooks(model: torch.nn.Module) -> bool:
    return all(not m._forward_hooks for m in model.modules())


def test_layer_activation_shapes(model, images):
    acts = A.layer_activations(model, images)
    assert list(acts) == ["enc_layer1", "enc_layer2", "enc_layer3", "dec_layer2", "dec_layer1", "head"]
    assert {g: tuple(a.shape) for g, a in acts.items()} == EXPECTED_SHAPES
    assert all(a.dtype == torch.float32 and not a.requires_grad for a in acts.values())
    assert no_hooks(model)


def test_layer_activations_eval_mode_restored(model, images):
    model.train()
    bn = model.enc_layer1.bn
    before = bn.running_mean.clone()
    acts = A.layer_activations(model, images, groups=["head"])
    # Eval mode: batch norm used, and did not update, its running statistics.
    assert torch.equal(bn.running_mean, before)
    assert model.training
    model.eval()
    with torch.no_grad():
        assert torch.allclose(acts["head"], model(images))


def test_layer_activations_batched_and_numpy(model, images):
    whole = A.layer_activations(model, images, groups=["enc_layer2", "dec_layer1"])
    parts = A.layer_activations(model, images[:, 0].numpy(), groups=["enc_layer2", "dec_layer1"],
                                batch_size=1)
    for g in whole:
        assert torch.allclose(whole[g], parts[g], atol=1e-5)


def test_hooks_removed_when_forward_fails(model):
    with pytest.raises(ValueError):
        A.layer_activations(model, torch.zeros(1, 1, 30, 30))  # 30 not divisible by 4
    assert no_hooks(model)


def test_unknown_group(model, images):
    with pytest.raises(ValueError, match="enc_layer9"):
        A.layer_activations(model, images, groups=["enc_layer9"])


def test_reduce_activation_hand_computed():
    act = torch.tensor([[[[1.0, -3.0], [2.0, 0.0]],
                         [[-1.0, 1.0], [0.0, 4.0]]]])  # (1, 2, 2, 2)
    # mean |x| over channels = [[1, 2], [1, 2]] -> min-max -> [[0, 1], [0, 1]]
    out = A.reduce_activation(act)
    assert out.shape == (1, 2, 2)
    assert torch.allclose(out, torch.tensor([[[0.0, 1.0], [0.0, 1.0]]]))


def test_reduce_activation_upsampling_and_per_map_normalization():
    gen = torch.Generator().manual_seed(0)
    act = torch.randn(3, 5, 4, 4, generator=gen)
    act[1] *= 100.0  # a sample on a very different scale
    act[2] = 7.0  # a constant map
    out = A.reduce_activation(act, size=16)
    assert out.shape == (3, 16, 16)
    assert torch.allclose(out[:2].amin(dim=(1, 2)), torch.zeros(2))
    assert torch.allclose(out[:2].amax(dim=(1, 2)), torch.ones(2))
    assert torch.equal(out[2], torch.zeros(16, 16))
    # Scale-invariant: sample 1 scaled by 100 gives the same map as unscaled.
    assert torch.allclose(out[1], A.reduce_activation(act[1:2] / 100.0, size=16)[0], atol=1e-6)
    assert A.reduce_activation(act, size=(8, 12)).shape == (3, 8, 12)


def test_activation_maps(model, images):
    maps = A.activation_maps(model, images, groups=["enc_layer3", "head"], batch_size=1)
    assert set(maps) == {"enc_layer3", "head"}
    for m in maps.values():
        assert m.shape == (2, 32, 32) and m.dtype == np.float32
        assert m.min() == pytest.approx(0.0) and m.max() == pytest.approx(1.0)
    acts = A.layer_activations(model, images, groups=["enc_layer3"])
    expected = A.reduce_activation(acts["enc_layer3"], 32).numpy()
    assert np.allclose(maps["enc_layer3"], expected, atol=1e-6)
    assert no_hooks(model)


def test_map_correlation():
    gen = np.random.default_rng(0)
    a = gen.random((3, 8, 8))
    assert A.map_correlation(a, a) == pytest.approx(1.0)
    assert A.map_correlation(a, 5.0 * a + 2.0) == pytest.approx(1.0)  # affine invariance
    assert A.map_correlation(a, -2.0 * a + 1.0) == pytest.approx(-1.0)
    # Hand case: a = [1, 2, 3], b = [1, 3, 2]: deviations (-1, 0, 1), (-1, 1, 0): r = 1 / 2.
    x = np.array([[1.0, 2.0, 3.0]])
    y = np.array([[1.0, 3.0, 2.0]])
    assert A.map_correlation(x, y) == pytest.approx(0.5)
    # Averaged over samples: (1 + 0.5) / 2.
    assert A.map_correlation(np.stack([x, x]), np.stack([x, y])) == pytest.approx(0.75)
    # A constant map has no correlation: left out of the average, or nan if all are constant.
    assert A.map_correlation(np.stack([x, x]), np.stack([x, np.zeros_like(x)])) == pytest.approx(1.0)
    assert np.isnan(A.map_correlation(np.zeros((1, 3)), x))


def test_topk_iou():
    gen = np.random.default_rng(1)
    a = gen.random((2, 10, 10))
    assert A.topk_iou(a, a, 0.1) == pytest.approx(1.0)
    # Disjoint top regions.
    left = np.zeros((1, 4, 4))
    left[0, :, :2] = 1.0
    assert A.topk_iou(left, 1.0 - left, fraction=0.5) == 0.0
    # Hand case: 10 pixels, top 20% = 2 each; they share one pixel -> IoU = 1 / 3.
    x = np.array([[9.0, 8.0, 0, 0, 0, 0, 0, 0, 0, 0]]).reshape(1, 2, 5)
    y = np.array([[9.0, 0, 8.0, 0, 0, 0, 0, 0, 0, 0]]).reshape(1, 2, 5)
    assert A.topk_iou(x, y, fraction=0.2) == pytest.approx(1 / 3)
    with pytest.raises(ValueError):
        A.topk_iou(x, y, fraction=0.0)
    with pytest.raises(ValueError):
        A.topk_iou(x, y[:, :1])


def make_maps(nets, groups, n=3, h=12, w=12, seed=0):
    gen = np.random.default_rng(seed)
    return {net: {g: gen.random((n, h, w)).astype(np.float32) for g in groups} for net in nets}


def test_overlap_table():
    nets = ["F(s)", "T|F(s)", "M|F(s)"]
    maps = make_maps(nets, ["enc_layer1", "dec_layer1"])
    table = A.overlap_table(maps)
    assert list(table.columns) == ["net_a", "net_b", "group", "value"]
    assert len(table) == 3 * 2
    pairs = set(zip(table.net_a, table.net_b, strict=True))
    assert pairs == {("F(s)", "T|F(s)"), ("F(s)", "M|F(s)"), ("T|F(s)", "M|F(s)")}
    row = table[(table.net_a == "F(s)") & (table.net_b == "M|F(s)") & (table.group == "dec_layer1")]
    expected = A.map_correlation(maps["F(s)"]["dec_layer1"], maps["M|F(s)"]["dec_layer1"])
    assert row.value.item() == pytest.approx(expected)
    iou = A.overlap_table(maps, measure="topk_iou", fraction=0.2)
    expected = A.topk_iou(maps["F(s)"]["enc_layer1"], maps["T|F(s)"]["enc_layer1"], 0.2)
    assert iou.value.iloc[0] == pytest.approx(expected)
    with pytest.raises(ValueError):
        A.overlap_table(maps, measure="cosine")
    single = A.overlap_table({"F(s)": maps["F(s)"]})  # one net: no pair, but the same columns
    assert single.empty and list(single.columns) == ["net_a", "net_b", "group", "value"]
