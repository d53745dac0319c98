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


def test_markdown_one_row_per_claim_and_escapes_pipes():
    md = claims_report.claims_markdown(_c3_table(), "t")
    assert md.startswith("# t\n") and "B\\|A(s)" in md and md.count("\n| C") == 10
    c3 = next(line for line in md.splitlines() if line.startswith("| C3 |"))
    assert "| 1 vs 2 |" in c3 and c3.endswith("| yes | n/a (1/1, margin 1, 95% CI n/a) |")  # one seed: no interval
    assert "## Controls" not in md  # no control computed


def test_markdown_controls_section_only_with_controls():
    groups = {"enc_layer1": 0.3, "enc_layer2": 0.1, "network": 0.2}
    null = pd.DataFrame([{"group": g, "distance": d, "ratio": r, "seed": 0}
                         for (g, d), r in zip(groups.items(), (3.0, 0.5, 1.0))])
    table = claims.claims_table({"scratch_pairs": pd.DataFrame(_groups(groups)), "null_ratio": null}, [0],
                                "enc_layer2")
    md = claims_report.claims_markdown(table, "t")
    controls = md.split("## Controls")[1]
    assert "| id | against null |" in controls
    assert next(line for line in controls.splitlines() if line.startswith("| C1 |")).startswith("| C1 | yes (")


def test_markdown_gets_the_robust_column():
    md = claims_report.claims_markdown(_c3_table(), "t", {"C3": "no (flips in: ft_lr)"})
    c3 = next(line for line in md.splitlines() if line.startswith("| C3 |"))
    assert c3.endswith("| no (flips in: ft_lr) |") and "robust across recipes |" in md
    c1 = next(line for line in md.splitlines() if line.startswith("| C1 |"))
    assert c1.endswith("| n-a |")
    assert "robust across recipes" not in claims_report.claims_markdown(_c3_table(), "t")


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
    computed = {"C1", "C3", "C8"}  # C8b needs the tissue distances too
    assert list(table.index) == ["C1", "C2", "C3", "C4", "C5", "C6", "C7", "C8", "C8m", "C8b"]
    holds = table.holds.to_dict()
    # C8m has its input (the policy table) but no matched-steps runs in it: computed, not answerable
    assert {c for c in table.index if table.loc[c, "this_run"] != "not computed yet"} == computed | {"C8m"}
    assert table.loc["C8m", "this_run"].startswith("not answerable")
    assert {c: holds[c] for c in computed} == {c: True for c in computed}
    assert all(holds[c] is None for c in table.index if c not in computed)
    assert table.loc["C3", "margin"] == pytest.approx(2.0)  # (3 - 1) / 1, from the JSON file
    assert table.loc["C8", "margin"] == pytest.approx(0.1)


def test_write_claims_writes_csv_and_markdown_and_reads_the_robustness_table(tmp_path, monkeypatch):
    monkeypatch.setenv(paths.OUTPUTS_ENV, str(tmp_path))
    results = paths.results_dir("tiny")
    _write_results(results)
    table = claims_report.write_claims("tiny", [0], "enc_layer2", {"seed": [0]})
    assert pd.read_csv(results / "claims.csv").id.tolist() == table.id.tolist()
    md = claims_report.claims_md_path("tiny").read_text()
    assert md.startswith("# Claims report: profile `tiny`, seeds [0]") and "robust across recipes" not in md
    # once 08 has written its claim x setting table, the report says whether each verdict survives
    rows = [{"setting": s, "id": "C3", "holds": h} for s, h in (("recipe", True), ("ft_lr", False))]
    save_table(pd.DataFrame(rows), results, registry.table("robustness_claims"), {})
    assert claims_report.robustness_verdicts("tiny") == {"C3": "no (flips in: ft_lr)"}
    claims_report.write_claims("tiny", [0], "enc_layer2", {"seed": [0]})
    c3 = next(line for line in claims_report.claims_md_path("tiny").read_text().splitlines()
              if line.startswith("| C3 |"))
    assert c3.endswith("| no (flips in: ft_lr) |")


# ------------------------------------------------------------------ 08's paragraph


def test_recipe_summary_paragraph():
    summary = pd.DataFrame([{"setting": "recipe", "ratio_mean": 0.42, "ratio_ci95_low": 0.17, "ratio_ci95_high": 0.67,
                             "paper_ratio": 8.17e-3 / 6.45e-2, "scratch_epochs": 6.0, "finetune_epochs": 5.0,
                             "scratch_best_epoch": 4.5, "finetune_best_epoch": 3.0}])
    margins = pd.DataFrame([{"setting": s, "id": "C3", "test": "claim", "seed": seed, "margin": m}
                            for s, m in (("recipe", 1.0), ("ft_lr", -1.0)) for seed in (0, 1)])
    text = claims_report.recipe_summary_markdown(summary, robustness.robustness_table(margins),
                                                 robustness.settings(get_profile("robustness")))
    assert "**recipe: lr " in text and "ratio 0.42 (95% interval 0.17 to 0.67)" in text
    assert "the paper's is 0.13" in text
    assert "scratch nets 6.0 epochs (best at 4.5), fine-tuned 5.0 (best at 3.0)" in text
    assert "unchanged across recipes: none" in text and "Changed: C3 (flips in: ft_lr)." in text
