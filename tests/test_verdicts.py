"""The one verdict rule: three values from an interval, the t-interval over seeds, the subject bootstrap."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from kneelib.study import verdicts


def test_verdict_reads_the_interval():
    assert verdicts.verdict(0.1, 0.5, 0.3) == "supported"
    assert verdicts.verdict(-0.5, -0.1, -0.3) == "contradicted"
    assert verdicts.verdict(-0.1, 0.5, 0.2) == "inconclusive"
    assert verdicts.verdict(math.nan, math.nan, 0.2) == "inconclusive"  # no interval: cannot decide
    assert verdicts.verdict(math.nan, math.nan, math.nan) == "n/a"


def test_t_effect_over_seeds():
    e = verdicts.t_effect([0.1, 0.2, 0.3])
    half = 4.302653 * 0.1 / math.sqrt(3)  # t(0.975, 2) * sd / sqrt(n)
    assert e.effect == pytest.approx(0.2) and e.ci_low == pytest.approx(0.2 - half, rel=1e-5)
    assert e.verdict == "inconclusive" and e.n_positive == 3 and e.n_seeds == 3  # 0.2 - 0.248 < 0
    assert verdicts.t_effect([0.30, 0.31, 0.29]).verdict == "supported"
    e = verdicts.t_effect([0.2, math.nan, 0.3])  # a seed that cannot answer is left out
    assert e.n_seeds == 2 and e.effect == pytest.approx(0.25)
    assert verdicts.t_effect([math.nan]).verdict == "n/a"


def _rows(values_by_subject: dict[str, float]) -> pd.DataFrame:
    return pd.DataFrame([{"subject": s, "x": v} for s, v in values_by_subject.items()])


def test_bootstrap_resamples_subjects_within_a_seed():
    tables = {0: _rows({"a": 0.1, "b": 0.3})}
    e = verdicts.bootstrap_effect(tables, lambda seed, rows: rows.x.mean())
    # two subjects: the draws are {a, a}, {a, b}, {b, b}: means 0.1, 0.2, 0.3
    assert e.effect == pytest.approx(0.2) and e.ci_low == pytest.approx(0.1) and e.ci_high == pytest.approx(0.3)
    assert e.verdict == "supported" and e.method.startswith("bootstrap")
    tables = {0: _rows({"a": -0.1, "b": 0.3})}
    assert verdicts.bootstrap_effect(tables, lambda seed, rows: rows.x.mean()).verdict == "inconclusive"
    # one seed, one subject: nothing to resample
    e = verdicts.bootstrap_effect({0: _rows({"a": 0.5})}, lambda seed, rows: rows.x.mean())
    assert np.isnan(e.ci_low) and e.verdict == "inconclusive"


def test_bootstrap_interval_contains_the_seeds_t_interval():
    tables = {s: _rows({"a": v, "b": v}) for s, v in enumerate((0.1, 0.2, 0.6))}
    e = verdicts.bootstrap_effect(tables, lambda seed, rows: rows.x.mean())
    t = verdicts.t_effect([0.1, 0.2, 0.6])
    assert e.ci_low <= t.ci_low and e.ci_high >= t.ci_high
    # the statistic sees the seed it is evaluated for
    seen = []
    verdicts.bootstrap_effect(tables, lambda seed, rows: seen.append(seed) or 0.0, reps=10, pool=5)
    assert set(seen) == {0, 1, 2}


def test_count_text():
    assert verdicts.count_text(["supported", "supported", "inconclusive"]) == "supported in 2 of 3, inconclusive in 1"
    assert verdicts.count_text(["contradicted", "n/a"]) == "contradicted in 1 of 1"
    assert verdicts.count_text(["n/a"]) == "n/a"
    assert verdicts.count_text([float("nan"), "supported"]) == "supported in 1 of 1"  # "n/a" read back from a CSV
