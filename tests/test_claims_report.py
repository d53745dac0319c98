"""kneelib.report.claims_report: the claims report's Markdown, reading the claims' inputs back from the
files the notebooks write, writing claims.csv and claims.md, and 08's paragraph on the recipes."""

from __future__ import annotations

import pandas as pd
import pytest

from kneelib.core import paths, registry
from kneelib.core.profiles import get_profile
from kneelib.core.results import save_json, save_table
from kneelib.report import claims_report
from kneelib.study import claims, robustness


def _groups(values: dict[str, float], pair: str = "F(s) vs T(s)", seed: int = 0) -> list[dict]:
    return [{"pair": pair, "group": g, "distance": d, "seed": seed} for g, d in values.items()]


def _c3_table() -> pd.DataFrame:
    return claims.claims_table({"headline": {"by_seed": {"0": {"to_base": 1.0, "to_own_scratch": 2.0}}}},
                               [0], "enc_layer6")


# ------------------------------------------------------------------ Markdown


ALL_CLAIMS = ["C1", "C1b", "C2", "C3", "C4", "C5", "C6", "C7", "C8", "C8s", "C8m", "C8f", "C8b", "C9", "C10"]


def _line(md: str, claim_id: str) -> str:
    return next(line for line in md.splitlines() if line.startswith(f"| {claim_id} |"))


def test_markdown_opens_with_the_data_and_groups_the_claims():
    md = claims_report.claims_markdown(_c3_table(), "t")
    assert md.startswith("# t\n\n**Data: synthetic knee phantoms, not knees.**")
    assert "B\\|A(s)" in md and md.count("\n| C") == len(ALL_CLAIMS)
    dynamics, relationships = md.split("## Training dynamics")[1].split("## Tissue relationships")
    assert "| C3 |" in dynamics and "| C4 |" not in dynamics and "| C4 |" in relationships
    c3 = _line(md, "C3")
    # one seed: the effect without an interval, inconclusive; no null world for this table
    assert "| 1 vs 2 |" in c3 and "| 1 no interval, positive in 1/1 seeds | **inconclusive** | no null world |" in c3
    assert "## Controls" not in md  # no control computed
    assert "has not run for this profile" in md  # the ladder's section
    real = claims_report.claims_markdown(_c3_table(), "t", data_source="real")
    assert "**Data: real scans**" in real and "phantoms" not in real.split("\n")[2]


def test_markdown_controls_section_only_with_controls():
    groups = {"enc_layer1": 0.3, "enc_layer2": 0.1, "network": 0.2}
    null = pd.DataFrame([{"group": g, "distance": d, "ratio": r, "seed": 0}
                         for (g, d), r in zip(groups.items(), (3.0, 0.5, 1.0))])
    table = claims.claims_table({"scratch_pairs": pd.DataFrame(_groups(groups)), "null_ratio": null}, [0],
                                "enc_layer2")
    md = claims_report.claims_markdown(table, "t")
    controls = md.split("## Controls")[1]
    assert "| id | against null |" in controls
    assert _line(controls, "C1").startswith("| C1 | inconclusive: effect 5 no interval;")


def test_markdown_gets_the_across_recipes_column_and_the_ladder():
    md = claims_report.claims_markdown(_c3_table(), "t", {"C3": "supported in 1 of 2, contradicted in 1"})
    assert _line(md, "C3").endswith("| supported in 1 of 2, contradicted in 1 |") and "across recipes |" in md
    assert _line(md, "C1").endswith("| n/a |")
    assert "across recipes" not in claims_report.claims_markdown(_c3_table(), "t")
    table = claims.claims_table(_HEADLINE, [0], "enc_layer6", validation={"kernel_distance": "inconclusive"})
    md = claims_report.claims_markdown(table, "t", ladder={"kernel_distance": "inconclusive", "cka": "supported"})
    assert "kernel_distance: inconclusive (**the ladder did not validate it**)" in _line(md, "C3")
    assert "kernel_distance **inconclusive**; cka **supported**" in md
    assert "did not validate: C1, C1b, C2, C3, C4, C5, C8b;" in md


_HEADLINE = {"headline": {"by_seed": {"0": {"to_base": 1.0, "to_own_scratch": 2.0}}}}


# ------------------------------------------------------------------ files


def _write_results(directory) -> dict:
    """Three of the claims' inputs, written as the notebooks write them, plus files load_tables must ignore."""
    scratch_pairs = pd.DataFrame(_groups({"enc_layer1": 0.3, "enc_layer2": 0.1, "network": 0.2}))
    policy = pd.DataFrame([{"target": "T", "source": s, "strategy": st, "fraction": 0.5, "seed": 0, "dice": d}
                           for s, st, d in (("", "scratch", 0.6), ("F", "finetune_depth_lr", 0.7),
                                            ("F", "finetune", 0.65))])
    headline = {"0": {"to_base": 1.0, "to_own_scratch": 3.0}}
    save_table(scratch_pairs, directory, registry.table("scratch_pairs"), {"seed": 0})
    save_table(policy, directory, registry.table("policy"), {})
    save_json(headline, directory, registry.table("headline"), {"commit": "x"})
    save_table(pd.DataFrame({"x": [1]}), directory, "unrelated_table", {})
    return {"scratch_pairs": scratch_pairs, "policy": policy, "headline": headline}


