"""Claims C1-C8 and their controls on small hand-made result tables: each criterion flips when the data
flips; claims_table and claim_margins evaluate them per seed."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from kneelib.compare.spread import interval95
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


def _headline(ratios: list[float]) -> dict:
    return {"headline": {"by_seed": {str(i): {"to_base": 1.0, "to_own_scratch": r} for i, r in enumerate(ratios)}}}


@pytest.mark.parametrize("ratios, verdict", [
    ([2.0, 2.2, 1.9], "supported"),       # margins 1.0, 1.2, 0.9: interval above 0
    ([0.5, 0.4, 0.6], "contradicted"),    # margins -0.5, -0.6, -0.4: below 0
    ([2.0, 2.2, 0.5], "inconclusive"),    # margins 1.0, 1.2, -0.5: straddles 0
])
def test_claims_table_is_three_valued_from_the_interval(ratios, verdict):
    table = claims.claims_table(_headline(ratios), [0, 1, 2], "enc_layer6").set_index("id")
    c3 = table.loc["C3"]
    margins = [r - 1 for r in ratios]
    mean, _, lo, hi = interval95(margins)
    assert c3.verdict == verdict and c3.effect == pytest.approx(mean)
    assert (c3.ci_low, c3.ci_high) == (pytest.approx(lo), pytest.approx(hi))
    assert c3.positive_in_seeds == f"{sum(m > 0 for m in margins)}/3" and c3.n_seeds == 3
    assert c3.null_verdict == "no null world" and c3.reading == verdict
    assert table.loc["C1", "verdict"] == "not computed yet"


def test_one_seed_has_no_interval_and_is_inconclusive():
    c3 = claims.claims_table(_headline([2.0]), [0], "enc_layer6").set_index("id").loc["C3"]
    assert c3.effect == pytest.approx(1.0) and np.isnan(c3.ci_low) and c3.verdict == "inconclusive"


def _scratch_pairs(values_by_seed: list[dict[str, float]]) -> pd.DataFrame:
    return pd.DataFrame([row for seed, values in enumerate(values_by_seed) for row in _groups(values, seed=seed)])


def test_a_null_world_where_c1_holds_marks_it_expected_from_the_init():
    trained = _scratch_pairs([{"enc_layer1": 0.30, "enc_layer2": 0.10 + 0.001 * s, "network": 0.2} for s in range(3)])
    untrained = _scratch_pairs([{"enc_layer1": 0.33, "enc_layer2": 0.11 + 0.001 * s, "network": 0.2}
                                for s in range(3)])
    row = claims.claims_table({"scratch_pairs": trained}, [0, 1, 2], "enc_layer2",
                              null={"scratch_pairs": untrained}).set_index("id").loc["C1"]
    assert row.verdict == "supported" and row.null_verdict == "supported"
    assert row.reading.startswith("expected from the init")
    # the trained margin (about 2.0) is below the untrained one (about 2.0 as well): nothing beyond the null
    assert row.effect_over_null == pytest.approx(row.effect - row.null_effect)
    # a null world where the latent level is not the smallest: the trained verdict is a finding
    flat = _scratch_pairs([{"enc_layer1": 0.10 + 0.01 * s, "enc_layer2": 0.11, "network": 0.2} for s in range(3)])
    row = claims.claims_table({"scratch_pairs": trained}, [0, 1, 2], "enc_layer2",
                              null={"scratch_pairs": flat}).set_index("id").loc["C1"]
    assert row.null_verdict != "supported" and row.reading == "supported beyond the null world"
    # a null world with the same margin but a wider interval: supported, yet nothing beyond the null
    noisy = _scratch_pairs([{"enc_layer1": 0.30 + d, "enc_layer2": 0.10 + 0.001 * s, "network": 0.2}
                            for s, d in enumerate((0.0, -0.25, 0.25))])
    row = claims.claims_table({"scratch_pairs": trained}, [0, 1, 2], "enc_layer2",
                              null={"scratch_pairs": noisy}).set_index("id").loc["C1"]
    assert row.verdict == "supported" and row.null_verdict == "inconclusive"
    assert row.reading.startswith("supported, but not beyond the null world")


def test_dice_claims_take_their_interval_over_subjects():
    nets = {"F(s)": 0.90, "F|T(s)": 0.91, "T(s)": 0.80, "T|F(s)": 0.82}
    rows = [{"net": n, "dice": d + noise, "seed": 0, "subject": subject, "scan_id": f"{subject}_V0{k}"}
            for subject, noise in (("a", 0.0), ("b", 0.05), ("c", -0.05)) for k in (0, 1) for n, d in nets.items()]
    c9 = claims.claims_table({"per_scan": pd.DataFrame(rows)}, [0], "enc_layer6").set_index("id").loc["C9"]
    # fine-tuned minus own scratch is +0.01 and +0.02 in every subject: margin 0.015 + 0.01, no spread
    assert c9.effect == pytest.approx(0.025) and c9.interval_method.startswith("bootstrap")
    assert c9.ci_low == pytest.approx(0.025) and c9.verdict == "supported"
    # one subject where fine-tuning loses by 0.2: the resampled subjects straddle the bound
    rows += [{"net": n, "dice": d - (0.2 if "|" in n else 0.0), "seed": 0, "subject": "d", "scan_id": "d_V00"}
             for n, d in nets.items()]
    c9 = claims.claims_table({"per_scan": pd.DataFrame(rows)}, [0], "enc_layer6").set_index("id").loc["C9"]
    assert c9.ci_low < 0 < c9.ci_high and c9.verdict == "inconclusive"


def _policy(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame([{"target": t, "source": src, "strategy": st, "fraction": f, "seed": seed, "dice": d,
                          "steps": steps} for t, src, st, f, seed, d, steps in rows])


def test_c8_compares_depth_lr_with_plain_fine_tuning_and_c8s_with_scratch():
    rows = []
    for target, scratch, depth_lr, plain in (("T", 0.60, 0.70, 0.65), ("M", 0.50, 0.52, 0.40)):
        rows += [(target, "", "scratch", 0.1, 0, scratch, "epochs"),
                 (target, "F", "finetune_depth_lr", 0.1, 0, depth_lr, "epochs"),
                 (target, "F", "finetune", 0.1, 0, plain, "epochs"),
                 # full data is not "limited": ignored even though fine-tuning loses there
                 (target, "F", "finetune_depth_lr", 1.0, 0, 0.0, "epochs"),
                 (target, "", "scratch", 1.0, 0, 0.9, "epochs")]
    table = _policy(rows)
    assert claims.c8_depth_lr(table).margin == pytest.approx((0.05 + 0.12) / 2)
    r = claims.c8_vs_scratch(table)
    assert r.margin == pytest.approx((0.10 + 0.02) / 2)
    assert "-0.0250" in r.value  # plain fine-tune: (0.05 - 0.10) / 2
    assert math.isnan(claims.c8_depth_lr(table[table.strategy != "finetune"]).margin)


def test_c8m_reads_only_matched_runs():
    rows = []
    for steps, gain in (("epochs", 0.10), ("matched", -0.05)):
        rows += [("T", "", "scratch", 0.5, 0, 0.6, steps), ("T", "F", "finetune_depth_lr", 0.5, 0, 0.6 + gain, steps),
                 ("T", "F", "finetune", 0.5, 0, 0.6, steps)]
    table = _policy(rows)
    assert claims.c8_vs_scratch(table).margin == pytest.approx(0.10)
    assert claims.c8_vs_scratch(table, "matched").margin == pytest.approx(-0.05)
    assert math.isnan(claims.c8_vs_scratch(table[table.steps == "epochs"], "matched").margin)


def test_c8f_femoral_cartilage_keeps_more_of_its_dice():
    rows = [("F", "T", "finetune", 1.0, 0, 0.80, "epochs"), ("F", "T", "finetune", 0.5, 0, 0.72, "epochs"),
            ("T", "F", "finetune", 1.0, 0, 0.80, "epochs"), ("T", "F", "finetune", 0.5, 0, 0.60, "epochs")]
    r = claims.c8f_femoral_less_data(_policy(rows))
    assert r.margin == pytest.approx(0.90 - 0.75)
    rows[1] = ("F", "T", "finetune", 0.5, 0, 0.40, "epochs")
    assert claims.c8f_femoral_less_data(_policy(rows)).margin == pytest.approx(0.50 - 0.75)
    assert math.isnan(claims.c8f_femoral_less_data(_policy(rows[2:])).margin)  # no F target


def test_c9_non_inferiority_and_c10_convergence():
    per_scan = _per_scan({"F(s)": 0.90, "F|T(s)": 0.895, "T(s)": 0.85, "T|F(s)": 0.83})
    assert claims.c9_no_compromise(per_scan).margin == pytest.approx((-0.005 - 0.02) / 2 + 0.01)
    history = pd.DataFrame([{"net": n, "seed": 0, "kind": k, "best_epoch": b, "epoch": e}
                            for n, k, b in (("F(s)", "scratch", 6), ("T(s)", "scratch", 4), ("T|F(s)", "fine-tuned", 2))
                            for e in range(1, 7)])
    r = claims.c10_converges_sooner(history)
    assert r.margin == pytest.approx((5 - 2) / 5) and "last epoch run in 1 of 3" in r.value
    nets = pd.DataFrame([{"net": "F(s)", "seed": 0, "kind": "scratch", "best_epoch": 3, "epochs": 6},
                         {"net": "T|F(s)", "seed": 0, "kind": "fine-tuned", "best_epoch": 6, "epochs": 6}])
    assert claims.c10_converges_sooner(nets).margin == pytest.approx(-1.0)


def test_c1b_and_c2_without_the_head():
    pairs = pd.DataFrame(_groups({"enc_layer2": 0.10}, "F(s) vs T(s)") + _groups({"enc_layer2": 0.11}, "F(s) vs M(s)"))
    r = claims.c1b_latent_near_equal(pairs, "enc_layer2")
    cv = np.std([0.10, 0.11], ddof=1) / 0.105
    assert r.margin == pytest.approx(0.10 - cv)
    assert math.isnan(claims.c1b_latent_near_equal(pairs[pairs.pair == "F(s) vs T(s)"], "enc_layer2").margin)
    t = pd.DataFrame(_groups({"enc_layer1": 0.1, "dec_layer1": 0.4, "dec_layer2": 0.2, "head": 0.9}))
    r = claims.c2_dec1_largest(t)  # the head's larger distance does not count
    assert r.margin == pytest.approx((0.4 - 0.2) / 0.4) and "head (apart) 0.9" in r.value


def test_controls_of_c1_are_three_valued():
    groups = {"enc_layer1": 0.3, "enc_layer2": 0.1, "network": 0.2}
    null = pd.DataFrame([{"group": g, "distance": d, "ratio": r, "seed": s}
                         for s in range(3) for (g, d), r in zip(groups.items(), (3.0 + s / 10, 0.5, 1.0))])
    aligned = pd.DataFrame([{"group": g, "aligned": d, "raw": d, "seed": s}
                            for s in range(3) for g, d in groups.items()])
    tables = {"scratch_pairs": _scratch_pairs([groups] * 3), "null_ratio": null, "aligned": aligned}
    row = claims.claims_table(tables, [0, 1, 2], "enc_layer2").set_index("id").loc["C1"]
    assert row.against_null_verdict == "supported" and row.against_null.startswith("supported")
    null.loc[null.group == "enc_layer1", "ratio"] = [0.1, 0.2, 0.3]  # enc_layer1 now the closest relative to chance
    row = claims.claims_table(tables, [0, 1, 2], "enc_layer2").set_index("id").loc["C1"]
    assert row.against_null_verdict == "contradicted"


def _tissue_seeds(distances_by_seed: list[dict[str, float]]) -> pd.DataFrame:
    return pd.DataFrame([{"pair": p, "tissue_distance": d, "seed": s}
                         for s, by_pair in enumerate(distances_by_seed) for p, d in by_pair.items()])


def _source_rows(dice_from_f: float, dice_from_m: float, target: str = "T", seed: int = 0) -> list[tuple]:
    return [(target, src, "finetune_depth_lr", 0.5, seed, d, "epochs") for src, d in (("F", dice_from_f),
                                                                                     ("M", dice_from_m))]


def test_c8b_closer_source_needs_distances_apart_beyond_their_interval():
    tissue = _tissue_seeds([{"F-T": 0.05 + s / 1000, "M-T": 0.09} for s in range(3)])
    policy = _policy([r for s in range(3) for r in _source_rows(0.80, 0.70, seed=s)])
    r = claims.c8b_closer_source(_policy(_source_rows(0.80, 0.70)), tissue[tissue.seed == 0], tissue)
    assert r.margin == pytest.approx(0.10) and "closer source F" in r.value  # F-T is the shorter distance
    r = claims.c8b_closer_source(_policy(_source_rows(0.60, 0.70)), tissue[tissue.seed == 0], tissue)
    assert r.margin == pytest.approx(-0.10)
    row = claims.claims_table({"policy": policy, "tissue": tissue}, [0, 1, 2], "enc_layer6").set_index("id").loc["C8b"]
    assert row.effect == pytest.approx(0.10)
    # distances that cross over between seeds are not "closer": n/a
    crossing = _tissue_seeds([{"F-T": 0.05, "M-T": 0.09}, {"F-T": 0.09, "M-T": 0.05}, {"F-T": 0.07, "M-T": 0.071}])
    r = claims.c8b_closer_source(_policy(_source_rows(0.80, 0.70)), crossing[crossing.seed == 0], crossing)
    assert math.isnan(r.margin) and "not distinguishable" in r.value
    # one seed: no interval, nothing is decisive
    assert math.isnan(claims.c8b_closer_source(policy[policy.seed == 0], tissue[tissue.seed == 0]).margin)


def test_c8b_not_answerable_with_one_source_per_target():
    scratch = [(t, "", "scratch", 0.5, 0, 0.5, "epochs") for t in "TM"]
    policy = _policy(_source_rows(0.8, 0.7)[:1] + _source_rows(0.8, 0.7, target="M")[:1] + scratch)
    tissue = pd.DataFrame([{"pair": p, "tissue_a": p[0], "tissue_b": p[2], "d_ab": d, "d_ba": d, "tissue_distance": d,
                            "asymmetry": 0.0, "seed": 0} for p, d in (("F-T", 0.05), ("F-M", 0.09), ("M-T", 0.07))])
    assert "not answerable" in claims.c8b_closer_source(policy, tissue).value
    table = claims.claims_table({"policy": policy, "tissue": tissue}, [0], "enc_layer6").set_index("id")
    assert table.loc["C8b", "verdict"] == "n/a"
    assert table.loc["C8", "verdict"] == "n/a" and "not answerable" in table.loc["C8", "this_run"]
    assert table.loc["C8s", "verdict"] == "inconclusive"  # one seed, one subject: nothing to resample


def test_claim_margins_one_row_per_claim_control_and_seed():
    m = claims.claim_margins(_headline([2.0, 0.5]), [0, 1], "enc_layer6")
    assert list(m.id) == ["C3", "C3"] and list(m.margin) == [pytest.approx(1.0), pytest.approx(-0.5)]
    groups = {"enc_layer1": 0.3, "enc_layer2": 0.1, "network": 0.2}
    null = pd.DataFrame([{"group": g, "distance": d, "ratio": r, "seed": 0}
                         for (g, d), r in zip(groups.items(), (0.1, 0.5, 1.0))])
    m = claims.claim_margins({"scratch_pairs": pd.DataFrame(_groups(groups)), "null_ratio": null}, [0], "enc_layer2")
    by_test = m.set_index(["id", "test"]).margin
    # the claim holds (enc_layer2 smallest); against the null it fails (enc_layer1's ratio 0.1 < 0.5)
    assert by_test[("C1", "claim")] == pytest.approx(2.0)
    assert by_test[("C1", "against_null")] == pytest.approx((0.1 - 0.5) / 0.5)
    # the same margins as claims_table's effects
    row = claims.claims_table({"scratch_pairs": pd.DataFrame(_groups(groups)), "null_ratio": null}, [0],
                              "enc_layer2").set_index("id").loc["C1"]
    assert row.effect == pytest.approx(by_test[("C1", "claim")]) and row.against_null.startswith("inconclusive")


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
        assert row.verdict == "n/a" and np.isnan(row.effect), claim_id
        assert row.this_run.startswith("n/a: needs the paper's tissues F, T and M"), row.this_run
    # C1-C3 ask about any scratch and fine-tuned nets: answered for two tissues too (one seed: inconclusive)
    assert all(table.loc[c, "verdict"] == "inconclusive" for c in ("C1", "C2", "C3"))
    assert table.loc["C3", "effect"] > 0  # B|A(s) is 1-2 from A(s) and 9-11 from B(s)
    md = claims_markdown(table.reset_index(), "two tissues")
    c4 = next(line for line in md.splitlines() if line.startswith("| C4 |"))
    assert "| n/a | **n/a** |" in c4
    margins = claims.claim_margins(tables, [0], "enc_layer2").set_index("id")
    assert margins.loc[["C4", "C5", "C6", "C7"], "margin"].isna().all()


def test_claims_of_more_tissues_are_judged_on_the_paper_nets_only():
    paper = claims.claims_table(_study_tables(("F", "T", "M")), [0], "enc_layer2").set_index("id")
    more = claims.claims_table(_study_tables(("F", "T", "M", "P")), [0], "enc_layer2").set_index("id")
    for claim_id in ("C4", "C5", "C6", "C7"):
        assert more.loc[claim_id, "this_run"] == paper.loc[claim_id, "this_run"], claim_id
        assert more.loc[claim_id, "effect"] == pytest.approx(paper.loc[claim_id, "effect"], nan_ok=True), claim_id
    assert not np.isnan(paper.loc["C4", "effect"])


def test_a_null_world_of_other_seeds_is_not_used():
    trained = _scratch_pairs([{"enc_layer1": 0.30, "enc_layer2": 0.10 + 0.001 * s, "network": 0.2} for s in range(2)])
    untrained_seed0 = _scratch_pairs([{"enc_layer1": 0.33, "enc_layer2": 0.11, "network": 0.2}])
    row = claims.claims_table({"scratch_pairs": trained}, [0, 1], "enc_layer2",
                              null={"scratch_pairs": untrained_seed0}).set_index("id").loc["C1"]
    assert row.null_verdict == "no null world"
