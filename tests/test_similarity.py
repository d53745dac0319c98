"""Properties of linear CKA and its minibatch estimator."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from kneelib.compare.similarity import cka_from_grams, cka_matrix, gram, hsic, linear_cka


def randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("debiased", [True, False])
def test_self_similarity_is_one(debiased: bool) -> None:
    x = randn(20, 3, 4, 4)  # image-like activations are flattened per example
    assert linear_cka(x, x, debiased) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("debiased", [True, False])
def test_orthogonal_and_scale_invariance(debiased: bool) -> None:
    x, y = randn(20, 32, seed=1).double(), randn(20, 16, seed=2).double()  # float64: exact scaling
    y = y + 0.5 * x[:, :16]  # some shared signal so the value is not trivially 0
    q, _ = torch.linalg.qr(randn(32, 32, seed=3).double())
    base = linear_cka(x, y, debiased)
    assert linear_cka(x @ q, y, debiased) == pytest.approx(base, abs=1e-10)
    assert linear_cka(3.0 * x, y, debiased) == pytest.approx(base, abs=1e-12)
    assert linear_cka(x + 7.0, y, debiased) == pytest.approx(base, abs=1e-10)  # feature offsets
    assert linear_cka(y, x, debiased) == pytest.approx(base, abs=1e-12)


def test_debiased_near_zero_for_independent_features() -> None:
    x, y = randn(64, 512, seed=4), randn(64, 512, seed=5)
    assert abs(linear_cka(x, y, debiased=True)) < 0.05
    assert linear_cka(x, y, debiased=False) > 0.1  # the biased estimator is far from 0 when d >> n
    mean = np.mean([linear_cka(randn(64, 512, seed=s), randn(64, 512, seed=s + 100)) for s in range(4)])
    assert abs(mean) < 0.05


def test_cka_from_grams_is_the_hsic_ratio() -> None:
    x = randn(40, 24, seed=6)
    y = x[:, :12] + 0.3 * randn(40, 12, seed=7)
    gx, gy = gram(x), gram(y)
    expected = hsic(gx, gy) / math.sqrt(hsic(gx, gx) * hsic(gy, gy))
    assert cka_from_grams(gx, gy) == pytest.approx(expected, rel=1e-12)
    assert linear_cka(x, y) == pytest.approx(expected, rel=1e-12)
    assert 0.5 < expected < 1.0  # y shares half of x's features


def test_small_batches_raise_and_degenerate_is_nan() -> None:
    x = randn(3, 8)
    with pytest.raises(ValueError, match="3 examples"):
        linear_cka(x, x)
    assert linear_cka(x, x, debiased=False) == pytest.approx(1.0)  # biased works from n = 2
    assert math.isnan(linear_cka(torch.ones(8, 5), randn(8, 5)))  # no variance: CKA undefined
    with pytest.raises(ValueError, match="same number"):
        linear_cka(randn(8, 5), randn(9, 5))


def test_cka_matrix() -> None:
    acts = {"enc_layer1": randn(12, 2, 4, 4, seed=8), "enc_layer2": randn(12, 4, 2, 2, seed=9)}
    other = {"enc_layer1": acts["enc_layer1"] * 2, "head": randn(12, 1, 4, 4, seed=10)}
    m = cka_matrix(acts, other)
    assert list(m.index) == ["enc_layer1", "enc_layer2"] and list(m.columns) == ["enc_layer1", "head"]
    assert m.loc["enc_layer1", "enc_layer1"] == pytest.approx(1.0)
    assert m.loc["enc_layer2", "head"] == pytest.approx(linear_cka(acts["enc_layer2"], other["head"]))
