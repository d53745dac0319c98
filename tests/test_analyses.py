"""kneelib.study.analyses on untrained nets and the tiny phantoms: what each analysis returns, and that
08's claim inputs for a setting are the notebooks' analyses under that setting's profile."""

from __future__ import annotations

import pandas as pd
import pytest

from kneelib.compare import distance_tables
from kneelib.core import paths, registry
from kneelib.core.profiles import get_profile
from kneelib.nets.train import TrainResult
from kneelib.nets.unet import UNet2D
from kneelib.nets.workers import TrainJob
from kneelib.study import analyses, controls, nine_nets, robustness

pytestmark = pytest.mark.usefixtures("one_thread")


def untrained(depth: int, filters: int, seeds=(0, 1)) -> analyses.States:
    """The nine nets of every seed as distinct He initializations (no training)."""
    return {seed: {spec.name: UNet2D(depth, filters, seed=100 * seed + i).state_dict()
                   for i, spec in enumerate(nine_nets.all_specs(seed))} for seed in seeds}


def test_states_of_groups_trained_nets_by_seed():
    states = untrained(2, 2)
    trained = {spec: TrainResult(states[spec.seed][spec.name], [], 0, 0.0, paths.REPO_ROOT, True, {})
               for seed in (1, 0) for spec in nine_nets.all_specs(seed)}
    grouped = analyses.states_of(trained)
    assert list(grouped) == [1, 0] and list(grouped[0]) == [s.name for s in nine_nets.all_specs(0)]
    assert grouped[1]["T|F(s)"] is states[1]["T|F(s)"]


def test_distances_add_the_null_of_the_profiles_architecture():
    states = untrained(3, 4)
    p = get_profile("tiny")
    dist = analyses.distances(p, states)
    assert set(dist) == {"scratch_pairs", "finetune", "tissue", "headline", "distances_null"}
    assert set(dist["scratch_pairs"].seed) == {0, 1} and set(dist["headline"]) == {"0", "1"}
    pd.testing.assert_frame_equal(dist["distances_null"], distance_tables.null_table(p, states[0]["F(s)"]))
    # the empirical null is drawn at the profile's width: a wider profile gives another one
    wide = analyses.distances(p.replace(base_filters=8), states)["distances_null"]
    assert not wide.empirical.equals(dist["distances_null"].empirical)


def test_controls_spread_summarizes_the_three_controls_over_seeds(tiny):
    profile, ctx = tiny
    states = untrained(profile.depth, profile.base_filters)
    c = analyses.controls(profile, ctx, states, analyses.distances(profile, states))
    assert set(c.cka.comparison) == {"scratch_pairs", "finetune", "own_scratch"} and set(c.grams) == {0, 1}
    spread = analyses.controls_spread(c)
    assert set(spread.table) == {"null_ratio", "aligned", "cka"} and (spread.n_seeds == 2).all()
    row = spread[(spread.table == "null_ratio") & (spread.pair == "F(s) vs T(s)") & (spread.group == "network")]
    by_seed = c.null_ratio[(c.null_ratio.pair == "F(s) vs T(s)") & (c.null_ratio.group == "network")].ratio
    assert row["mean"].item() == pytest.approx(by_seed.mean())


def test_claim_inputs_of_a_setting_are_the_notebooks_analyses_under_its_profile(tiny, monkeypatch):
    """08 computes what 03-07 compute, for the setting's nets and under the setting's profile (here
    "converge": more epochs, so its policy runs are not the tiny profile's)."""
    profile, ctx = tiny
    s = robustness.setting(profile, "converge")
    sp = robustness.setting_profile(profile, s)
    assert sp.max_epochs == profile.robustness_epoch_cap != profile.max_epochs
    states = untrained(sp.depth, sp.base_filters)
    calls = []
    policy_table = pd.DataFrame({"target": ["T"], "dice": [0.5], "seed": [0]})

    def sweep(p, c, force=False, progress=True, relocate=None):  # the policy runs would train: recorded instead
        calls.append((p, force, relocate))
        return policy_table

    monkeypatch.setattr(analyses, "policy_sweep", sweep)
    nets = pd.DataFrame({"net": ["F(s)"], "seed": [0], "kind": ["scratch"], "best_epoch": [1], "epochs": [2]})
    inputs = robustness.claim_inputs(profile, ctx, s, states, nets, force=True, progress=False)
    assert set(inputs) == set(registry.CLAIM_INPUTS)

    dist = analyses.distances(sp, states)
    expected = analyses.claim_tables(analyses.evaluation(sp, ctx, states), dist,
                                     analyses.activations(sp, ctx, states).overlap,
                                     analyses.controls(sp, ctx, states, dist), policy_table, nets)
    for name in registry.CLAIM_INPUTS:
        if name == "headline":
            assert inputs[name] == expected[name]
        else:
            pd.testing.assert_frame_equal(inputs[name], expected[name], obj=name)
    # ... the tables the notebooks computed before they called kneelib.study.analyses
    null = distance_tables.null_table(sp, states[0]["F(s)"])
    pd.testing.assert_frame_equal(inputs["null_ratio"], controls.null_ratio_table(dist["scratch_pairs"], null))
    pd.testing.assert_frame_equal(inputs["aligned"], controls.aligned_scratch_pairs(states))
    assert len(inputs["per_scan"]) == 2 * 9 * len(ctx.split("test"))

    (p, force, relocate), = calls  # the policy sweep under the setting's profile, runs kept in its folder
    assert p == sp != profile and force
    job = TrainJob(nine_nets.finetune_specs(0)[0])
    assert relocate(job) == robustness.relocate(profile, s, job)


def test_claim_tables_are_named_as_the_claims_read_them():
    frame = pd.DataFrame({"seed": [0]})
    dist = {"scratch_pairs": frame, "finetune": frame, "tissue": frame, "headline": {"0": {}},
            "distances_null": frame}
    c = analyses.Controls(frame, frame, frame, frame, {})
    tables = analyses.claim_tables(frame, dist, frame, c, frame, frame)
    assert set(tables) == set(registry.CLAIM_INPUTS)
    assert tables["headline"] == {"by_seed": {"0": {}}}  # as claims_report.load_tables reads the JSON back