def test_load_tables_reads_exactly_the_tables_present(tmp_path):
    assert claims_report.load_tables(tmp_path / "not_yet") == {}  # nothing written yet: no error
    written = _write_results(tmp_path)
    assert (tmp_path / "distances_scratch_pairs.csv").exists()  # the registry's stems are the files' names
    tables = claims_report.load_tables(tmp_path)
    assert set(tables) == {"scratch_pairs", "policy", "headline"}
    pd.testing.assert_frame_equal(tables["scratch_pairs"], written["scratch_pairs"])
    # CSV reads the scratch runs' empty source back as NaN; the claims never group scratch runs by source
    pd.testing.assert_frame_equal(tables["policy"].fillna({"source": ""}), written["policy"])
    assert tables["headline"] == {"by_seed": written["headline"]}  # the result, without its provenance


def test_claims_without_inputs_are_not_computed(tmp_path):
    _write_results(tmp_path)
    table = claims.claims_table(claims_report.load_tables(tmp_path), [0], "enc_layer2").set_index("id")
    assert list(table.index) == ALL_CLAIMS
    # the policy claims have their input; C8m (no matched runs), C8f (no F target, no full-data runs) cannot
    # answer; C8b needs the tissue distances too
    computed = {"C1", "C1b", "C3", "C8", "C8s", "C8m", "C8f"}
    assert {c for c in table.index if table.loc[c, "this_run"] != "not computed yet"} == computed
    assert table.loc["C8m", "this_run"].startswith("not answerable") and table.loc["C8m", "verdict"] == "n/a"
    assert table.loc["C1b", "verdict"] == "n/a"  # one scratch pair: nothing to compare
    assert table.loc["C3", "effect"] == pytest.approx(2.0)  # (3 - 1) / 1, from the JSON file
    assert table.loc["C8", "effect"] == pytest.approx(0.05)  # depth-lr 0.7 vs plain 0.65
    assert table.loc["C8s", "effect"] == pytest.approx(0.1)  # depth-lr 0.7 vs scratch 0.6
    assert (table.loc[["C3", "C8", "C8s"], "verdict"] == "inconclusive").all()  # one seed, one subject


def test_write_claims_writes_csv_and_markdown_and_reads_the_robustness_table(tmp_path, monkeypatch):
    monkeypatch.setenv(paths.OUTPUTS_ENV, str(tmp_path))
    results = paths.results_dir("tiny")
    _write_results(results)
    table = claims_report.write_claims("tiny", [0], "enc_layer2", {"seed": [0]}, "phantom")
    written = pd.read_csv(results / "claims.csv")
    assert written.id.tolist() == table.id.tolist()
    assert {"id", "verdict", "effect", "ci_low", "ci_high", "n_seeds", "null_verdict"} <= set(written.columns)
    md = claims_report.claims_md_path("tiny").read_text()
    assert md.startswith("# Claims report: profile `tiny`, seeds [0]") and "across recipes" not in md
    # once 08 has written its claim x setting table, the report counts each claim's verdicts over the recipes
    rows = [{"setting": s, "id": "C3", "test": "claim", "verdict": v, "reference_scratch": r}
            for s, v, r in (("recipe", "supported", False), ("ft_lr", "inconclusive", True))]
    save_table(pd.DataFrame(rows), results, registry.table("robustness_claims"), {})
    assert claims_report.robustness_verdicts("tiny") == {"C3": "supported in 1 of 2, inconclusive in 1"}
    claims_report.write_claims("tiny", [0], "enc_layer2", {"seed": [0]}, "phantom")
    c3 = _line(claims_report.claims_md_path("tiny").read_text(), "C3")
    assert c3.endswith("| supported in 1 of 2, inconclusive in 1 |")


# ------------------------------------------------------------------ 08's paragraph


def test_recipe_summary_paragraph():
    summary = pd.DataFrame([{"setting": "recipe", "ratio_mean": 0.42, "ratio_ci95_low": 0.17, "ratio_ci95_high": 0.67,
                             "paper_ratio": 8.17e-3 / 6.45e-2, "scratch_epochs": 6.0, "finetune_epochs": 5.0,
                             "scratch_best_epoch": 4.5, "finetune_best_epoch": 3.0}])
    effects = pd.DataFrame([{"setting": s, "id": c, "test": "claim", "effect": e, "ci_low": e - 0.5,
                             "ci_high": e + 0.5, "interval_method": "t over seeds", "n_seeds": 2,
                             "positive_in_seeds": "2/2", "verdict": v, "reference_scratch": s == "ft_lr"}
                            for c in ("C1", "C3") for s, e, v in (("recipe", 1.0, "supported"),
                                                                   ("ft_lr", -1.0, "contradicted"))])
    text = claims_report.recipe_summary_markdown(summary, robustness.robustness_table(effects),
                                                 robustness.settings(get_profile("robustness")))
    assert "**recipe: lr " in text and "ratio 0.42 (95% interval 0.17 to 0.67)" in text
    assert "the paper's is 0.13" in text
    assert "scratch nets 6.0 epochs (best at 4.5), fine-tuned 5.0 (best at 3.0)" in text
    # C3 reads fine-tuned nets: both settings count; C1 reads scratch nets only, which ft_lr shares
    assert "C1 supported in 1 of 1; C3 supported in 1 of 2, contradicted in 1." in text
