"""Do the claims survive the training recipe? (08_robustness)

The study's nets (nine per seed for the paper's tissues) and the policy runs C8 needs are retrained under
a small grid of recipes around a profile's own, and every claim and control is recomputed per recipe ("setting"):

- ``recipe``: the profile's recipe itself. With ``Profile.robustness_reuse`` (the ``robustness``
  profile: ``"demo"``) its nets are that profile's, reused when present (or trained where that
  profile keeps them), provided the two recipes are identical.
- ``ft_lr``: the fine-tuned nets at the paper's reference fine-tune learning rate, 1e-3
  (docs/reference.md, "The reference recipe"); scratch nets as in ``recipe`` (shared, not retrained).
- ``converge``: early stopping decides: at most ``robustness_epoch_cap`` epochs, patience
  ``robustness_patience``, for scratch and fine-tuned nets.
- ``wide16``: 16 base filters.

Where nets live: a setting whose scratch nets differ from the reference's is a profile of its own,
named ``<profile>/settings/<setting>`` (so ``outputs/<profile>/settings/<setting>/models/...``). A
setting that changes only fine-tuned nets keeps the reference's scratch nets and moves every net
whose recipe differs (:func:`relocate`) to that same folder, so no setting ever overwrites another's
nets.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from kneelib.compare import distance_tables
from kneelib.compare.spread import interval95
from kneelib.core import paths
from kneelib.core.profiles import PROFILES, Profile, get_profile
from kneelib.data.context import DataContext
from kneelib.names import PAPER_HEADLINE
from kneelib.nets.run import NetSpec, train_config
from kneelib.nets.train import TrainResult
from kneelib.nets.workers import TrainJob, train_jobs
from kneelib.study import analyses, claims, nine_nets, verdicts

REFERENCE = "recipe"      # the setting every other is compared with
SETTING_NAMES = ("recipe", "ft_lr", "converge", "wide16")


@dataclass(frozen=True)
class Setting:
    """One training recipe of the grid: its name, a label for tables and figures, and the profile
    fields it changes (``(field, value)`` pairs)."""

    name: str
    label: str
    overrides: tuple[tuple[str, Any], ...] = ()


def setting(profile: Profile, name: str) -> Setting:
    """The setting ``name`` (one of SETTING_NAMES) around ``profile``'s recipe."""
    p = profile
    if name == "recipe":
        return Setting(name, f"recipe: lr {p.lr:g} / ft {p.finetune_lr:g}, {p.max_epochs} epochs, "
                             f"{p.base_filters} filters")
    if name == "ft_lr":
        paper_lr = PROFILES["paper"].finetune_lr  # the reference recipe's (docs/reference.md), written once
        return Setting(name, f"fine-tune lr {paper_lr:g}", (("finetune_lr", paper_lr),))
    if name == "converge":
        cap, patience = p.robustness_epoch_cap, p.robustness_patience
        extra = (("finetune_max_epochs", cap),) if p.finetune_max_epochs is not None else ()
        return Setting(name, f"to convergence: patience {patience}, at most {cap} epochs",
                       (("max_epochs", cap), ("patience", patience), *extra))
    if name == "wide16":
        return Setting(name, "16 base filters", (("base_filters", 16),))
    raise ValueError(f"unknown robustness setting {name!r}; choose from {list(SETTING_NAMES)}")


def settings(profile: Profile) -> list[Setting]:
    """The grid of ``profile.robustness_settings``; the reference setting "recipe" always comes first."""
    names = list(dict.fromkeys([REFERENCE, *profile.robustness_settings]))
    return [setting(profile, n) for n in names]


def grid_profile(profile: Profile) -> Profile:
    """``profile`` with the grid's seeds (``robustness_seeds``; empty: the profile's own seeds)."""
    return profile.replace(seeds=profile.robustness_seeds) if profile.robustness_seeds else profile


def _same_recipe(a: Profile, b: Profile, specs: list[NetSpec]) -> bool:
    return all(train_config(a, s) == train_config(b, s) for s in specs)


def reference_profile(profile: Profile) -> Profile:
    """The profile the reference setting trains (or reuses) its nets under: ``profile`` renamed to
    ``profile.robustness_reuse`` when that profile has exactly the same recipe for all the study's nets,
    else ``profile`` itself (so a changed recipe never overwrites another profile's nets)."""
    other = profile.robustness_reuse
    if not other or other == profile.name:
        return profile
    renamed = dataclasses.replace(profile, name=other)
    return renamed if _same_recipe(renamed, get_profile(other), nine_nets.all_specs(0, profile.tissues)) else profile


def setting_dir_name(profile: Profile, s: Setting) -> str:
    """``<profile>/settings/<setting>``: the profile-folder name of a setting's own nets."""
    return f"{profile.name}/settings/{s.name}"


