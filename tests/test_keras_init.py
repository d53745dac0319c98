"""The authors' Keras 2.1.6 he_normal as an init option, and the distance null of two such inits."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from kneelib.compare import distance_tables
from kneelib.compare import distances as D
from kneelib.core.profiles import PROFILES, get_profile
from kneelib.nets import train
from kneelib.nets.train import TrainConfig
from kneelib.nets.unet import UNet2D, init_he


def test_default_init_is_kaiming_normal_on_the_same_generator_bitwise():
    net = UNet2D(depth=3, base_filters=4, seed=7)
    gen = torch.Generator().manual_seed(7)
    for name, m in UNet2D(depth=3, base_filters=4).named_modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            expected = torch.empty_like(m.weight)
            nn.init.kaiming_normal_(expected, mode="fan_in", nonlinearity="relu", generator=gen)
            assert torch.equal(net.get_submodule(name).weight, expected), name
    assert torch.equal(UNet2D(3, 4, seed=7, init="he_normal").state_dict()["head.weight"], net.head.weight)


def test_keras_init_is_a_normal_cut_at_two_sd_without_the_variance_correction():
    net = UNet2D(depth=3, base_filters=16, seed=3, init="keras_he_2_1_6")
    for name, m in net.named_modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            w = m.weight.detach()
            he_std = math.sqrt(2 / (w.shape[1] * w.shape[2] * w.shape[3]))  # dim 1 for both conv kinds
            assert w.abs().max().item() <= 2 * he_std * (1 + 1e-6), name
            if w.numel() >= 4000:
                assert w.std().item() == pytest.approx(0.87962566 * he_std, rel=0.03), name
            assert torch.count_nonzero(m.bias) == 0
    big = net.enc_layer3.conv2.weight.detach()  # 64 x 64 x 3 x 3: 36864 weights
    he_std = math.sqrt(2 / (64 * 9))
    assert big.std().item() == pytest.approx(0.8796 * he_std, rel=0.02)
    assert big.abs().max().item() > 1.9 * he_std  # it is the cut, not a smaller scale, that bounds it
    # seeded: the same weights from the same seed, other weights from he_normal's
    again = UNet2D(depth=3, base_filters=16, seed=3, init="keras_he_2_1_6")
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), again.state_dict().values()))
    assert not torch.equal(big, UNet2D(depth=3, base_filters=16, seed=3).enc_layer3.conv2.weight)


def test_truncated_std_is_kerass_later_correction_constant():
    assert D.truncated_std(2.0) == pytest.approx(0.87962566103423978, abs=1e-15)


def test_the_init_option_is_validated_and_reaches_the_net():
    assert get_profile("demo").init == "he_normal"
    with pytest.raises(ValueError, match="init='xavier': use he_normal or keras_he_2_1_6"):
        get_profile("demo", init="xavier")
    with pytest.raises(ValueError, match="init='xavier'"):
        init_he(UNet2D(2, 4), seed=0, init="xavier")
    p = PROFILES["tiny"].replace(init="keras_he_2_1_6")
    cfg = TrainConfig.from_profile(p, "meniscus", seed=11)
    assert cfg.init == "keras_he_2_1_6"
    built = train.build_model(cfg, None).state_dict()
    direct = UNet2D(p.depth, p.base_filters, seed=11, init="keras_he_2_1_6").state_dict()
    assert all(torch.equal(built[k], direct[k]) for k in direct)
    assert train.run_key(cfg, "m", None) != train.run_key(TrainConfig.from_profile(PROFILES["tiny"], "meniscus",
                                                                                    seed=11), "m", None)


def test_the_pair_norm_integral_is_exact_for_a_normal_and_matches_sampling_when_cut():
    for n in (1, 9, 288):
        assert D.truncated_pair_norm_mean(n, math.inf) == pytest.approx(math.sqrt(2) * D._chi_mean(n), rel=1e-9)
    # one entry: E|x - y| for two normals cut at +-2, against 10^6 sampled pairs
    gen = torch.Generator().manual_seed(0)
    x = nn.init.trunc_normal_(torch.empty(2, 1_000_000, dtype=torch.float64), 0, 1, -2, 2, generator=gen)
    assert (x[0] - x[1]).abs().mean().item() == pytest.approx(D.truncated_pair_norm_mean(1), rel=2e-3)
    assert D.truncated_pair_norm_mean(9) < math.sqrt(2 * 9) * D.truncated_std()  # E||d|| < sqrt(E||d||^2)


def test_keras_null_matches_its_empirical_null_within_one_percent():
    seeds = range(6)  # 15 pairs of untrained nets
    expected = D.he_null_distances(UNet2D(3, 16), init="keras_he_2_1_6")
    seen = D.empirical_null(3, 16, seeds, init="keras_he_2_1_6")
    for group in ("enc_layer2", "enc_layer3", "dec_layer1", "dec_layer2", "network"):  # >= 2560 kernels each
        assert seen[group] == pytest.approx(expected[group], rel=0.01), group
    he = D.he_null_distances(UNet2D(3, 16))
    assert expected["network"] / he["network"] == pytest.approx(0.883, abs=0.002)  # the He null would miss by 12%
    kernel = D.he_null_kernel_distance(64, init="keras_he_2_1_6")
    assert kernel == pytest.approx(math.sqrt(2 / (64 * 9)) * D.truncated_pair_norm_mean(9), rel=1e-12)
    assert kernel / D.he_null_kernel_distance(64) == pytest.approx(0.8829, abs=1e-4)
    with pytest.raises(ValueError, match="init='glorot'"):
        D.he_null_distances(UNet2D(2, 4), init="glorot")


def test_null_table_uses_the_profiles_init():
    p = PROFILES["tiny"]
    ref = UNet2D(p.depth, p.base_filters).state_dict()
    he, keras = distance_tables.null_table(p, ref), distance_tables.null_table(p.replace(init="keras_he_2_1_6"), ref)
    ratio = (keras.set_index("group").expected / he.set_index("group").expected)
    assert ((ratio.drop(["head", "network"]) - 0.8829).abs() < 1e-4).all()  # 3x3 kernels; the head is 1x1
    assert (keras.empirical < he.empirical).all()
