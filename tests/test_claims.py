"""Claims C1-C8 and their controls on small hand-made result tables: each criterion flips when the data
flips; claims_table and claim_margins evaluate them per seed."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from kneelib.names import base_of, pair_name, tissue_of
from kneelib.report.claims_report import claims_markdown
from kneelib.study import claims


def _groups(values: dict[str, float], pair: str = "F(s) vs T(s)", seed: int = 0) -> list[dict]:
    return [{"pair": pair, "group": g, "distance": d, "seed": seed} for g, d in values.items()]


def test_c1_latent_smallest_flips():
    holds = pd.DataFrame(_groups({"enc_layer1": 0.3, "enc_layer2": 0.2, "enc_layer3": 0.1, "dec_layer1": 0.25,
                                  "network": 0.2}))
    r = claims.c1_latent_smallest(holds, "enc_layer3")
    assert r.margin == pytest.approx((0.2 - 0.1) / 0.1)
    fails = holds.assign(distance=holds.distance.where(holds.group != "enc_layer2", 0.05))
    assert claims.c1_latent_smallest(fails, "enc_layer3").margin < 0


def test_c2_dec1_largest():
    t = pd.DataFrame(_groups({"enc_layer1": 0.1, "dec_layer1": 0.4, "dec_layer2": 0.2}))
    assert claims.c2_dec1_largest(t).margin == pytest.approx((0.4 - 0.2) / 0.4)
    t.loc[t.group == "enc_layer1", "distance"] = 0.5
    assert claims.c2_dec1_largest(t).margin < 0


def test_c3_paper_values_hold():
    r = claims.c3_closer_to_base({"to_base": 8.17e-3, "to_own_scratch": 6.45e-2})
    assert r.margin == pytest.approx(6.45e-2 / 8.17e-3 - 1)
    assert claims.c3_closer_to_base({"to_base": 0.2, "to_own_scratch": 0.1}).margin < 0


def _tissue(d: dict[str, tuple[float, float]]) -> pd.DataFrame:
    rows = []
    for pair, (ab, ba) in d.items():
        a, b = pair.split("-")
        mean = (ab + ba) / 2
        rows.append({"pair": pair, "tissue_a": a, "tissue_b": b, "d_ab": ab, "d_ba": ba, "tissue_distance": mean,
                     "asymmetry": abs(ab - ba) / mean})
    return pd.DataFrame(rows)


def test_c4_c5_on_paper_numbers():
    # The paper gives F-T both ways; F-M and M-T only as means (taken symmetric here).
    paper = _tissue({"F-T": (9.56e-3, 6.70e-3), "F-M": (8.07e-3, 8.07e-3), "M-T": (8.32e-3, 8.32e-3)})
    assert paper.tissue_distance.iloc[0] == pytest.approx(8.13e-3)
    assert claims.c4_near_equal(paper).margin > 0
    c5 = claims.c5_ft_asymmetric(paper)
    assert c5.margin == pytest.approx(min(2.86e-3 / 8.13e-3, 2.86e-3 / 8.13e-3))
    reversed_ft = _tissue({"F-T": (6.70e-3, 9.56e-3), "F-M": (8.07e-3, 8.07e-3), "M-T": (8.32e-3, 8.32e-3)})
    assert claims.c5_ft_asymmetric(reversed_ft).margin < 0
    unequal = _tissue({"F-T": (1e-3, 1e-3), "F-M": (8e-3, 8e-3), "M-T": (8e-3, 8e-3)})
    assert claims.c4_near_equal(unequal).margin < 0


def _per_scan(dice: dict[str, float]) -> pd.DataFrame:
    return pd.DataFrame([{"net": n, "dice": d, "seed": 0} for n, d in dice.items()])


def test_c6_finetune_performance():
    holds = _per_scan({"F(s)": 0.90, "F|T(s)": 0.899, "F|M(s)": 0.90, "T(s)": 0.85, "T|F(s)": 0.80,
                       "T|M(s)": 0.82, "M(s)": 0.80, "M|F(s)": 0.75, "M|T(s)": 0.78})
    r = claims.c6_finetune_performance(holds)
    assert r.margin == pytest.approx(min(0.04, 0.035, 0.04 - 0.0005, 0.035 - 0.0005))
    better_t = holds.assign(dice=holds.dice.where(holds.net != "T|F(s)", 0.95))
    assert claims.c6_finetune_performance(better_t).margin < 0


def test_c7_shared_activations():
    overlap = pd.DataFrame([{"net_a": "F(s)", "net_b": "T(s)", "group": "g", "value": 0.8},
                            {"net_a": "F(s)", "net_b": "M|T(s)", "group": "g", "value": 0.7},
                            {"net_a": "T(s)", "net_b": "M(s)", "group": "g", "value": 0.5}])
    assert claims.c7_shared_activations(overlap).margin == pytest.approx(0.2)
    overlap.loc[2, "value"] = 0.9
    assert claims.c7_shared_activations(overlap).margin < 0


def test_claims_table_across_seeds():
    tables = {"headline": {"by_seed": {"0": {"to_base": 1.0, "to_own_scratch": 2.0},
                                       "1": {"to_base": 1.0, "to_own_scratch": 2.2},
                                       "2": {"to_base": 1.0, "to_own_scratch": 0.5}}}}
    table = claims.claims_table(tables, [0, 1, 2], "enc_layer6")
    c3 = table.set_index("id").loc["C3"]
    assert c3.holds and c3.holds_in_seeds == "2/3" and c3.holds_across_seeds is False
    assert table.set_index("id").loc["C1", "this_run"] == "not computed yet"
    assert c3.margin == pytest.approx(1.0) and c3.margin_mean == pytest.approx((1.0 + 1.2 - 0.5) / 3)


def test_c8_policy_gain_is_paired_by_target_fraction_seed():
    rows = []
    for target, scratch, depth_lr, plain in (("T", 0.60, 0.70, 0.65), ("M", 0.50, 0.52, 0.40)):
        rows += [{"target": target, "source": "", "strategy": "scratch", "fraction": 0.1, "seed": 0, "dice": scratch},
                 {"target": target, "source": "F", "strategy": "finetune_depth_lr", "fraction": 0.1, "seed": 0,
                  "dice": depth_lr},
                 {"target": target, "source": "F", "strategy": "finetune", "fraction": 0.1, "seed": 0, "dice": plain},
                 # full data is not "limited": ignored even though fine-tuning loses there
                 {"target": target, "source": "F", "strategy": "finetune_depth_lr", "fraction": 1.0, "seed": 0,
                  "dice": 0.0},
                 {"target": target, "source": "", "strategy": "scratch", "fraction": 1.0, "seed": 0, "dice": 0.9}]
    r = claims.c8_policy(pd.DataFrame(rows))
    assert r.margin == pytest.approx((0.10 + 0.02) / 2)
    assert "-0.0250" in r.value  # plain fine-tune: (0.05 - 0.10) / 2


def test_controls_columns_for_c1():
    groups = {"enc_layer1": 0.3, "enc_layer2": 0.1, "network": 0.2}
    null = pd.DataFrame([{"group": g, "distance": d, "ratio": r, "seed": 0}
                         for (g, d), r in zip(groups.items(), (3.0, 0.5, 1.0))])
    aligned = pd.DataFrame([{"group": g, "aligned": d, "raw": d, "seed": 0} for g, d in groups.items()])
    tables = {"scratch_pairs": pd.DataFrame(_groups(groups)), "null_ratio": null, "aligned": aligned}
    row = claims.claims_table(tables, [0], "enc_layer2").set_index("id").loc["C1"]
    assert row.holds and row.against_null.startswith("yes") and row.after_alignment.startswith("yes")
    null.loc[0, "ratio"] = 0.1  # enc_layer1 now the closest relative to chance
    row = claims.claims_table(tables, [0], "enc_layer2").set_index("id").loc["C1"]
    assert row.holds and row.against_null.startswith("no")


def _source_rows(dice_from_f: float, dice_from_m: float, target: str = "T") -> list[dict]:
    return [{"target": target, "source": src, "strategy": "finetune_depth_lr", "fraction": 0.5, "seed": 0, "dice": d}
            for src, d in (("F", dice_from_f), ("M", dice_from_m))] + \
           [{"target": target, "source": "F", "strategy": "finetune_depth_lr", "fraction": 1.0, "seed": 0, "dice": 0.0}]


def test_c8b_closer_source_is_judged_on_tissue_distance():
    tissue = pd.DataFrame([{"pair": "F-T", "tissue_distance": 0.05, "seed": 0},
                           {"pair": "M-T", "tissue_distance": 0.09, "seed": 0}])
    r = claims.c8_closer_source(pd.DataFrame(_source_rows(0.80, 0.70)), tissue)
    assert r.margin == pytest.approx(0.10) and "closer source F" in r.value  # F-T is the shorter distance
    r = claims.c8_closer_source(pd.DataFrame(_source_rows(0.60, 0.70)), tissue)
    assert r.margin == pytest.approx(-0.10)
    tissue.loc[0, "tissue_distance"] = 0.2  # now M is the closer source, and it wins
    assert claims.c8_closer_source(pd.DataFrame(_source_rows(0.60, 0.70)), tissue).margin == pytest.approx(0.10)


def test_c8b_not_answerable_with_one_source_per_target():
    scratch = [{"target": t, "source": "", "strategy": "scratch", "fraction": 0.5, "seed": 0, "dice": 0.5}
               for t in "TM"]
    policy = pd.DataFrame(_source_rows(0.8, 0.7)[:1] + _source_rows(0.8, 0.7, target="M")[:1] + scratch)
    tissue = pd.DataFrame([{"pair": p, "tissue_a": p[0], "tissue_b": p[2], "d_ab": d, "d_ba": d, "tissue_distance": d,
                            "asymmetry": 0.0, "seed": 0} for p, d in (("F-T", 0.05), ("F-M", 0.09), ("M-T", 0.07))])
    assert "not answerable" in claims.c8_closer_source(policy, tissue).value
    row = claims.claims_table({"policy": policy, "tissue": tissue}, [0], "enc_layer6").set_index("id").loc["C8b"]
    assert row.holds is None
    c8 = claims.claims_table({"policy": policy, "tissue": tissue}, [0], "enc_layer6").set_index("id").loc["C8"]
    assert c8.holds and "no plain fine-tune runs" in c8.this_run and "nan" not in c8.this_run


def test_claim_margins_one_row_per_claim_control_and_seed():
    tables = {"headline": {"by_seed": {"0": {"to_base": 1.0, "to_own_scratch": 2.0},
                                       "1": {"to_base": 4.0, "to_own_scratch": 2.0}}}}
    m = claims.claim_margins(tables, [0, 1], "enc_layer6")
    assert list(m.id) == ["C3", "C3"] and list(m.margin) == [pytest.approx(1.0), pytest.approx(-0.5)]
    groups = {"enc_layer1": 0.3, "enc_layer2": 0.1, "network": 0.2}
    null = pd.DataFrame([{"group": g, "distance": d, "ratio": r, "seed": 0}
                         for (g, d), r in zip(groups.items(), (0.1, 0.5, 1.0))])
    m = claims.claim_margins({"scratch_pairs": pd.DataFrame(_groups(groups)), "null_ratio": null}, [0], "enc_layer2")
    by_test = m.set_index("test").margin
    # the claim holds (enc_layer2 smallest); against the null it fails (enc_layer1's ratio 0.1 < 0.5)
    assert by_test["claim"] == pytest.approx(2.0) and by_test["against_null"] == pytest.approx((0.1 - 0.5) / 0.5)
    # the same margins as claims_table's, for the claim and in the control's verdict
    row = claims.claims_table({"scratch_pairs": pd.DataFrame(_groups(groups)), "null_ratio": null}, [0],
                              "enc_layer2").set_index("id").loc["C1"]
    assert row.margin == pytest.approx(by_test["claim"]) and row.against_null.startswith("no")


def test_c8m_reads_only_matched_runs():
    rows = []
    for steps, gain in (("epochs", 0.10), ("matched", -0.05)):
        rows += [{"target": "T", "source": "", "strategy": "scratch", "fraction": 0.5, "seed": 0, "dice": 0.6,
                  "steps": steps},
                 {"target": "T", "source": "F", "strategy": "finetune_depth_lr", "fraction": 0.5, "seed": 0,
                  "dice": 0.6 + gain, "steps": steps},
                 {"target": "T", "source": "F", "strategy": "finetune", "fraction": 0.5, "seed": 0, "dice": 0.6,
                  "steps": steps}]
    table = pd.DataFrame(rows)
    assert claims.c8_policy(table).margin == pytest.approx(0.10)
    assert claims.c8_policy(table, "matched").margin == pytest.approx(-0.05)
    assert math.isnan(claims.c8_policy(table[table.steps == "epochs"], "matched").margin)


# ------------------------------------------------------------------ a study without the paper's three tissues


def _dice(net: str) -> float:
    """A made-up Dice that depends on the net's name only, so a net scores the same in any study."""
    order = "FTMP"
    base = base_of(net)
    return 0.9 if base is None else 0.9 - 0.01 * (1 + order.index(tissue_of(net))) - 0.002 * order.index(base)


