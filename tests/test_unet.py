"""kneelib.nets.unet: shapes, stable layer names, wiring, He initialization, batch-norm settings."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from kneelib.nets.unet import BN_EPS, BN_MOMENTUM, UNet2D, group_of, init_he, init_head_bias, layer_groups

pytestmark = pytest.mark.usefixtures("one_thread")


# ------------------------------------------------------------------ shapes


@pytest.mark.parametrize("depth,size", [(1, 8), (2, 8), (3, 16), (4, 24), (5, 32)])
@pytest.mark.parametrize("batch", [1, 3])
def test_output_shape(depth: int, size: int, batch: int) -> None:
    model = UNet2D(depth=depth, base_filters=2, seed=0).eval()
    with torch.no_grad():
        out = model(torch.randn(batch, 1, size, size + 2 ** (depth - 1)))
    assert out.shape == (batch, 1, size, size + 2 ** (depth - 1))
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_output_shape_train_mode_and_channels_last() -> None:
    model = UNet2D(depth=3, base_filters=4, seed=0).to(memory_format=torch.channels_last)
    x = torch.randn(5, 1, 16, 16).contiguous(memory_format=torch.channels_last)
    assert model(x).shape == (5, 1, 16, 16)


@pytest.mark.parametrize("shape", [(1, 1, 12, 16), (1, 1, 16, 20), (2, 1, 18, 18)])
def test_forward_rejects_size_not_divisible(shape: tuple[int, ...]) -> None:
    model = UNet2D(depth=4, base_filters=2, seed=0)  # needs multiples of 8
    with pytest.raises(ValueError, match="divisible by 8"):
        model(torch.randn(*shape))


def test_forward_rejects_wrong_channels_and_rank() -> None:
    model = UNet2D(depth=2, base_filters=2, seed=0)
    with pytest.raises(ValueError):
        model(torch.randn(1, 2, 8, 8))
    with pytest.raises(ValueError):
        model(torch.randn(1, 8, 8))


@pytest.mark.parametrize("args", [(0, 4), (3, 0), (-1, 4)])
def test_constructor_rejects_bad_sizes(args: tuple[int, int]) -> None:
    with pytest.raises(ValueError):
        UNet2D(*args)


# ------------------------------------------------------------------ names


@pytest.mark.parametrize("depth", [1, 3, 6])
def test_state_dict_keys_use_paper_level_names(depth: int) -> None:
    model = UNet2D(depth=depth, base_filters=2, seed=0)
    expected = {f"enc_layer{i}" for i in range(1, depth + 1)} | {f"dec_layer{i}" for i in range(1, depth)} | {"head"}
    groups = {group_of(k) for k in model.state_dict()}
    assert groups == expected
    # every group has weights, and key prefixes are exactly "<group>."
    for k in model.state_dict():
        assert k.startswith(group_of(k) + ".")


def test_level_contents() -> None:
    sd = UNet2D(depth=3, base_filters=4, seed=0).state_dict()
    bn = {"bn.weight", "bn.bias", "bn.running_mean", "bn.running_var", "bn.num_batches_tracked"}
    conv = {"conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias"}
    for g in ("enc_layer1", "enc_layer2", "enc_layer3"):
        assert {k.split(".", 1)[1] for k in sd if group_of(k) == g} == conv | bn
    for g in ("dec_layer1", "dec_layer2"):
        assert {k.split(".", 1)[1] for k in sd if group_of(k) == g} == conv | bn | {"up.weight", "up.bias"}
    assert {k for k in sd if group_of(k) == "head"} == {"head.weight", "head.bias"}


def test_layer_groups_order() -> None:
    assert layer_groups(1) == ["enc_layer1", "head"]
    assert layer_groups(3) == ["enc_layer1", "enc_layer2", "enc_layer3", "dec_layer2", "dec_layer1", "head"]
    six = layer_groups(6)
    assert six[:6] == [f"enc_layer{i}" for i in range(1, 7)]
    assert six[6:11] == [f"dec_layer{i}" for i in range(5, 0, -1)]
    assert six[-1] == "head"
    # same set as the model's groups
    assert set(six) == {group_of(k) for k in UNet2D(6, 1, seed=0).state_dict()}


def test_group_of() -> None:
    assert group_of("enc_layer6.conv2.weight") == "enc_layer6"
    assert group_of("dec_layer1.up.weight") == "dec_layer1"
    assert group_of("head.bias") == "head"


def test_reference_parameter_count() -> None:
    n = sum(p.numel() for p in UNet2D(6, 32).parameters())
    assert 31_000_000 <= n <= 35_000_000


# ------------------------------------------------------------------ wiring


@pytest.mark.parametrize("depth,base", [(3, 4), (6, 32)])
def test_conv_wiring(depth: int, base: int) -> None:
    model = UNet2D(depth=depth, base_filters=base, in_channels=1) if depth < 6 else UNet2D(6, 32)
    width = [base * 2**i for i in range(depth)]
    for i in range(1, depth + 1):
        lvl = model.level(f"enc_layer{i}")
        assert isinstance(lvl.conv1, nn.Conv2d) and isinstance(lvl.conv2, nn.Conv2d)
        assert lvl.conv1.in_channels == (1 if i == 1 else width[i - 2])
        assert lvl.conv1.out_channels == lvl.conv2.in_channels == lvl.conv2.out_channels == width[i - 1]
        assert lvl.conv1.kernel_size == lvl.conv2.kernel_size == (3, 3)
        assert lvl.conv1.padding == (1, 1)
        assert lvl.bn.num_features == width[i - 1]
    for i in range(1, depth):
        lvl = model.level(f"dec_layer{i}")
        assert isinstance(lvl.up, nn.ConvTranspose2d)
        assert lvl.up.in_channels == 2 * lvl.up.out_channels == 2 * width[i - 1]
        assert lvl.up.kernel_size == (3, 3) and lvl.up.stride == (2, 2)
        assert lvl.conv1.in_channels == 2 * width[i - 1]
        assert lvl.conv1.out_channels == lvl.conv2.out_channels == width[i - 1]
        assert lvl.bn.num_features == width[i - 1]
    assert isinstance(model.head, nn.Conv2d)
    assert model.head.in_channels == width[0] and model.head.out_channels == 1
    assert model.head.kernel_size == (1, 1)


def test_receptive_field_is_local() -> None:
    """A change in one pixel changes the output there but not far away (convolutions, no global ops;
    batch norm in eval mode is a per-channel affine map)."""
    model = UNet2D(depth=2, base_filters=4, seed=1).eval()
    x = torch.randn(1, 1, 32, 32)
    y = x.clone()
    y[0, 0, 3, 3] += 5.0
    with torch.no_grad():
        d = (model(x) - model(y)).abs()[0, 0]
    assert d[3, 3] > 0
    assert d[20:, 20:].max() == 0


# ------------------------------------------------------------------ initialization


def _fan_in(m: nn.Module) -> int:
    k = m.weight.shape[2] * m.weight.shape[3]
    return m.weight.shape[1] * k  # Conv2d: in * k * k; ConvTranspose2d (in, out, k, k): out * k * k


def test_he_init_statistics() -> None:
    model = UNet2D(depth=4, base_filters=32, seed=3)
    checked = 0
    for name, m in model.named_modules():
        if not isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            continue
        assert torch.count_nonzero(m.bias) == 0, name
        if m.weight.numel() < 50_000:
            continue
        w = m.weight.detach().double()
        target = math.sqrt(2.0 / _fan_in(m))
        assert abs(w.mean().item()) < 0.02 * target, name
        assert w.std().item() == pytest.approx(target, rel=0.03), name
        checked += 1
    assert checked >= 6
    # ConvTranspose2d uses dimension 1 for fan_in: (in=256, out=128) -> std sqrt(2 / (128*9)),
    # clearly different from sqrt(2 / (256*9)).
    up = model.dec_layer3.up
    assert up.weight.shape == (256, 128, 3, 3)
    assert up.weight.std().item() == pytest.approx(math.sqrt(2 / (128 * 9)), rel=0.03)


def test_init_is_not_pytorch_default() -> None:
    conv = UNet2D(depth=4, base_filters=32, seed=0).enc_layer4.conv2
    default_std = 1 / math.sqrt(3 * _fan_in(conv))  # kaiming_uniform(a=sqrt(5)) std
    assert conv.weight.std().item() > 2 * default_std


def test_batch_norm_starts_at_identity_and_settings() -> None:
    model = UNet2D(depth=3, base_filters=4, seed=0)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(bns) == 3 + 2
    for bn in bns:
        assert bn.momentum == BN_MOMENTUM == 0.05
        assert bn.eps == BN_EPS == 1e-3
        assert torch.all(bn.weight == 1) and torch.all(bn.bias == 0)


def test_seed_determinism() -> None:
    a = UNet2D(depth=3, base_filters=4, seed=7).state_dict()
    b = UNet2D(depth=3, base_filters=4, seed=7).state_dict()
    c = UNet2D(depth=3, base_filters=4, seed=8).state_dict()
    assert a.keys() == b.keys() == c.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    weights = [k for k in a if k.endswith("weight") and "bn" not in k]
    assert all(not torch.equal(a[k], c[k]) for k in weights)


def test_init_he_reinitializes_in_place() -> None:
    model = UNet2D(depth=2, base_filters=4, seed=1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    init_he(model, seed=1)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_init_head_bias_moves_only_the_output_bias() -> None:
    model = UNet2D(depth=2, base_filters=4, seed=3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    init_head_bias(model, -3.0)
    after = model.state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed == ["head.bias"] and after["head.bias"].item() == -3.0
    model.eval()
    with torch.no_grad():  # an all-zero input: every layer's output is its bias path, so p ~ sigmoid(-3)
        p = torch.sigmoid(model(torch.zeros(1, 1, 8, 8)))
    assert p.mean().item() < 0.2
    with pytest.raises(ValueError, match="finite"):
        init_head_bias(model, math.inf)
