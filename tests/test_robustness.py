"""08_robustness without training: where each setting's nets live (no setting overwrites another's),
the claim x setting table, the robust-across-recipes verdict and the C3 ratio per setting."""

from __future__ import annotations

import pandas as pd
import pytest

from kneelib.core import paths
from kneelib.core.profiles import get_profile
from kneelib.nets.run import NetSpec
from kneelib.nets.workers import TrainJob
from kneelib.study import policy, robustness

F, T = "femoral_cartilage", "tibial_cartilage"


def test_grid_and_reference_profile():
    p = get_profile("robustness")
    assert [s.name for s in robustness.settings(p)] == ["recipe", "ft_lr", "converge"]
    assert robustness.reference_profile(p).name == "demo"  # same recipe: the demo's nets are reused
    changed = get_profile("robustness", lr=1e-3)
    assert robustness.reference_profile(changed).name == "robustness"  # never writes into demo's folder
    assert robustness.grid_profile(get_profile("tiny")).seeds == (0, 1)
    with pytest.raises(ValueError, match="unknown robustness setting 'wider'"):
        robustness.setting(p, "wider")


def test_setting_profiles_share_scratch_nets_only_when_identical():
    p = get_profile("robustness")
    by_name = {s.name: s for s in robustness.settings(p)}
    recipe = robustness.setting_profile(p, by_name["recipe"])
    ft_lr = robustness.setting_profile(p, by_name["ft_lr"])
    converge = robustness.setting_profile(p, by_name["converge"])
    assert recipe.name == ft_lr.name == "demo" and ft_lr.finetune_lr == 1e-3 and ft_lr.lr == p.lr
    assert converge.name == "robustness/settings/converge"
    assert (converge.max_epochs, converge.patience) == (p.robustness_epoch_cap, p.robustness_patience)
    assert robustness.setting_profile(p, robustness.setting(p, "wide16")).base_filters == 16


def test_relocate_moves_only_nets_whose_recipe_differs():
    p = get_profile("robustness")
    ft_lr, recipe, converge = (robustness.setting(p, n) for n in ("ft_lr", "recipe", "converge"))
    scratch, tuned = TrainJob(NetSpec(F, None, 1)), TrainJob(NetSpec(T, F, 1))
    assert robustness.relocate(p, ft_lr, scratch) == scratch  # shared with the recipe setting
    moved = robustness.relocate(p, ft_lr, tuned)
    expected = paths.models_dir("robustness/settings/ft_lr") / "seed1/tibial_cartilage__from_femoral_cartilage"
    assert moved.run_dir == expected
    assert robustness.relocate(p, recipe, tuned) == tuned
    assert robustness.relocate(p, converge, tuned) == tuned  # its own profile folder already
    # A policy run of the reference folder moves the same way, keeping its sub-path.
    sp = robustness.setting_profile(p, ft_lr)
    run = policy.PolicyRun(T, F, "finetune", 0.17, 0)
    job = TrainJob(run.spec, policy._run_dir(sp, run), None, (("depth_lr_decay", 1.0), ("train_fraction", 0.17)))
    assert robustness.relocate(p, ft_lr, job).run_dir == (
        paths.models_dir("robustness/settings/ft_lr") / "policy" / "seed0" / job.run_dir.name)


def _effects() -> pd.DataFrame:
    rows = []
    for setting, c1, c3, shared in (("recipe", "supported", "supported", False),
                                    ("ft_lr", "contradicted", "inconclusive", True),
                                    ("converge", "n/a", "supported", False)):
        for claim_id, v in (("C1", c1), ("C3", c3)):
            rows.append({"setting": setting, "id": claim_id, "test": "claim", "effect": 0.1, "ci_low": 0.0,
                         "ci_high": 0.2, "interval_method": "t over seeds", "n_seeds": 2, "positive_in_seeds": "2/2",
                         "verdict": v, "reference_scratch": shared, "value": "x"})
    return pd.DataFrame(rows)


def test_robustness_table_and_verdicts_across_recipes():
    table = robustness.robustness_table(_effects())
    assert list(table.columns) == list(robustness.ROBUSTNESS_COLUMNS) and len(table) == 6
    across = robustness.robust_across_recipes(table, "recipe")
    # C1 reads scratch nets only: ft_lr reuses the reference's, so it is not a second test; converge is n/a
    assert across == {"C1": "supported in 1 of 1", "C3": "supported in 2 of 3, inconclusive in 1"}
    assert robustness.robust_across_recipes(table[table.setting != "recipe"], "recipe") == {"C1": "n/a", "C3": "n/a"}
    with pytest.raises(ValueError, match=r"\['verdict'\]"):
        robustness.robustness_table(_effects().drop(columns="verdict"))


def test_setting_effects_mark_the_settings_that_share_the_reference_scratch_nets():
    p = robustness.grid_profile(get_profile("robustness"))
    shared = {s.name: robustness.shares_reference_scratch(p, s) for s in robustness.settings(p)}
    assert shared == {"recipe": False, "ft_lr": True, "converge": False}
    tables = {"headline": {"by_seed": {"0": {"to_base": 1.0, "to_own_scratch": 2.0},
                                       "1": {"to_base": 1.0, "to_own_scratch": 2.1}}}}
    rows = robustness.setting_effects(p, robustness.setting(p, "ft_lr"), tables, [0, 1], "enc_layer6")
    c3 = rows.set_index("id").loc["C3"]
    assert c3.setting == "ft_lr" and c3.reference_scratch and c3.effect == pytest.approx(1.05)


def test_ratio_summary():
    ratios = pd.DataFrame([{"setting": "recipe", "seed": s, "to_base": b, "to_own_scratch": 1.0, "ratio": 1 / b,
                            "base_over_own": b} for s, b in ((0, 0.4), (1, 0.44))])
    nets = pd.DataFrame([{"setting": "recipe", "kind": k, "epochs": e, "best_epoch": e}
                         for k, e in (("scratch", 6), ("fine-tuned", 6))])
    summary = robustness.ratio_summary(ratios, nets)
    assert summary.ratio_mean.iloc[0] == pytest.approx(0.42)
    assert summary.paper_ratio.iloc[0] == pytest.approx(8.17e-3 / 6.45e-2)
    assert (summary.scratch_epochs.iloc[0], summary.finetune_best_epoch.iloc[0]) == (6, 6)