def _study_tables(codes: tuple[str, ...], seed: int = 0) -> dict:
    """The claim inputs of a study of ``codes`` computed by kneelib from one-weight nets: scratch A(s) = 10 i,
    B|A(s) = A(s) + 1 + i(B); per-scan Dice and activation overlaps made up per net (codes of one letter)."""
    import torch

    from kneelib.compare import distance_tables
    from kneelib.names import finetuned_nets, net_name, scratch_nets

    value = {n: 10.0 * i for i, n in enumerate(scratch_nets(codes))}
    value |= {net_name(b, a): 10.0 * i + 1 + codes.index(b) for i, a in enumerate(codes) for b in codes if b != a}
    states = {seed: {n: {"enc_layer1.conv1.weight": torch.full((1, 1, 1, 1), v),
                         "enc_layer2.conv1.weight": torch.full((1, 1, 1, 1), v / 2),
                         "dec_layer1.conv1.weight": torch.full((1, 1, 1, 1), 2 * v)} for n, v in value.items()}}
    tables = distance_tables.distance_tables(states, tissues=codes)
    nets = scratch_nets(codes) + finetuned_nets(codes)
    per_scan = pd.DataFrame([{"net": n, "dice": _dice(n), "seed": seed} for n in nets])
    # nets that touch P overlap nothing: were T|P(s) vs F(s) counted as an F-T pair, C7 would change
    overlap = pd.DataFrame([{"net_a": a, "net_b": b, "group": "enc_layer1", "seed": seed,
                             "value": 0.0 if "P" in a + b else {"F-T": 0.6, "F-M": 0.5}.get(
                                 pair_name(a[0], b[0]), 0.4)}
                            for i, a in enumerate(nets) for b in nets[i + 1:]])
    return {"scratch_pairs": tables["scratch_pairs"], "finetune": tables["finetune"], "tissue": tables["tissue"],
            "headline": {"by_seed": tables["headline"]}, "per_scan": per_scan, "overlap": overlap}


