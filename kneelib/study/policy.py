"""The training policy the paper proposes but never tests (claim C8, 07_policy).

With a fraction of the training subjects, segment tissue B by (1) training from scratch,
(2) fine-tuning the scratch net of another tissue A, or (3) fine-tuning it with depth-dependent
learning rates (level i at lr * decay ** (i - 1): deeper levels change slower). Every run is an
ordinary network (``kneelib.nets.run.NetSpec``) with a subset of subjects, so it is cached and resumable.

With fewer subjects an epoch has fewer slices, so at the same epochs a run also takes fewer optimizer
steps. ``steps="matched"`` runs (``Profile.policy_steps``) undo that: at a fraction < 1 the epoch cap,
the patience and the lr-decay interval are all stretched by the ratio of full to subset training scans
(:func:`matched_steps`), so a run may take as many optimizer steps as a full-data run and its lr decays
at the same step counts.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from kneelib.core import paths
from kneelib.core.profiles import Profile
from kneelib.data.context import DataContext, slice_dataset, subset_subjects
from kneelib.names import CODE_TISSUES, TISSUE_CODES
from kneelib.nets.evaluate import evaluate_run
from kneelib.nets.run import NetSpec
from kneelib.nets.workers import TrainJob, train_jobs

STRATEGIES = ("scratch", "finetune", "finetune_depth_lr")


@dataclass(frozen=True)
class PolicyRun:
    target: str            # tissue to segment
    source: str | None     # tissue of the scratch net fine-tuned from (None for "scratch")
    strategy: str          # one of STRATEGIES
    fraction: float        # fraction of training subjects
    seed: int
    steps: str = "epochs"  # "epochs": the profile's epochs; "matched": as many optimizer steps as with all data

    @property
    def spec(self) -> NetSpec:
        return NetSpec(self.target, self.source, self.seed)

    @property
    def label(self) -> str:
        return {"scratch": "scratch", "finetune": "fine-tune", "finetune_depth_lr": "fine-tune, depth lr"}[
            self.strategy]


def parse_pairs(pairs: tuple[str, ...]) -> list[tuple[str, str]]:
    """``("T|F", "TL|TM")`` -> [(tibial_cartilage, femoral_cartilage), (lateral_tibial_cartilage,
    medial_tibial_cartilage)]: (target, source) tissue names."""
    out = []
    for p in pairs:
        target, sep, source = p.partition("|")
        if not sep or target not in CODE_TISSUES or source not in CODE_TISSUES or target == source:
            raise ValueError(f"policy pair {p!r} must look like 'T|F' or 'TL|TM' with two different codes of "
                             f"{list(CODE_TISSUES)}")
        out.append((CODE_TISSUES[target], CODE_TISSUES[source]))
    return out


def policy_runs(profile: Profile) -> list[PolicyRun]:
    """Every run of the sweep: for each (target, source) pair, fraction, seed and step variant of
    ``profile.policy_steps``, three strategies (the scratch run is shared by pairs with the same target).
    The "matched" variant exists only at fractions < 1: with all the data it is the "epochs" run."""
    runs: dict[PolicyRun, None] = {}
    for steps in profile.policy_steps:
        for target, source in parse_pairs(profile.policy_pairs):
            for fraction in profile.policy_fractions:
                if steps == "matched" and fraction == 1.0:
                    continue
                for seed in profile.seeds:
                    runs[PolicyRun(target, None, "scratch", fraction, seed, steps)] = None
                    for strategy in STRATEGIES[1:]:
                        runs[PolicyRun(target, source, strategy, fraction, seed, steps)] = None
    return list(runs)


def drops_weights(profile: Profile, run: PolicyRun) -> bool:
    """Whether a run's best weights are dropped once it is evaluated: only a run with a policy folder of its
    own (not one of the study's main nets, which the full-data scratch and plain fine-tune runs are), unless
    ``Profile.policy_keep_weights``. Judged on the run, not on where a ``relocate`` put its job: 08 moves a
    setting's main nets too, and their weights must stay."""
    return _run_dir(profile, run) is not None and not profile.policy_keep_weights


def _run_dir(profile: Profile, run: PolicyRun):
    if run.fraction == 1.0 and run.strategy != "finetune_depth_lr":
        return None  # the study's main networks of 02/03: reused as they are
    tag = f"{run.strategy}_f{run.fraction:g}" + ("_matched" if run.steps == "matched" else "")
    return paths.models_dir(profile.name) / "policy" / f"{run.spec.folder}__{tag}"


def matched_steps(profile: Profile, n_train_scans: int, n_subset_scans: int) -> dict[str, int]:
    """TrainConfig overrides that give a run on ``n_subset_scans`` of the ``n_train_scans`` training scans
    about the optimizer steps of a full-data run: epoch cap, patience and lr-decay interval, each times
    k = round(n_train_scans / n_subset_scans) (every scan has the same number of slices in the IWOAI
    data and the phantoms). Example: 1 of 6 subjects, 6 epochs -> k = 6, 36 epochs, lr decay every 12."""
    if not 1 <= n_subset_scans <= n_train_scans:
        raise ValueError(f"subset of {n_subset_scans} scans must be between 1 and the {n_train_scans} training scans")
    k = max(1, round(n_train_scans / n_subset_scans))
    return {"max_epochs": profile.max_epochs * k, "patience": profile.patience * k,
            "lr_decay_every": profile.lr_decay_every * k}


def policy_job(profile: Profile, ctx: DataContext, run: PolicyRun) -> TrainJob:
    """The training job of one run: its subset of training scans, for depth-lr runs the decay, and for
    matched-steps runs the stretched epochs (:func:`matched_steps`)."""
    if run.steps not in ("epochs", "matched"):
        raise ValueError(f"policy run steps={run.steps!r}: use epochs or matched")
    train = ctx.split("train")
    subset = subset_subjects(train, run.fraction, seed=run.seed)
    scans = None if run.fraction == 1.0 else tuple(r.scan_id for r in subset)
    decay = profile.policy_depth_decay if run.strategy == "finetune_depth_lr" else 1.0
    stretch = matched_steps(profile, len(train), len(subset)) if run.steps == "matched" else {}
    return TrainJob(run.spec, _run_dir(profile, run), scans,
                    (("depth_lr_decay", decay), ("train_fraction", run.fraction), *sorted(stretch.items())))


def run_policy(profile: Profile, ctx: DataContext, runs: list[PolicyRun], force: bool = False,
               progress: bool = True, relocate: Callable[[TrainJob], TrainJob] | None = None) -> pd.DataFrame:
    """Train (or reuse) each run and evaluate it on the test split; one row per run, its test Dice as
    the mean over scans (``dice``) and per test subject (``dice_by_subject``, JSON).
    ``relocate`` may move a job's folder (08_robustness keeps each recipe's runs apart)."""
    jobs = [policy_job(profile, ctx, run) for run in runs]
    jobs = [relocate(job) for job in jobs] if relocate is not None else jobs
    results = train_jobs(profile, ctx, jobs, force=force, progress=progress)
    rows = []
    for run, job, result in zip(runs, jobs, results):
        per_scan = evaluate_run(profile, ctx, run.spec, result, drop_weights=drops_weights(profile, run))
        n_slices = len(slice_dataset(ctx, "train", run.target, profile.slice_size, job.train_scans))
        if profile.steps_per_epoch is not None:
            n_slices = min(n_slices, profile.steps_per_epoch * profile.batch_size)
        n_subjects = len({r.subject for r in ctx.split("train") if job.train_scans is None or
                          r.scan_id in job.train_scans})
        rows.append({"target": TISSUE_CODES[run.target],
                     "source": TISSUE_CODES[run.source] if run.source else "", "strategy": run.strategy,
                     "label": run.label, "fraction": run.fraction, "steps": run.steps,
                     "n_subjects": n_subjects, "seed": run.seed, "dice": per_scan.dice.mean(),
                     "dice_by_subject": _dice_by_subject(per_scan),
                     "assd_mm": per_scan.assd_mm.mean(),
                     "epochs": len(result.history), "best_epoch": result.best_epoch,
                     "optimizer_steps": len(result.history) * math.ceil(n_slices / profile.batch_size)})
    return pd.DataFrame(rows)


def _dice_by_subject(per_scan: pd.DataFrame) -> str:
    """Mean test Dice per test subject, as JSON (``{"test_000": 0.81, ...}``), so that the claims can
    resample subjects (:func:`kneelib.study.claims.policy_by_subject`)."""
    means = per_scan.groupby("subject", sort=True).dice.mean()
    return json.dumps({str(k): float(v) for k, v in means.items()})


def by_steps(table: pd.DataFrame, steps: str = "epochs") -> pd.DataFrame:
    """The rows of one step variant, with the full-data runs (shared by both variants) kept for
    "matched"; a table from before the variants existed counts as all "epochs"."""
    if "steps" not in table:
        return table if steps == "epochs" else table.iloc[0:0]
    return table[(table.steps == steps) | ((table.fraction == 1.0) & (table.steps == "epochs"))]


def policy_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and sd of test Dice over seeds per step variant, target, source, strategy and fraction."""
    table = table if "steps" in table else table.assign(steps="epochs")
    return (table.groupby(["steps", "target", "source", "strategy", "fraction"], as_index=False)
            .dice.agg(["mean", "std", "count"]).rename(columns={"mean": "dice_mean", "std": "dice_sd"}))


def source_ranking(table: pd.DataFrame, tissue: pd.DataFrame) -> pd.DataFrame:
    """For each target, all its source tissues: mean test Dice of depth-lr fine-tuning at limited data
    (fractions < 1, or all when the sweep has only 1.0) beside the tissue distance and asymmetry of the pair,
    each source's rank by Dice (1: highest) and by distance (1: shortest), and per target the Spearman
    correlation of the two ranks (``rank_agreement``: 1 when the closer a source, the better; nan with one
    source)."""
    table = by_steps(table, "epochs")
    limited = table[table.fraction < 1] if (table.fraction < 1).any() else table
    tuned = limited[limited.strategy == "finetune_depth_lr"]
    dice = tuned.groupby(["target", "source"], as_index=False).dice.mean()
    t = tissue.groupby("pair", as_index=False)[["tissue_distance", "asymmetry"]].mean()
    pair_of = {frozenset(p.split("-")): p for p in t.pair}
    dice["pair"] = [pair_of.get(frozenset((a, b)), "") for a, b in zip(dice.target, dice.source)]
    out = dice.merge(t, on="pair", how="left")
    out["dice_rank"] = out.groupby("target").dice.rank(ascending=False, method="min")
    out["distance_rank"] = out.groupby("target").tissue_distance.rank(method="min")
    out["rank_agreement"] = math.nan
    for _, d in out.groupby("target"):
        if len(d) >= 2 and d.tissue_distance.notna().all():
            out.loc[d.index, "rank_agreement"] = float(d.dice_rank.corr(d.distance_rank, method="spearman"))
    return out
