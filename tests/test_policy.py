"""kneelib.study.policy: parsing the pairs, the runs of a sweep and their training jobs, reusing finished runs,
and ranking source tissues."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kneelib.core import paths
from kneelib.core.profiles import get_profile
from kneelib.data import context, manifest
from kneelib.nets import run as net_run
from kneelib.nets import train
from kneelib.study import policy
from kneelib.study.policy import PolicyRun

F, T, M = "femoral_cartilage", "tibial_cartilage", "meniscus"


# ------------------------------------------------------------------ pairs and runs


def test_parse_pairs_gives_target_then_source():
    assert policy.parse_pairs(("T|F", "M|F", "F|M")) == [(T, F), (M, F), (F, M)]
    assert policy.parse_pairs(()) == []


@pytest.mark.parametrize("bad", ["TF", "T|T", "X|F", "T|", "|F", "T|F|M", "t|f"])
def test_parse_pairs_names_the_bad_pair(bad):
    with pytest.raises(ValueError, match=f"policy pair '{bad.replace('|', '[|]')}'"):
        policy.parse_pairs(("M|T", bad))


def test_policy_runs_share_the_scratch_run_of_a_target():
    profile = get_profile("tiny", policy_pairs=("T|F", "T|M", "M|F"), policy_fractions=(0.5, 1.0), seeds=(0, 1),
                          policy_steps=["epochs"])
    runs = policy.policy_runs(profile)
    assert len(runs) == len(set(runs))
    # per fraction and seed: T has 1 scratch + 2 sources x 2 fine-tunings, M has 1 + 1 x 2
    assert len(runs) == 2 * 2 * (5 + 3)
    scratch = [r for r in runs if r.strategy == "scratch"]
    assert sorted((r.target, r.fraction, r.seed) for r in scratch) == sorted(
        (t, f, s) for t in (T, M) for f in (0.5, 1.0) for s in (0, 1))
    assert all(r.source is None for r in scratch)
    tuned = [r for r in runs if r.strategy != "scratch"]
    assert {(r.target, r.source) for r in tuned} == {(T, F), (T, M), (M, F)}
    assert {r.strategy for r in tuned} == {"finetune", "finetune_depth_lr"}
    # matched steps add a second copy of every limited-data run; full-data runs are shared by both variants
    both = policy.policy_runs(profile.replace(policy_steps=["epochs", "matched"]))
    assert len(both) == len(runs) + 2 * (5 + 3)
    assert {r.fraction for r in both if r.steps == "matched"} == {0.5}
    # tiny: T|F and F|T (two targets), fractions (0.34, 1.0), 1 seed
    assert len(policy.policy_runs(get_profile("tiny", policy_steps=["epochs"]))) == 2 * 2 * 3


# ------------------------------------------------------------------ training jobs


@pytest.fixture
def iwoai_ctx(tmp_path, monkeypatch):
    """The committed IWOAI split (60 training subjects, two timepoints each) as a context: jobs need no files."""
    monkeypatch.setenv(paths.OUTPUTS_ENV, str(tmp_path))
    records = tuple(manifest.iwoai_records())
    return context.DataContext(tmp_path / "data", records, "hash", "real", tmp_path / "cache")


def test_full_data_runs_reuse_the_main_nets(iwoai_ctx):
    profile = get_profile("tiny", policy_depth_decay=0.3)
    for strategy, source in (("scratch", None), ("finetune", F)):
        run = PolicyRun(T, source, strategy, 1.0, 0)
        job = policy.policy_job(profile, iwoai_ctx, run)
        assert job.spec == net_run.NetSpec(T, source, 0)
        assert job.run_dir is None and job.train_scans is None  # the net's own folder, every training scan
        assert dict(job.overrides) == {"depth_lr_decay": 1.0, "train_fraction": 1.0}
        # ... and the very recipe of the main net, so its finished checkpoint is reused
        assert net_run.train_config(profile, job.spec, **dict(job.overrides)) == net_run.train_config(profile, job.spec)


def test_depth_lr_runs_get_their_own_folder_and_decay(iwoai_ctx, tmp_path):
    profile = get_profile("tiny", policy_depth_decay=0.3)
    job = policy.policy_job(profile, iwoai_ctx, PolicyRun(T, F, "finetune_depth_lr", 1.0, 2))
    folder = "tibial_cartilage__from_femoral_cartilage__finetune_depth_lr_f1"
    assert job.run_dir == tmp_path / "tiny/models/policy/seed2" / folder
    assert job.train_scans is None
    assert dict(job.overrides) == {"depth_lr_decay": 0.3, "train_fraction": 1.0}


def test_subset_runs_train_on_a_fraction_of_subjects_with_both_timepoints(iwoai_ctx, tmp_path):
    profile = get_profile("tiny", policy_depth_decay=0.3)
    jobs = {s: policy.policy_job(profile, iwoai_ctx, PolicyRun(T, None if s == "scratch" else F, s, 0.25, 1))
            for s in policy.STRATEGIES}
    by_id = {r.scan_id: r for r in iwoai_ctx.split("train")}
    scans = jobs["scratch"].train_scans
    assert len(scans) == 30 and len({by_id[s].subject for s in scans}) == 15  # 25% of 60 subjects, V00 and V01
    assert set(scans) == {r.scan_id for r in context.subset_subjects(iwoai_ctx.split("train"), 0.25, seed=1)}
    assert all(j.train_scans == scans for j in jobs.values())  # the strategies compare on the same subjects
    assert policy.policy_job(profile, iwoai_ctx, PolicyRun(T, None, "scratch", 0.25, 2)).train_scans != scans
    assert {s: dict(j.overrides)["depth_lr_decay"] for s, j in jobs.items()} == {
        "scratch": 1.0, "finetune": 1.0, "finetune_depth_lr": 0.3}
    assert all(dict(j.overrides)["train_fraction"] == 0.25 for j in jobs.values())
    folders = {s: j.run_dir for s, j in jobs.items()}
    assert folders["scratch"] == tmp_path / "tiny/models/policy/seed1/tibial_cartilage__scratch__scratch_f0.25"
    assert len(set(folders.values())) == 3


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_run_policy_reuses_finished_runs(tmp_path, monkeypatch):
    monkeypatch.setenv(paths.OUTPUTS_ENV, str(tmp_path))
    profile = get_profile("tiny")
    ctx = context.prepare_data(profile)
    runs = [PolicyRun(T, None, "scratch", 0.34, 0), PolicyRun(T, F, "finetune_depth_lr", 0.34, 0)]
    first = policy.run_policy(profile, ctx, runs, progress=False)
    assert first[["target", "source", "strategy", "fraction", "n_subjects"]].values.tolist() == [
        ["T", "", "scratch", 0.34, 1], ["T", "F", "finetune_depth_lr", 0.34, 1]]  # 34% of 3 subjects
    assert first.epochs.tolist() == [profile.max_epochs] * 2
    assert first.dice.between(0, 1).all()

    def no_training(*args, **kwargs):
        raise AssertionError("a finished policy run must not train again")

    monkeypatch.setattr(train, "train_epoch", no_training)
    again = policy.run_policy(profile, ctx, runs, progress=False)
    pd.testing.assert_frame_equal(again, first)


# ------------------------------------------------------------------ source ranking


def _policy_rows(target, source, dice, fraction=0.5, strategy="finetune_depth_lr", seeds=(0, 1)):
    return [{"target": target, "source": source, "strategy": strategy, "fraction": fraction, "seed": s,
             "dice": d} for s, d in zip(seeds, dice)]


TISSUE = pd.DataFrame([{"pair": p, "tissue_distance": d, "asymmetry": a, "seed": 0}
                       for p, d, a in (("F-T", 0.05, 0.1), ("F-M", 0.08, 0.2), ("M-T", 0.09, 0.3))])


def test_source_ranking_on_a_hand_made_sweep():
    rows = (_policy_rows("T", "F", (0.80, 0.82)) + _policy_rows("T", "M", (0.70, 0.72))   # closer F wins: True
            + _policy_rows("M", "F", (0.60, 0.60)) + _policy_rows("M", "T", (0.65, 0.67))  # farther T wins: False
            + _policy_rows("F", "T", (0.9, 0.9))                                           # one source: None
            # ignored: full data, plain fine-tuning and scratch would each flip T's answer
            + _policy_rows("T", "M", (0.99, 0.99), fraction=1.0)
            + _policy_rows("T", "M", (0.99, 0.99), strategy="finetune")
            + _policy_rows("T", "", (0.99, 0.99), strategy="scratch"))
    out = policy.source_ranking(pd.DataFrame(rows), TISSUE).set_index(["target", "source"])
    assert sorted(out.index) == [("F", "T"), ("M", "F"), ("M", "T"), ("T", "F"), ("T", "M")]
    assert out.dice.to_dict() == pytest.approx({("T", "F"): 0.81, ("T", "M"): 0.71, ("M", "F"): 0.60,
                                                ("M", "T"): 0.66, ("F", "T"): 0.90})
    assert out.pair.to_dict() == {("T", "F"): "F-T", ("T", "M"): "M-T", ("M", "F"): "F-M", ("M", "T"): "M-T",
                                  ("F", "T"): "F-T"}
    assert out.loc[("M", "T"), "tissue_distance"] == 0.09 and out.loc[("M", "F"), "asymmetry"] == 0.2
    assert out.dice_rank.to_dict() == {("T", "F"): 1, ("T", "M"): 2, ("M", "F"): 2, ("M", "T"): 1, ("F", "T"): 1}
    assert out.distance_rank.to_dict() == {("T", "F"): 1, ("T", "M"): 2, ("M", "F"): 1, ("M", "T"): 2, ("F", "T"): 1}
    agreement = out.rank_agreement.to_dict()
    assert agreement[("T", "F")] == agreement[("T", "M")] == pytest.approx(1.0)  # the closer source F wins
    assert agreement[("M", "F")] == agreement[("M", "T")] == pytest.approx(-1.0)  # the farther source T wins
    assert np.isnan(agreement[("F", "T")])  # one source: nothing to rank


def test_source_ranking_uses_full_data_when_the_sweep_has_nothing_else():
    rows = _policy_rows("T", "F", (0.6, 0.6), fraction=1.0) + _policy_rows("T", "M", (0.7, 0.7), fraction=1.0)
    out = policy.source_ranking(pd.DataFrame(rows), TISSUE).set_index("source")
    assert out.dice.to_dict() == pytest.approx({"F": 0.6, "M": 0.7})
    assert out.rank_agreement.tolist() == pytest.approx([-1.0, -1.0])  # M wins, but F-T is the shorter distance


def test_matched_steps_stretches_epochs_patience_and_decay():
    demo = get_profile("demo")
    assert policy.matched_steps(demo, 12, 2) == {"max_epochs": 36, "patience": 18, "lr_decay_every": 12}
    assert policy.matched_steps(demo, 12, 12) == {"max_epochs": 6, "patience": 3, "lr_decay_every": 2}
    with pytest.raises(ValueError, match="subset of 0 scans"):
        policy.matched_steps(demo, 12, 0)
    runs = policy.policy_runs(get_profile("tiny"))
    matched = [r for r in runs if r.steps == "matched"]
    # tiny: pairs T|F and F|T, fractions 0.34 and 1.0, three strategies each; matched only at 0.34
    assert len(matched) == 2 * 3 and all(r.fraction < 1 for r in matched)  # none at full data: same as "epochs"
    assert len(runs) == 2 * 2 * 3 + 2 * 3


def test_policy_summary_one_row_per_step_variant_with_mean_over_seeds():
    rows = [{"target": "T", "source": "F", "strategy": "finetune_depth_lr", "fraction": 0.5, "seed": seed,
             "dice": dice, "steps": steps}
            for steps, dices in (("epochs", (0.6, 0.8)), ("matched", (0.5, 0.5))) for seed, dice in enumerate(dices)]
    summary = policy.policy_summary(pd.DataFrame(rows)).set_index("steps")
    assert summary.dice_mean.to_dict() == {"epochs": pytest.approx(0.7), "matched": pytest.approx(0.5)}
    assert (summary["count"] == 2).all()


def test_only_a_policy_folder_of_its_own_drops_its_weights():
    profile = get_profile("tiny")
    assert policy.drops_weights(profile, policy.PolicyRun(T, F, "finetune", 0.34, 0))
    assert policy.drops_weights(profile, policy.PolicyRun(T, F, "finetune_depth_lr", 1.0, 0))
    # the full-data scratch and plain fine-tune runs are the study's own nets (08 relocates them into a
    # setting's folder, where they are that setting's main nets): never dropped
    assert not policy.drops_weights(profile, policy.PolicyRun(T, F, "finetune", 1.0, 0))
    assert not policy.drops_weights(profile, policy.PolicyRun(T, None, "scratch", 1.0, 0))
    assert not policy.drops_weights(profile.replace(policy_keep_weights=True),
                                    policy.PolicyRun(T, F, "finetune", 0.34, 0))
