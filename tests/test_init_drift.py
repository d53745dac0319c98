"""kneelib.compare.init_drift and kneelib.study.init_drift: norms, drift and the split of a squared distance
into init, drift and cross terms, on tensors small enough to compute by hand."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from test_null_world import fake_trained

from kneelib.compare.init_drift import d2_decomposition, group_drift
from kneelib.core.profiles import get_profile
from kneelib.nets.unet import layer_groups
from kneelib.report.init_drift_plots import figure_init_drift
from kneelib.study import init_drift as idr
from kneelib.study import null_world as nw


def net(enc: list[float], head: list[float], bias: float = 0.0) -> dict[str, torch.Tensor]:
    """A two-group "net": one (1, 1, 1, k) conv weight in enc_layer1, one in head, and a bias no norm reads."""
    return {"enc_layer1.conv1.weight": torch.tensor(enc).reshape(1, 1, 1, -1),
            "enc_layer1.conv1.bias": torch.tensor([bias]), "head.weight": torch.tensor(head).reshape(1, 1, 1, -1)}


def test_group_drift_by_hand():
    start, moved = net([3.0, 4.0], [1.0], bias=0.0), net([12.0, 16.0], [2.0], bias=100.0)
    d = group_drift(moved, start).set_index("group")
    assert list(d.index) == ["enc_layer1", "head", "network"]
    assert d.loc["enc_layer1"].tolist() == pytest.approx([5.0, 15.0, 4.0])  # ||w0||, ||w - w0||, ||w||/||w0||
    assert d.loc["head"].tolist() == pytest.approx([1.0, 1.0, 2.0])
    assert d.loc["network"].tolist() == pytest.approx([26**0.5, 226**0.5, (404 / 26) ** 0.5])


def test_d2_decomposition_by_hand_and_its_shares_sum_to_one():
    init_a, init_b = net([1.0, 0.0], [2.0]), net([0.0, 0.0], [0.0])
    state_a, state_b = net([1.0, 2.0], [1.0]), net([0.0, -1.0], [1.0])
    d = d2_decomposition(init_a, init_b, state_a, state_b).set_index("group")
    # enc: D0 = (1, 0), Dd = (0, 2) - (0, -1) = (0, 3): d2 = 1 + 9 + 0 = ||(1, 3)||^2
    assert d.loc["enc_layer1", ["d2", "init_term", "drift_term", "cross_term"]].tolist() == pytest.approx([10, 1, 9, 0])
    # head: D0 = 2, Dd = -1 - 1 = -2: d2 = 4 + 4 - 8 = 0 (training undid the inits' difference): shares nan
    assert d.loc["head", ["d2", "init_term", "drift_term", "cross_term"]].tolist() == pytest.approx([0, 4, 4, -8])
    assert d.loc["head"].isna()[["init_share", "drift_share", "cross_share"]].all()
    assert d.loc["network", ["d2", "init_term", "drift_term", "cross_term"]].tolist() == pytest.approx([10, 5, 13, -8])
    assert d.loc["network", ["init_share", "drift_share", "cross_share"]].tolist() == pytest.approx([0.5, 1.3, -0.8])


def test_shares_sum_to_one_and_untrained_nets_have_not_drifted():
    profile = get_profile("tiny")
    states = fake_trained(profile)
    dec = idr.scratch_pair_decomposition(profile, states)
    assert list(dict.fromkeys(dec.pair)) == ["F(s) vs T(s)", "F(s) vs M(s)", "T(s) vs M(s)"]
    assert (dec.init_share + dec.drift_share + dec.cross_share).to_numpy() == pytest.approx(1.0)
    assert dec.d2.to_numpy() == pytest.approx((dec.init_term + dec.drift_term + dec.cross_term).to_numpy())
    assert (dec.init_share > 0.5).all()  # small noise on He inits: the inits set the distance

    inits = nw.init_states(profile, states)
    still = {0: {n: inits[0][n] if "|" not in n else inits[0][n.split("|")[1]] for n in states[0]}}
    drift = idr.drift_table(profile, still)
    assert (drift.drift == 0).all() and drift.norm_growth.to_numpy() == pytest.approx(1.0)
    assert drift[drift.kind == "scratch"].rel_displacement.isna().all()
    assert (drift[drift.kind == "fine-tuned"].rel_displacement == 0).all()

    moved = idr.drift_table(profile, states).query("group == 'network'").set_index("net")
    base = moved.loc["F(s)"]
    assert moved.loc["T|F(s)", "init_norm"] == pytest.approx(base.init_norm * base.norm_growth)  # ||w_base||
    assert moved.loc["T|F(s)", "rel_displacement"] == pytest.approx(moved.loc["T|F(s)", "drift"]
                                                                    / moved.loc["T|F(s)", "init_norm"])


def _pairs(values: dict[str, float], seed: int = 0) -> pd.DataFrame:
    return pd.DataFrame([{"seed": seed, "pair": "F(s) vs T(s)", "group": g, "distance": d} for g, d in values.items()])


def test_c1_reread_ranks_groups_at_init_and_after_training():
    drift = pd.DataFrame([
        {"seed": 0, "net": n, "kind": k, "group": g, "init_norm": 2.0, "drift": dr, "norm_growth": 1.0,
         "rel_displacement": dr / 2.0 if k == "fine-tuned" else float("nan")}
        for n, k, dr in (("F(s)", "scratch", 1.0), ("T(s)", "scratch", 3.0), ("T|F(s)", "fine-tuned", 0.5))
        for g in ("enc_layer1", "enc_layer2", "head", "network")])
    at_init = _pairs({"enc_layer1": 0.3, "enc_layer2": 0.2, "head": 0.9, "network": 0.25})
    trained = _pairs({"enc_layer1": 0.1, "enc_layer2": 0.2, "head": 0.8, "network": 0.15})
    by_group = idr.reread_by_group(drift, trained, at_init).set_index("group")
    assert list(by_group.index) == ["enc_layer1", "enc_layer2", "head"]
    assert by_group.scratch_drift_ratio.tolist() == pytest.approx([1.0] * 3)  # (1/2 + 3/2) / 2
    assert by_group.finetune_rel_displacement.tolist() == pytest.approx([0.25] * 3)
    assert by_group.init_rank.tolist() == [2, 1, 3] and by_group.trained_rank.tolist() == [1, 2, 3]
    c1 = idr.c1_at_init_and_trained(by_group.reset_index(), "enc_layer2").set_index("stage")
    assert c1.loc["init", ["smallest", "smallest_other"]].tolist() == ["enc_layer2", "enc_layer1"]
    assert c1.loc["init", "margin"] == pytest.approx((0.3 - 0.2) / 0.2)
    assert c1.loc["trained", "smallest"] == "enc_layer1"
    assert c1.loc["trained", "margin"] == pytest.approx((0.1 - 0.2) / 0.2)  # training flipped C1


def test_drift_summary_and_its_figure_in_depth_order():
    profile = get_profile("tiny")
    states = fake_trained(profile)
    drift, dec = idr.drift_table(profile, states), idr.scratch_pair_decomposition(profile, states)
    summary = idr.drift_summary(drift, dec)
    assert list(dict.fromkeys(summary.series)) == [
        "scratch: drift / init norm", "fine-tuned: ||w - w_base|| / ||w_base||", "scratch pairs: init share of d^2"]
    row = summary.query("series == 'scratch pairs: init share of d^2' and group == 'enc_layer2'")
    assert row["mean"].item() == pytest.approx(dec.query("group == 'enc_layer2'").init_share.mean())
    tuned = summary.query("panel == 'drift' and series.str.startswith('fine') and group == 'head'")["mean"].item()
    assert tuned == pytest.approx(drift.query("kind == 'fine-tuned' and group == 'head'").rel_displacement.mean())
    assert "network" not in set(summary.group)
    fig = figure_init_drift(summary, profile.depth, "init and drift")
    assert [t.name for t in fig.data][-1] == "d^2 = the inits' alone" and len(fig.data) == 4
    assert list(fig.data[0].x) == layer_groups(profile.depth)
