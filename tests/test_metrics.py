"""Metrics on hand-computed cases, empty masks, bad inputs, and against medpy on random masks."""

from __future__ import annotations

import math

import numpy as np
import pytest
from medpy.metric.binary import assd as medpy_assd

from kneelib.nets import metrics


def box(shape, lo, hi) -> np.ndarray:
    m = np.zeros(shape, dtype=bool)
    m[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))] = True
    return m


@pytest.fixture
def cubes():
    # Two 5x5x5 cubes offset by one voxel along axis 0: overlap 4x5x5 = 100, union 150.
    a = box((12, 12, 12), (2, 2, 2), (7, 7, 7))
    b = box((12, 12, 12), (3, 2, 2), (8, 7, 7))
    return a, b


def test_dice_voe_offset_cubes(cubes):
    a, b = cubes
    assert metrics.dice(a, b) == pytest.approx(2 * 100 / 250)
    assert metrics.voe(a, b) == pytest.approx(1 - 100 / 150)


def test_cv_of_100_and_150_voxels():
    a = box((10, 10, 10), (0, 0, 0), (4, 5, 5))  # 100 voxels
    b = box((10, 10, 10), (0, 0, 0), (6, 5, 5))  # 150 voxels
    expected = np.std([100, 150], ddof=1) / 125  # = sqrt(2) * 50 / 250
    assert expected == pytest.approx(math.sqrt(2) * 50 / 250)
    assert metrics.cv(a, b) == pytest.approx(expected)
    assert metrics.cv(a, a) == 0.0


def test_assd_hand_derived_and_anisotropic():
    # 2x2x2 cubes offset by one voxel along axis 2: every voxel is a surface voxel; half of each
    # cube's surface lies inside the other (distance 0), half one voxel away -> mean 0.5 voxel.
    a = box((6, 6, 6), (1, 1, 1), (3, 3, 3))
    b = box((6, 6, 6), (1, 1, 2), (3, 3, 4))
    assert metrics.assd(a, b, (1.0, 1.0, 1.0)) == pytest.approx(0.5)
    assert metrics.assd(a, b, (1.0, 1.0, 2.0)) == pytest.approx(1.0)  # offset axis is 2 mm
    assert metrics.assd(a, b, (3.0, 3.0, 1.0)) == pytest.approx(0.5)  # other axes don't matter
    # Two single voxels 3 apart along axis 2, in mm.
    p = box((6, 6, 8), (2, 2, 1), (3, 3, 2))
    q = box((6, 6, 8), (2, 2, 4), (3, 3, 5))
    assert metrics.assd(p, q, (0.3, 0.3, 0.7)) == pytest.approx(2.1)


def test_assd_matches_medpy_uncropped():
    rng = np.random.default_rng(0)
    for _ in range(3):
        a = rng.random((20, 18, 10)) > 0.8
        b = rng.random((20, 18, 10)) > 0.8
        inner = box(a.shape, (3, 2, 2), (16, 15, 8))  # empty border, so the crop actually crops
        a, b = a & inner, b & inner
        sp = (0.365, 0.4, 0.7)
        assert metrics.assd(a, b, sp) == pytest.approx(medpy_assd(a, b, voxelspacing=sp), rel=1e-12)


def test_assd_touching_array_edge_matches_medpy():
    a = box((8, 8, 8), (0, 0, 0), (3, 8, 4))
    b = box((8, 8, 8), (1, 2, 0), (5, 6, 8))
    assert metrics.assd(a, b, (1, 1, 1)) == pytest.approx(medpy_assd(a, b, voxelspacing=(1, 1, 1)))


def test_symmetry(cubes):
    a, b = cubes
    b = b.copy()
    b[9:11, 9:11, 9:11] = True  # make the pair asymmetric in shape
    for f in (metrics.dice, metrics.voe, metrics.cv):
        assert f(a, b) == pytest.approx(f(b, a))
    sp = (0.5, 0.5, 1.5)
    assert metrics.assd(a, b, sp) == pytest.approx(metrics.assd(b, a, sp))


def test_identical_masks(cubes):
    a, _ = cubes
    m = metrics.scan_metrics(a, a, (1, 1, 1))
    assert m == {"dice": 1.0, "voe": 0.0, "cv": 0.0, "assd_mm": 0.0, "pred_ml": 0.125, "truth_ml": 0.125}


def test_empty_cases(cubes):
    a, _ = cubes
    e = np.zeros_like(a)
    sp = (1, 1, 1)
    assert metrics.scan_metrics(e, e, sp) == {
        "dice": 1.0, "voe": 0.0, "cv": 0.0, "assd_mm": 0.0, "pred_ml": 0.0, "truth_ml": 0.0}
    for p, t in ((a, e), (e, a)):
        assert metrics.dice(p, t) == 0.0
        assert metrics.voe(p, t) == 1.0
        assert metrics.cv(p, t) == pytest.approx(math.sqrt(2))
        assert math.isnan(metrics.assd(p, t, sp))


def test_volume_ml():
    m = box((10, 10, 10), (0, 0, 0), (4, 5, 5))  # 100 voxels
    assert metrics.volume_ml(m, (0.5, 0.4, 0.7)) == pytest.approx(100 * 0.14 / 1000)
    assert metrics.scan_metrics(m, m, (0.5, 0.4, 0.7))["truth_ml"] == pytest.approx(0.014)


def test_int_masks_accepted(cubes):
    a, b = cubes
    assert metrics.dice(a.astype(np.uint8), b.astype(np.int64)) == pytest.approx(0.8)


@pytest.mark.parametrize("bad", [
    np.full((4, 4, 4), 2, dtype=np.int32),
    np.full((4, 4, 4), -1, dtype=np.int8),
    np.full((4, 4, 4), 0.7, dtype=np.float32),
    np.ones((4, 4, 4), dtype=np.float64),  # floats rejected even when 0/1: threshold first
])
def test_bad_values_rejected(bad):
    ok = np.zeros((4, 4, 4), dtype=bool)
    with pytest.raises(ValueError):
        metrics.dice(bad, ok)
    with pytest.raises(ValueError):
        metrics.scan_metrics(ok, bad, (1, 1, 1))


def test_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(4, 4, 4\).*\(4, 4, 5\)"):
        metrics.voe(np.zeros((4, 4, 4), bool), np.zeros((4, 4, 5), bool))


def test_bad_spacing():
    m = box((4, 4, 4), (1, 1, 1), (3, 3, 3))
    with pytest.raises(ValueError):
        metrics.assd(m, m, (1, 1))
    with pytest.raises(ValueError):
        metrics.volume_ml(m, (1, 0, 1))