def setting_profile(profile: Profile, s: Setting) -> Profile:
    """The profile a setting trains under: ``profile`` with the setting's overrides, named like the
    reference profile when its scratch nets are the reference's, else :func:`setting_dir_name`."""
    ref = reference_profile(profile)
    changed = dataclasses.replace(ref.replace(**dict(s.overrides)), name=ref.name)
    if _same_recipe(changed, ref, nine_nets.scratch_specs(0, ref.tissues)):
        return changed
    return dataclasses.replace(changed, name=setting_dir_name(profile, s))


def relocate(profile: Profile, s: Setting, job: TrainJob) -> TrainJob:
    """``job`` of setting ``s``, moved to the setting's own folder when it would otherwise land in the
    reference profile's folder with a recipe different from the reference's."""
    ref, sp = reference_profile(profile), setting_profile(profile, s)
    if sp.name != ref.name:
        return job
    overrides = dict(job.overrides)
    if train_config(sp, job.spec, **overrides) == train_config(ref, job.spec, **overrides):
        return job
    home = paths.models_dir(ref.name)
    where = job.run_dir if job.run_dir is not None else home / job.spec.folder
    return dataclasses.replace(job, run_dir=paths.models_dir(setting_dir_name(profile, s)) / where.relative_to(home))


States = analyses.States  # seed -> net name -> state_dict


def train_setting(profile: Profile, ctx: DataContext, s: Setting, force: bool = False,
                  progress: bool = True) -> tuple[States, pd.DataFrame]:
    """Train (or reuse) the study's nets of every seed of ``profile`` under setting ``s``.

    Returns the weights (seed -> net -> state) and one row per net: setting, seed, net, kind, epochs,
    best_epoch, best_val_loss, train_seconds (summed over the run's epochs, also for reused nets),
    reused, run_dir.
    """
    sp = setting_profile(profile, s)
    specs = [spec for seed in profile.seeds for spec in nine_nets.all_specs(seed, profile.tissues)]
    jobs = [relocate(profile, s, TrainJob(spec)) for spec in specs]
    results: list[TrainResult] = train_jobs(sp, ctx, jobs, force=force, progress=progress)
    # a finished net whose weights were dropped (an older version let a policy run drop a setting's main
    # net) cannot be compared: train those again
    missing = [i for i, r in enumerate(results) if r.state is None]
    if missing:
        again = train_jobs(sp, ctx, [jobs[i] for i in missing], force=True, progress=progress)
        for i, r in zip(missing, again):
            results[i] = r
    states: States = {}
    rows = []
    for spec, result in zip(specs, results):
        states.setdefault(spec.seed, {})[spec.name] = result.state
        rows.append({"setting": s.name, "seed": spec.seed, "net": spec.name,
                     "kind": "scratch" if spec.base is None else "fine-tuned", "epochs": len(result.history),
                     "best_epoch": result.best_epoch, "best_val_loss": result.best_val_loss,
                     "train_seconds": sum(h["seconds"] for h in result.history), "reused": result.reused,
                     "run_dir": str(result.run_dir)})
    return states, pd.DataFrame(rows)


def claim_inputs(profile: Profile, ctx: DataContext, s: Setting, states: States, nets: pd.DataFrame,
                 force: bool = False, progress: bool = True) -> dict:
    """Every table the claims and controls read (names as ``kneelib.study.claims.claims_table`` takes
    them) for the nets ``states`` of setting ``s`` (``nets``: :func:`train_setting`'s rows, for C10): the
    functions of :mod:`kneelib.study.analyses` that 03-07 call, under the setting's profile, with the
    setting's policy runs kept in its own folder."""
    sp = setting_profile(profile, s)
    dist = analyses.distances(sp, states)
    policy_table = analyses.policy_sweep(sp, ctx, force=force, progress=progress,
                                         relocate=lambda job: relocate(profile, s, job))
    return analyses.claim_tables(analyses.evaluation(sp, ctx, states), dist,
                                 analyses.activations(sp, ctx, states).overlap,
                                 analyses.controls(sp, ctx, states, dist), policy_table, nets)


def setting_margins(s: Setting, tables: dict, seeds: list[int], latent: str) -> pd.DataFrame:
    """Every claim's and control's margin per seed under setting ``s`` (``claims.claim_margins`` plus
    a ``setting`` column)."""
    return claims.claim_margins(tables, seeds, latent).assign(setting=s.name)


def shares_reference_scratch(profile: Profile, s: Setting) -> bool:
    """Whether setting ``s`` keeps the reference setting's scratch nets (``ft_lr`` does): its claims about
    scratch nets only are then the reference's, not a second test."""
    return s.name != REFERENCE and setting_profile(profile, s).name == reference_profile(profile).name


def setting_effects(profile: Profile, s: Setting, tables: dict, seeds: list[int], latent: str) -> pd.DataFrame:
    """Every claim's and control's effect, interval and three-valued verdict under setting ``s``
    (:func:`kneelib.study.claims.claim_effects`, the rule of 04-07), with columns ``setting`` and
    ``reference_scratch`` (:func:`shares_reference_scratch`)."""
    return claims.claim_effects(tables, seeds, latent).assign(
        setting=s.name, reference_scratch=shares_reference_scratch(profile, s))


