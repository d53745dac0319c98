"""The training policy the paper proposes but never tests (claim C8, 07_policy).

With a fraction of the training subjects, segment tissue B by (1) training from scratch,
(2) fine-tuning the scratch net of another tissue A, or (3) fine-tuning it with depth-dependent
learning rates (level i at lr * decay ** (i - 1): deeper levels change slower). Every run is an
ordinary network (``kneelib.nets.run.NetSpec``) with a subset of subjects, so it is cached and resumable.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from kneelib.core import paths
from kneelib.core.profiles import Profile
from kneelib.data.context import DataContext, subset_subjects
from kneelib.names import CODE_TISSUES, TISSUE_CODES
from kneelib.nets.evaluate import evaluate_nets
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

    @property
    def spec(self) -> NetSpec:
        return NetSpec(self.target, self.source, self.seed)

    @property
    def label(self) -> str:
        return {"scratch": "scratch", "finetune": "fine-tune", "finetune_depth_lr": "fine-tune, depth lr"}[
            self.strategy]


def parse_pairs(pairs: tuple[str, ...]) -> list[tuple[str, str]]:
    """``("T|F", "M|F")`` -> [(tibial_cartilage, femoral_cartilage), ...]: (target, source)."""
    out = []
    for p in pairs:
        target, sep, source = p.partition("|")
        if not sep or target not in CODE_TISSUES or source not in CODE_TISSUES or target == source:
            raise ValueError(f"policy pair {p!r} must look like 'T|F' with two different codes of {list(CODE_TISSUES)}")
        out.append((CODE_TISSUES[target], CODE_TISSUES[source]))
    return out


def policy_runs(profile: Profile) -> list[PolicyRun]:
    """Every run of the sweep: for each (target, source) pair, fraction and seed, three strategies
    (the scratch run is shared by pairs with the same target)."""
    runs: dict[PolicyRun, None] = {}
    for target, source in parse_pairs(profile.policy_pairs):
        for fraction in profile.policy_fractions:
            for seed in profile.seeds:
                runs[PolicyRun(target, None, "scratch", fraction, seed)] = None
                for strategy in STRATEGIES[1:]:
                    runs[PolicyRun(target, source, strategy, fraction, seed)] = None
    return list(runs)


def _run_dir(profile: Profile, run: PolicyRun):
    if run.fraction == 1.0 and run.strategy != "finetune_depth_lr":
        return None  # the main nine networks of 02/03: reused as they are
    tag = f"{run.strategy}_f{run.fraction:g}"
    return paths.models_dir(profile.name) / "policy" / f"{run.spec.folder}__{tag}"


def policy_job(profile: Profile, ctx: DataContext, run: PolicyRun) -> TrainJob:
    """The training job of one run: its subset of training scans and, for depth-lr runs, the decay."""
    subset = subset_subjects(ctx.split("train"), run.fraction, seed=run.seed)
    scans = None if run.fraction == 1.0 else tuple(r.scan_id for r in subset)
    decay = profile.policy_depth_decay if run.strategy == "finetune_depth_lr" else 1.0
    return TrainJob(run.spec, _run_dir(profile, run), scans,
                    (("depth_lr_decay", decay), ("train_fraction", run.fraction)))


def run_policy(profile: Profile, ctx: DataContext, runs: list[PolicyRun], force: bool = False,
               progress: bool = True) -> pd.DataFrame:
    """Train (or reuse) each run and evaluate it on the test split; one row per run."""
    jobs = [policy_job(profile, ctx, run) for run in runs]
    results = train_jobs(profile, ctx, jobs, force=force, progress=progress)
    rows = []
    for run, job, result in zip(runs, jobs, results):
        per_scan = evaluate_nets(profile, ctx, {run.spec: result.state})
        n_subjects = len({r.subject for r in ctx.split("train") if job.train_scans is None or
                          r.scan_id in job.train_scans})
        rows.append({"target": TISSUE_CODES[run.target],
                     "source": TISSUE_CODES[run.source] if run.source else "", "strategy": run.strategy,
                     "label": run.label, "fraction": run.fraction, "n_subjects": n_subjects,
                     "seed": run.seed, "dice": per_scan.dice.mean(), "assd_mm": per_scan.assd_mm.mean(),
                     "epochs": len(result.history), "best_epoch": result.best_epoch})
    return pd.DataFrame(rows)


def policy_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and sd of test Dice over seeds per target, source, strategy and fraction."""
    return (table.groupby(["target", "source", "strategy", "fraction"], as_index=False)
            .dice.agg(["mean", "std", "count"]).rename(columns={"mean": "dice_mean", "std": "dice_sd"}))


def source_ranking(table: pd.DataFrame, tissue: pd.DataFrame) -> pd.DataFrame:
    """For each target, its two source tissues: mean test Dice of depth-lr fine-tuning at limited data
    (fractions < 1, or all when the sweep has only 1.0) beside the tissue distance and asymmetry of the pair.
    ``better_source_is_closer`` says whether the higher-Dice source has the shorter tissue distance."""
    limited = table[table.fraction < 1] if (table.fraction < 1).any() else table
    tuned = limited[limited.strategy == "finetune_depth_lr"]
    dice = tuned.groupby(["target", "source"], as_index=False).dice.mean()
    t = tissue.groupby("pair", as_index=False)[["tissue_distance", "asymmetry"]].mean()
    pair_of = {frozenset(p.split("-")): p for p in t.pair}
    dice["pair"] = [pair_of.get(frozenset((a, b)), "") for a, b in zip(dice.target, dice.source)]
    out = dice.merge(t, on="pair", how="left")
    out["better_source_is_closer"] = None
    for _, d in out.groupby("target"):
        if len(d) == 2:
            best, closest = d.dice.idxmax(), d.tissue_distance.idxmin()
            out.loc[d.index, "better_source_is_closer"] = bool(best == closest)
    return out
