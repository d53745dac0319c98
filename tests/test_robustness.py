"""08_robustness without training: where each setting's nets live (no setting overwrites another's),
the claim x setting table, the robust-across-recipes verdict and the C3 ratio per setting."""

from __future__ import annotations

import math

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


def _margins() -> pd.DataFrame:
    rows = []
    for setting, c1, c3 in (("recipe", (0.2, 0.4), (1.0, 3.0)), ("ft_lr", (0.1, 0.3), (-1.0, -2.0)),
                            ("converge", (math.nan, math.nan), (2.0, 2.0))):
        for seed in (0, 1):
            rows += [{"setting": setting, "id": "C1", "test": "claim", "seed": seed, "margin": c1[seed]},
                     {"setting": setting, "id": "C3", "test": "claim", "seed": seed, "margin": c3[seed]},
                     {"setting": setting, "id": "C3", "test": "by_cka", "seed": seed, "margin": -c3[seed]}]
    return pd.DataFrame(rows)


def test_robustness_table_interval_and_verdicts():
    table = robustness.robustness_table(_margins())
    assert len(table) == 3 * 3  # one row per (setting, claim or control)
    r = table.set_index(["setting", "id", "test"]).loc[("recipe", "C1", "claim")]
    # mean 0.3, sd 0.1414; t(0.975, 1) = 12.706: half width 12.706 * 0.1414 / sqrt(2) = 1.2706
    assert r.margin_mean == pytest.approx(0.3) and r.ci95_low == pytest.approx(0.3 - 1.2706, abs=1e-3)
    assert r.holds and r.holds_in_seeds == "2/2" and r.holds_across_seeds is False
    nan_row = table.set_index(["setting", "id", "test"]).loc[("converge", "C1", "claim")]
    assert nan_row.holds is None and nan_row.holds_in_seeds == "n/a"
    flat = table.set_index(["setting", "id", "test"]).loc[("converge", "C3", "claim")]
    assert flat.margin_sd == 0 and flat.holds_across_seeds is True
    verdicts = robustness.robust_across_recipes(table, "recipe")
    assert verdicts == {"C1": "yes", "C3": "no (flips in: ft_lr)"}  # converge cannot answer C1: not a flip
    assert robustness.robust_across_recipes(table[table.setting != "recipe"], "recipe") == {"C1": "n-a", "C3": "n-a"}
    with pytest.raises(ValueError, match=r"\['margin'\]"):
        robustness.robustness_table(_margins().drop(columns="margin"))


def test_ratio_summary():
    ratios = pd.DataFrame([{"setting": "recipe", "seed": s, "to_base": b, "to_own_scratch": 1.0, "ratio": 1 / b,
                            "base_over_own": b} for s, b in ((0, 0.4), (1, 0.44))])
    nets = pd.DataFrame([{"setting": "recipe", "kind": k, "epochs": e, "best_epoch": e}
                         for k, e in (("scratch", 6), ("fine-tuned", 6))])
    summary = robustness.ratio_summary(ratios, nets)
    assert summary.ratio_mean.iloc[0] == pytest.approx(0.42)
    assert summary.paper_ratio.iloc[0] == pytest.approx(8.17e-3 / 6.45e-2)
    assert (summary.scratch_epochs.iloc[0], summary.finetune_best_epoch.iloc[0]) == (6, 6)
