"""Hand-computable checks of kneelib.compare.distances."""

from __future__ import annotations

import math

import pytest
import torch

from kneelib.compare import distances as D
from kneelib.names import PAPER_TISSUES
from kneelib.nets.unet import UNet2D


def tiny_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """Two convs (24 kernels) in enc_layer1, a transposed conv (12 kernels), a 1x1 head (3 kernels)."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g)
    return {
        "enc_layer1.conv1.weight": r(4, 2, 3, 3), "enc_layer1.conv1.bias": r(4),
        "enc_layer1.conv2.weight": r(4, 4, 3, 3), "enc_layer1.conv2.bias": r(4),
        "enc_layer1.bn.weight": r(4), "enc_layer1.bn.bias": r(4),
        "enc_layer1.bn.running_mean": r(4), "enc_layer1.bn.running_var": r(4).abs(),
        "dec_layer1.up.weight": r(4, 3, 3, 3), "dec_layer1.up.bias": r(3),  # (in, out, k, k)
        "head.weight": r(1, 3, 1, 1), "head.bias": r(1),
    }


def clone(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in state.items()}


@pytest.mark.parametrize("reduction", D.REDUCTIONS)
@pytest.mark.parametrize("scale", D.SCALES)
def test_identical_is_zero(reduction: str, scale: str) -> None:
    a = tiny_state()
    d = D.kernel_distances(a, clone(a), reduction, scale)
    assert list(d) == ["enc_layer1", "dec_layer1", "head", "network"]
    assert all(abs(v) < 1e-12 for v in d.values())


@pytest.mark.parametrize("reduction", D.REDUCTIONS)
def test_symmetric(reduction: str) -> None:
    a, b = tiny_state(0), tiny_state(1)
    for scale in ("absolute", "cosine"):
        dab, dba = D.kernel_distances(a, b, reduction, scale), D.kernel_distances(b, a, reduction, scale)
        assert dab == pytest.approx(dba, rel=1e-12)


def test_one_kernel_changed_hand_values() -> None:
    a = tiny_state()
    b = clone(a)
    b["enc_layer1.conv2.weight"][1, 2] += 1.0  # one 3x3 kernel: difference norm sqrt(9) = 3
    kernel = D.kernel_distances(a, b)
    assert kernel["enc_layer1"] == pytest.approx(3 / 24)
    assert kernel["dec_layer1"] == 0 and kernel["head"] == 0
    # network: mean over all 24 + 12 + 3 kernels, not the mean of the three group values (1/24)
    assert kernel["network"] == pytest.approx(3 / 39)
    assert D.kernel_distances(a, b, "weight")["enc_layer1"] == pytest.approx(math.sqrt(9 / 216))
    assert D.kernel_distances(a, b, "weight")["network"] == pytest.approx(math.sqrt(9 / (216 + 108 + 3)))
    assert D.kernel_distances(a, b, "filter")["enc_layer1"] == pytest.approx(3 / 8)  # 8 output filters


def test_transposed_filter_is_dim1() -> None:
    a = tiny_state()
    b = clone(a)
    b["dec_layer1.up.weight"][:, 1] += 1.0  # output filter 1 of the transposed conv: 4 x 3 x 3 ones
    assert D.kernel_distances(a, b, "filter")["dec_layer1"] == pytest.approx(6 / 3)
    assert D.kernel_distances(a, b, "kernel")["dec_layer1"] == pytest.approx(4 * 3 / 12)


def test_bias_and_batchnorm_ignored() -> None:
    a = tiny_state()
    b = clone(a)
    for k in b:
        if not k.endswith(".weight") or b[k].ndim != 4:
            b[k] += 5.0
    for reduction in D.REDUCTIONS:
        assert all(v == 0 for v in D.kernel_distances(a, b, reduction).values())


def test_channel_permutation_changes_distance() -> None:
    a = tiny_state()
    b = clone(a)
    b["enc_layer1.conv1.weight"] = b["enc_layer1.conv1.weight"][[1, 0, 2, 3]]
    assert D.kernel_distances(a, b)["enc_layer1"] > 0.1


def test_mismatched_architecture_raises() -> None:
    a = tiny_state()
    b = clone(a)
    b["enc_layer1.conv2.weight"] = torch.zeros(4, 4, 5, 5)
    with pytest.raises(ValueError, match=r"enc_layer1\.conv2\.weight.*\(4, 4, 3, 3\).*\(4, 4, 5, 5\)"):
        D.kernel_distances(a, b)
    c = clone(a)
    del c["head.weight"]
    with pytest.raises(ValueError, match="head.weight.*missing"):
        D.kernel_distances(a, c)
    with pytest.raises(ValueError):
        D.kernel_distances(UNet2D(depth=2, base_filters=2), UNet2D(depth=3, base_filters=2))
    with pytest.raises(ValueError, match="reduction"):
        D.kernel_distances(a, a, reduction="mean")


def test_module_and_state_dict_agree() -> None:
    a, b = UNet2D(depth=2, base_filters=2, seed=0), UNet2D(depth=2, base_filters=2, seed=1)
    for reduction in D.REDUCTIONS:
        from_states = D.kernel_distances(a.state_dict(), b.state_dict(), reduction)
        assert D.kernel_distances(a, b, reduction) == from_states


def test_relative_and_cosine_scale_free() -> None:
    a = tiny_state()
    b = {k: 2 * v for k, v in a.items()}
    for reduction in D.REDUCTIONS:
        rel = D.kernel_distances(a, b, reduction, "relative")
        cos = D.kernel_distances(a, b, reduction, "cosine")
        assert all(v == pytest.approx(1.0) for v in rel.values())
        assert all(abs(v) < 1e-12 for v in cos.values())


def test_zero_norm_units_are_skipped() -> None:
    a = tiny_state()
    a["head.weight"].zero_()
    b = tiny_state(1)
    rel = D.kernel_distances(a, b, "kernel", "relative")
    assert math.isnan(rel["head"]) and math.isfinite(rel["network"])


def test_closed_form_null() -> None:
    # 3x3: the exact expectation is close to the 2 / sqrt(C_in) rule of thumb
    # (docs/reference.md, "The distance and its null")
    assert D.he_null_kernel_distance(512) == pytest.approx(2 / math.sqrt(512), rel=0.03)
    # 1x1: E|N(0, s^2)| = s sqrt(2 / pi) with s^2 = 4 / fan_in
    assert D.he_null_kernel_distance(16, k=1) == pytest.approx(math.sqrt(4 / 16) * math.sqrt(2 / math.pi))


def test_closed_form_matches_empirical_null() -> None:
    model = UNet2D(depth=3, base_filters=8)
    expected, seen = D.he_null_distances(model), D.empirical_null(3, 8, seeds=[0, 1])
    assert list(expected) == list(seen)
    for group in ("enc_layer2", "enc_layer3", "dec_layer1", "dec_layer2", "network"):  # >= 300 kernels
        assert seen[group] == pytest.approx(expected[group], rel=0.05), group
    assert expected["enc_layer1"] > expected["enc_layer2"] > expected["enc_layer3"]


# ----------------------------------------------------------------------------- named nets


def scalar_nets() -> dict[str, dict[str, torch.Tensor]]:
    """Nine one-weight nets (1x1 kernel, so distance = |a - b|): scratch F=0, T=10, M=20."""
    scratch = {"F": 0.0, "T": 10.0, "M": 20.0}
    shift = {"T|F(s)": 1.0, "F|T(s)": 3.0, "M|F(s)": 2.0, "F|M(s)": 2.0, "T|M(s)": -4.0, "M|T(s)": 4.0}
    values = {f"{c}(s)": v for c, v in scratch.items()}
    values.update({name: scratch[name[2]] + s for name, s in shift.items()})
    return {n: {"enc_layer1.conv1.weight": torch.full((1, 1, 1, 1), v)} for n, v in values.items()}


def test_tables_and_tissue_distances() -> None:
    states = scalar_nets()
    scratch = D.scratch_pairs_table(states)
    assert list(scratch.columns) == ["pair", "net_a", "net_b", "group", "distance"]
    net = scratch[scratch.group == "network"].set_index("pair").distance
    assert net.to_dict() == {"F(s) vs T(s)": 10.0, "F(s) vs M(s)": 20.0, "T(s) vs M(s)": 10.0}
    tuned = D.finetune_table(states)
    assert len(tuned) == 6 * 2 and set(tuned.net_a) == {"F(s)", "T(s)", "M(s)"}
    tissue = D.tissue_distances(states).set_index("pair")
    assert list(tissue.index) == ["F-T", "F-M", "M-T"]
    assert tissue.loc["F-T", ["d_ab", "d_ba", "tissue_distance", "asymmetry"]].tolist() == [1, 3, 2, 1]
    assert tissue.loc["F-M", "asymmetry"] == 0
    assert tissue.loc["M-T", ["d_ab", "d_ba"]].tolist() == [4, 4]  # d(M(s), T|M(s)), d(T(s), M|T(s))


def test_headline_and_missing_nets() -> None:
    states = scalar_nets()
    h = D.headline(states)
    assert h["n_nets"] == 6 and h["to_base"] == pytest.approx((1 + 3 + 2 + 2 + 4 + 4) / 6)
    # T|F=1 vs T=10: 9; F|T=13 vs F: 13; M|F=2 vs M: 18; F|M=22 vs F: 22; T|M=16 vs T: 6; M|T=14 vs M: 6
    assert h["to_own_scratch"] == pytest.approx((9 + 13 + 18 + 22 + 6 + 6) / 6)
    assert h["paper_to_base"] == 8.17e-3
    del states["F|T(s)"]
    assert D.headline(states)["n_nets"] == 5
    assert list(D.tissue_distances(states).pair) == ["F-M", "M-T"]
    with pytest.raises(ValueError):
        D.headline({"F(s)": states["F(s)"]})


def code_nets(scratch: dict[str, float], shift: float = 1.0) -> dict[str, dict[str, torch.Tensor]]:
    """One-weight nets of any tissue codes: scratch A(s) = scratch[A], every B|A(s) = scratch[A] + shift."""
    values = {f"{a}(s)": v for a, v in scratch.items()}
    values.update({f"{b}|{a}(s)": scratch[a] + shift for a in scratch for b in scratch if a != b})
    return {n: {"enc_layer1.conv1.weight": torch.full((1, 1, 1, 1), v)} for n, v in values.items()}


def test_tables_of_other_tissues_follow_the_given_order() -> None:
    states = code_nets({"TL": 0.0, "TM": 5.0, "P": 20.0})
    tissues = ("lateral_tibial_cartilage", "medial_tibial_cartilage", "patellar_cartilage")
    scratch = D.scratch_pairs_table(states, tissues=tissues)
    assert list(scratch[scratch.group == "network"].pair) == ["TL(s) vs TM(s)", "TL(s) vs P(s)", "TM(s) vs P(s)"]
    assert scratch[scratch.group == "network"].distance.tolist() == [5, 20, 15]
    tuned = D.finetune_table(states, tissues=tissues)
    assert list(tuned[tuned.group == "network"].net_b) == ["TM|TL(s)", "P|TL(s)", "TL|TM(s)", "P|TM(s)",
                                                           "TL|P(s)", "TM|P(s)"]
    tissue = D.tissue_distances(states, tissues=tissues)
    assert list(tissue.pair) == ["TL-TM", "P-TL", "P-TM"]  # codes sorted within a pair
    # P-TL: d_ab = d(P(s), TL|P(s)) = 1, d_ba = d(TL(s), P|TL(s)) = 1
    assert tissue.set_index("pair").loc["P-TL", ["d_ab", "d_ba"]].tolist() == [1, 1]
    assert D.headline(states, tissues=tissues)["n_nets"] == 6
    # without tissues: those with a scratch net, in the vocabulary's order (TM before TL, P last)
    assert D.study_codes(states) == ["TM", "TL", "P"]
    # two tissues: one pair, one tissue distance
    two = code_nets({"F": 0.0, "P": 3.0})
    assert D.tissue_distances(two, tissues=("F", "P")).pair.tolist() == ["F-P"]
    assert list(D.scratch_pairs_table(two).pair.unique()) == ["F(s) vs P(s)"]


def test_a_subset_of_the_tissues_leaves_the_others_out() -> None:
    states = code_nets({"F": 0.0, "T": 1.0, "M": 2.0, "P": 9.0})
    assert list(D.tissue_distances(states, tissues=PAPER_TISSUES).pair) == ["F-T", "F-M", "M-T"]
    assert D.headline(states, tissues=PAPER_TISSUES)["n_nets"] == 6
    assert len(D.tissue_distances(states)) == 6  # all four tissues' pairs