def headline_ratios(s: Setting, tables: dict) -> pd.DataFrame:
    """The C3 headline per seed of one setting: setting, seed, to_base, to_own_scratch and
    base_over_own = to_base / to_own_scratch (the paper's: 8.17e-3 / 6.45e-2 = 0.13; the headline's own
    ``ratio`` is the inverse)."""
    frame = distance_tables.headline_frame(tables["headline"]["by_seed"])
    return frame.assign(setting=s.name, base_over_own=frame.to_base / frame.to_own_scratch)


ROBUSTNESS_COLUMNS = ("setting", "id", "test", "effect", "ci_low", "ci_high", "interval_method", "n_seeds",
                      "positive_in_seeds", "verdict", "reference_scratch")


def robustness_table(effects: pd.DataFrame) -> pd.DataFrame:
    """Claim x setting table: one row per (setting, id, test) with the effect, its 95% interval, the
    number of seeds and of seeds with a positive margin, the verdict (:mod:`kneelib.study.verdicts`) and
    whether the setting reuses the reference's scratch nets; from the rows of :func:`setting_effects`."""
    missing = [c for c in ROBUSTNESS_COLUMNS if c not in effects]
    if missing:
        raise ValueError(f"robustness_table: columns {missing} missing (has {list(effects.columns)})")
    return effects[list(ROBUSTNESS_COLUMNS)].reset_index(drop=True)


def ratio_summary(ratios: pd.DataFrame, nets: pd.DataFrame) -> pd.DataFrame:
    """Per setting: mean and 95% interval across seeds of the C3 ratio to_base / to_own_scratch
    (``ratios``: :func:`headline_ratios` rows), beside the mean epochs the
    scratch and the fine-tuned nets trained (and where their best weights were)."""
    rows = []
    for name, d in ratios.groupby("setting", sort=False):
        mean, _, lo, hi = interval95(d.base_over_own.tolist())
        n = nets[nets.setting == name]
        by_kind = n.groupby("kind")[["epochs", "best_epoch"]].mean()
        rows.append({"setting": name, "ratio_mean": mean, "ratio_ci95_low": lo, "ratio_ci95_high": hi,
                     "to_base_mean": d.to_base.mean(), "to_own_scratch_mean": d.to_own_scratch.mean(),
                     "paper_ratio": PAPER_HEADLINE["to_base"] / PAPER_HEADLINE["to_own_scratch"],
                     "scratch_epochs": by_kind.epochs.get("scratch", math.nan),
                     "finetune_epochs": by_kind.epochs.get("fine-tuned", math.nan),
                     "scratch_best_epoch": by_kind.best_epoch.get("scratch", math.nan),
                     "finetune_best_epoch": by_kind.best_epoch.get("fine-tuned", math.nan)})
    return pd.DataFrame(rows)


def settings_table(profile: Profile, grid: list[Setting]) -> pd.DataFrame:
    """What each setting trains with: its label, where its nets live, and the recipe fields that vary."""
    fields = ("lr", "finetune_lr", "max_epochs", "finetune_max_epochs", "patience", "base_filters")
    rows = []
    for s in grid:
        sp = setting_profile(profile, s)
        rows.append({"setting": s.name, "label": s.label, "profile_folder": sp.name,
                     **{f: getattr(sp, f) for f in fields}})
    return pd.DataFrame(rows)


SCRATCH_ONLY = ("C1", "C1b")  # claims (and their controls) that read scratch nets only


def robust_across_recipes(robustness: pd.DataFrame, reference: str = REFERENCE) -> dict[str, str]:
    """Claim id -> its verdicts across the settings in words, e.g. "supported in 2 of 3, inconclusive in
    1" (:func:`kneelib.study.verdicts.count_text`), from a claim x setting table (:func:`robustness_table`).
    Only settings with nets of their own count: for the claims on scratch nets only (:data:`SCRATCH_ONLY`)
    a setting that reuses the reference's scratch nets (``reference_scratch``) is the reference again and
    is left out. "n/a" when the reference setting cannot answer the claim."""
    rows = robustness[robustness.test == "claim"] if "test" in robustness else robustness
    out = {}
    for claim_id, d in rows.groupby("id", sort=False):
        if claim_id in SCRATCH_ONLY and "reference_scratch" in d:
            d = d[~d.reference_scratch.astype(bool)]
        by_setting = dict(zip(d.setting, d.verdict.fillna(verdicts.NOT_APPLICABLE)))  # CSV reads "n/a" as NaN
        if by_setting.get(reference, verdicts.NOT_APPLICABLE) == verdicts.NOT_APPLICABLE:
            out[claim_id] = verdicts.NOT_APPLICABLE
            continue
        out[claim_id] = verdicts.count_text(list(by_setting.values()))
    return out
