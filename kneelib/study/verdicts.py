"""One rule for every verdict of the suite: an effect, its 95% interval, and a three-valued reading.

A claim, a control, a recipe setting or a rung of the known-relatedness ladder is reduced to a
*margin* per seed (positive when the statement holds). Its verdict is read from the 95% interval of
the mean margin, never from one seed:

- **supported**: the whole interval lies above 0;
- **contradicted**: the whole interval lies below 0;
- **inconclusive**: the interval contains 0, or there is no interval (one seed and nothing to
  resample): the evidence cannot decide;
- **n/a**: the statement cannot be evaluated on these tables (every margin is nan).

Margins computed from nets' weights vary only with the seed: :func:`t_effect` takes the Student-t
interval over seeds (with 3 seeds its critical value is 4.30, so only a consistent effect is
supported). Margins on test Dice also vary with the test subjects the run happened to be scored on:
:func:`bootstrap_effect` resamples subjects within each seed and the seeds themselves, and reports the
wider of that interval and the seeds' t-interval.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from kneelib.compare.spread import interval95

SUPPORTED, CONTRADICTED, INCONCLUSIVE, NOT_APPLICABLE = "supported", "contradicted", "inconclusive", "n/a"
VERDICTS = (SUPPORTED, CONTRADICTED, INCONCLUSIVE, NOT_APPLICABLE)
BOOTSTRAP_REPS = 2000
SUBJECT_DRAWS = 400  # subject resamples per seed that the seed-level replicates draw from


def verdict(ci_low: float, ci_high: float, effect: float = 0.0) -> str:
    """supported (interval above 0), contradicted (below 0), inconclusive (contains 0, or no interval
    while ``effect`` is a number), n/a (``effect`` nan: nothing to judge)."""
    if math.isnan(effect):
        return NOT_APPLICABLE
    if math.isnan(ci_low) or math.isnan(ci_high):
        return INCONCLUSIVE
    if ci_low > 0:
        return SUPPORTED
    if ci_high < 0:
        return CONTRADICTED
    return INCONCLUSIVE


@dataclass(frozen=True)
class Effect:
    """A margin summarized over seeds: its mean (``effect``), 95% interval, how many seeds it was
    computed on and in how many it was positive, the verdict, and how the interval was obtained."""

    effect: float
    ci_low: float
    ci_high: float
    n_seeds: int
    n_positive: int
    verdict: str
    method: str  # "t over seeds", "bootstrap over seeds and subjects", "none"

    def as_dict(self, prefix: str = "") -> dict:
        return {f"{prefix}{k}": v for k, v in asdict(self).items()}

    @property
    def interval(self) -> str:
        """``[lo, hi]`` for tables, "no interval" without one."""
        if math.isnan(self.ci_low):
            return "no interval"
        return f"[{self.ci_low:.3g}, {self.ci_high:.3g}]"


def not_applicable(n_seeds: int = 0) -> Effect:
    return Effect(math.nan, math.nan, math.nan, n_seeds, 0, NOT_APPLICABLE, "none")


def t_effect(margins: Sequence[float]) -> Effect:
    """The mean of the per-seed ``margins`` with its Student-t 95% interval (nan margins, e.g. a seed
    that cannot answer, are left out; none left: n/a)."""
    values = [float(m) for m in margins if not math.isnan(float(m))]
    if not values:
        return not_applicable(len(margins))
    mean, _, lo, hi = interval95(values)
    return Effect(mean, lo, hi, len(values), sum(v > 0 for v in values), verdict(lo, hi, mean),
                  "t over seeds" if len(values) > 1 else "none")


def bootstrap_effect(tables: dict[int, pd.DataFrame], statistic: Callable[[int, pd.DataFrame], float],
                     unit: str = "subject", reps: int = BOOTSTRAP_REPS, seed: int = 0,
                     pool: int = SUBJECT_DRAWS) -> Effect:
    """The mean over seeds of ``statistic`` (a margin) with a 95% interval over seeds and test subjects.

    Args:
        tables: seed -> that seed's rows (e.g. per-scan test Dice of every net), with a ``unit`` column
            (without one, a seed's rows are one unit: only the seeds are resampled).
        statistic: (seed, rows of that seed) -> its margin (nan: not answerable).
        unit: the column resampled within a seed; all rows of a drawn subject come together, so the
            comparison stays paired (every net is scored on the same drawn subjects).
        reps: bootstrap replicates.
        seed: the resampling seed (fixed: the same tables give the same interval).
        pool: subject resamples drawn per seed (each evaluated once; identical draws share the value).

    Each replicate draws the seeds with replacement and, for each drawn seed, one of its subject
    resamples (subjects drawn with replacement), and averages the statistic. The interval is the
    2.5-97.5 percentile range of the replicates, widened to contain the seeds' t-interval when there are
    two or more seeds (few seeds make a percentile interval too narrow). With one seed and one subject
    there is nothing to resample: no interval, verdict inconclusive.
    """
    margins = {s: float(statistic(s, t)) for s, t in tables.items()}
    answerable = {s: m for s, m in margins.items() if not math.isnan(m)}
    if not answerable:
        return not_applicable(len(tables))
    seeds = list(answerable)
    effect = float(np.mean(list(answerable.values())))
    groups = {s: ([g for _, g in tables[s].groupby(unit, sort=True)] if unit in tables[s] else [tables[s]])
              for s in seeds}
    if len(seeds) < 2 and all(len(g) < 2 for g in groups.values()):
        return Effect(effect, math.nan, math.nan, 1, int(effect > 0), verdict(math.nan, math.nan, effect), "none")
    rng = np.random.default_rng(seed)
    draws = np.empty((len(seeds), pool))
    for i, s in enumerate(seeds):
        draws[i] = _subject_draws(s, groups[s], statistic, rng, pool)
    picked = draws[rng.integers(0, len(seeds), (reps, len(seeds)))[..., None],
                   rng.integers(0, pool, (reps, len(seeds)))[..., None]][..., 0]
    with np.errstate(invalid="ignore"):
        values = np.nanmean(np.where(np.isnan(picked).all(1, keepdims=True), 0.0, picked), axis=1)
    lo, hi = float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))
    if len(seeds) > 1:
        _, _, t_lo, t_hi = interval95(list(answerable.values()))
        lo, hi = min(lo, t_lo), max(hi, t_hi)
    return Effect(effect, lo, hi, len(seeds), sum(m > 0 for m in answerable.values()), verdict(lo, hi, effect),
                  "bootstrap over seeds and subjects")


def _subject_draws(seed: int, groups: list[pd.DataFrame], statistic: Callable[[int, pd.DataFrame], float],
                   rng: np.random.Generator, pool: int) -> np.ndarray:
    """``pool`` values of ``statistic`` on resamples (with replacement) of one seed's subject groups; the
    statistic runs once per distinct draw (with 2 subjects there are only 3)."""
    if len(groups) < 2:
        return np.full(pool, float(statistic(seed, groups[0])))
    cache: dict[tuple[int, ...], float] = {}
    out = np.empty(pool)
    for k in range(pool):
        draw = tuple(sorted(rng.choice(len(groups), size=len(groups), replace=True).tolist()))
        if draw not in cache:
            cache[draw] = float(statistic(seed, pd.concat([groups[j] for j in draw], ignore_index=True)))
        out[k] = cache[draw]
    return out


def count_text(verdicts: Sequence[str]) -> str:
    """``["supported", "supported", "inconclusive"]`` -> "supported in 2 of 3, inconclusive in 1"
    (n/a, and anything that is not a verdict such as the NaN pandas reads "n/a" back as, left out of
    the count; nothing left: "n/a")."""
    answered = [v for v in verdicts if v in VERDICTS and v != NOT_APPLICABLE]
    if not answered:
        return NOT_APPLICABLE
    counts = {v: answered.count(v) for v in VERDICTS if v in answered}
    first, *rest = counts.items()
    return ", ".join([f"{first[0]} in {first[1]} of {len(answered)}", *(f"{v} in {n}" for v, n in rest)])