def test_claims_that_need_f_t_m_are_not_answerable_without_them():
    tables = _study_tables(("F", "P"))
    table = claims.claims_table(tables, [0], "enc_layer2").set_index("id")
    for claim_id in ("C4", "C5", "C6", "C7"):
        row = table.loc[claim_id]
        assert row.holds is None and np.isnan(row.margin), claim_id
        assert row.this_run.startswith("n/a: needs the paper's tissues F, T and M"), row.this_run
    # C1-C3 ask about any scratch and fine-tuned nets: answered for two tissues too
    assert all(table.loc[c, "holds"] in (True, False) for c in ("C1", "C2", "C3"))
    assert table.loc["C3", "holds"]  # B|A(s) is 1-2 from A(s) and 9-11 from B(s)
    md = claims_markdown(table.reset_index(), "two tissues")
    c4 = next(line for line in md.splitlines() if line.startswith("| C4 |"))
    assert c4.endswith("| n/a | n/a |")
    margins = claims.claim_margins(tables, [0], "enc_layer2").set_index("id")
    assert margins.loc[["C4", "C5", "C6", "C7"], "margin"].isna().all()


def test_claims_of_more_tissues_are_judged_on_the_paper_nets_only():
    paper = claims.claims_table(_study_tables(("F", "T", "M")), [0], "enc_layer2").set_index("id")
    more = claims.claims_table(_study_tables(("F", "T", "M", "P")), [0], "enc_layer2").set_index("id")
    for claim_id in ("C4", "C5", "C6", "C7"):
        assert more.loc[claim_id, "this_run"] == paper.loc[claim_id, "this_run"], claim_id
        assert more.loc[claim_id, "margin"] == pytest.approx(paper.loc[claim_id, "margin"], nan_ok=True), claim_id
    assert not np.isnan(paper.loc["C4", "margin"])
