"""Spread across training seeds: mean, sd and a 95% t-interval for every distance of a table.

Every table 04 and 06 save carries a ``seed`` column with one row per (seed, pair, layer group);
:func:`seed_summary` collapses the seeds into one row per (pair, layer group) so that a reader sees
how much a distance moves when only the random seed changes: a difference between two nets, or
between this run and the paper, means something only where it is larger than that.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats


def interval95(values: Sequence[float]) -> tuple[float, float, float, float]:
    """Mean, sd (ddof=1) and the two-sided 95% Student-t interval of the mean of ``values``.

    With fewer than two values the sd and the interval are nan (there is no spread to report).
    """
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        raise ValueError("interval95 needs at least one value")
    mean = float(x.mean())
    if x.size < 2:
        return mean, math.nan, math.nan, math.nan
    sd = float(x.std(ddof=1))
    half = float(stats.t.ppf(0.975, x.size - 1) * sd / math.sqrt(x.size))
    return mean, sd, mean - half, mean + half


def seed_summary(table: pd.DataFrame, keys: Sequence[str], values: Sequence[str],
                 name: str | None = None) -> pd.DataFrame:
    """One row per ``keys`` combination and value column: n_seeds, mean, sd, ci95_low, ci95_high.

    Args:
        table: long table with a ``seed`` column and one row per (seed, *keys).
        keys: the columns that identify one distance, e.g. ``["pair", "group"]``.
        values: the numeric columns to summarize, e.g. ``["distance"]``.
        name: if given, a first column ``table`` holding it (to stack several summaries).

    Raises ValueError when a column is missing or a (seed, *keys) row appears twice, since a
    duplicate would silently count as an extra seed.
    """
    missing = [c for c in ["seed", *keys, *values] if c not in table]
    if missing:
        raise ValueError(f"seed_summary: columns {missing} not in table (has {list(table.columns)})")
    duplicated = table.duplicated(["seed", *keys])
    if duplicated.any():
        raise ValueError(f"seed_summary: {int(duplicated.sum())} duplicate (seed, {', '.join(keys)}) rows")
    rows = []
    for key, group in table.groupby(list(keys), sort=False):
        key = key if isinstance(key, tuple) else (key,)
        for value in values:
            mean, sd, lo, hi = interval95(group[value].tolist())
            rows.append({**dict(zip(keys, key)), "quantity": value, "n_seeds": len(group), "mean": mean,
                         "sd": sd, "ci95_low": lo, "ci95_high": hi})
    out = pd.DataFrame(rows)
    return out.assign(table=name)[["table", *out.columns]] if name is not None else out
