"""Is a distance between nets a measure of task relatedness? A ladder of fine-tuning tasks whose relatedness
is known, and whether each measure orders it (09_relatedness; issue 17, item 4).

Each rung fine-tunes a scratch net to a target task; the rungs go from most to least related to the base
net's own task:

====  =======================  ===============  =====================================================
rung  name                     base -> target   what it asks of the net
====  =======================  ===============  =====================================================
0     same_task                F(s) -> F        nothing new: how far the fine-tune recipe alone moves a net
1     dilated                  F(s) -> F + 1    the same tissue, its masks dilated in-plane by one voxel
2     mirrored_compartment     TL(s) -> TM      the same tissue, the other tibial compartment
3     other_place              F(s) -> P        cartilage of the same appearance, elsewhere in the knee
4     other_tissue             F(s) -> M        another tissue (meniscus)
====  =======================  ===============  =====================================================

A measure of relatedness should grow down the ladder (a distance) or shrink (a similarity, CKA). Per
seed, the margin is Spearman's rho between the rung index and the measure, sign-flipped for a similarity,
so a positive margin means "the measure orders the ladder"; across seeds :func:`kneelib.study.verdicts.t_effect`
gives the effect, its 95% interval and the verdict (supported: the ladder validated the measure).

Two quantities of training are read the same way, as references: the starting validation loss (of the
fine-tune's start model, on the rung's own validation set: the loss left to remove) and the best epoch.
A measure that orders the ladder only as well as it follows them may be measuring training length or loss
left, not relatedness: the summary gives each measure's rank correlation with both.

This module holds the ladder's specification and its statistics (pure: tables in, tables out); the nets
are trained and measured in :mod:`kneelib.study.ladder`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from kneelib.names import tissue_code
from kneelib.study.verdicts import NOT_APPLICABLE, t_effect

NETWORK = "network"  # the whole-net group, as kneelib.compare.distances names it


@dataclass(frozen=True)
class Rung:
    """One rung of the ladder: a scratch net of ``base`` fine-tuned on ``target``'s masks (tissue names),
    dilated in-plane by one voxel when ``dilate``. ``index``: 0 most related (the same task)."""

    index: int
    name: str
    label: str
    base: str
    target: str
    dilate: bool = False

    @property
    def base_task(self) -> str:
        return tissue_code(self.base)

    @property
    def target_task(self) -> str:
        """The target as a task name: a tissue code, ``"F+1"`` for femoral cartilage dilated by one voxel."""
        return tissue_code(self.target) + ("+1" if self.dilate else "")

    @property
    def net(self) -> str:
        """The fine-tuned net, named as the paper names its nets: ``"F|F(s)"``, ``"F+1|F(s)"``, ``"TM|TL(s)"``."""
        return f"{self.target_task}|{self.base_task}(s)"

    @property
    def pair(self) -> str:
        """``"F(s) vs P|F(s)"``: the two nets every measure of the rung compares."""
        return f"{self.base_task}(s) vs {self.net}"


RUNGS = (
    Rung(0, "same_task", "same task", "femoral_cartilage", "femoral_cartilage"),
    Rung(1, "dilated", "dilated by 1 voxel", "femoral_cartilage", "femoral_cartilage", dilate=True),
    Rung(2, "mirrored_compartment", "mirrored compartment", "lateral_tibial_cartilage", "medial_tibial_cartilage"),
    Rung(3, "other_place", "same appearance, other place", "femoral_cartilage", "patellar_cartilage"),
    Rung(4, "other_tissue", "other tissue", "femoral_cartilage", "meniscus"),
)

# The measures, by the names the claims report uses; +1: a distance (grows with unrelatedness), -1: a similarity.
MEASURES = {"kernel_distance": 1, "aligned_kernel_distance": 1, "relative_displacement": 1, "cka": -1}
# Quantities of training read the same way, as references (expected to grow down the ladder as well).
TRAINING = {"start_val_loss": 1, "best_epoch": 1}
LONG_COLUMNS = ["seed", "rung", "rung_name", "pair", "base_task", "target_task", "measure", "group", "value",
                "start_val_loss", "best_epoch", "epochs"]


def rank_correlation(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rho of ``x`` and ``y`` (ties get mid-ranks); nan with fewer than 3 finite pairs or when
    either is constant (no order to compare)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    return float(stats.spearmanr(x, y).statistic)


def _per_seed(rows: pd.DataFrame, against: str, sign: int) -> dict[int, float]:
    """seed -> sign * Spearman(``against``, value) over the rungs of that seed."""
    return {int(s): sign * rank_correlation(g[against], g.value) for s, g in rows.groupby("seed", sort=True)}


def _finite_mean(values) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else math.nan


def _summary_row(measure: str, group: str, kind: str, sign: int, rows: pd.DataFrame,
                 seeds: list[int]) -> dict:
    margins = _per_seed(rows, "rung", sign)
    effect = t_effect([margins.get(s, math.nan) for s in seeds])
    follows = {c: _finite_mean(_per_seed(rows, c, sign).values()) for c in ("start_val_loss", "best_epoch")}
    others = _per_seed(rows[rows.rung > 0], "rung", sign)  # the different tasks only: rungs 1-4
    among = t_effect([others.get(s, math.nan) for s in seeds])
    return {"measure": measure, "group": group, "kind": kind, "sign": sign,
            **{f"rho_seed{s}": sign * margins.get(s, math.nan) for s in seeds},
            "effect": effect.effect, "ci_low": effect.ci_low, "ci_high": effect.ci_high,
            "n_seeds": effect.n_seeds, "n_positive": effect.n_positive, "verdict": effect.verdict,
            "method": effect.method, "follows_start_loss": follows["start_val_loss"],
            "follows_best_epoch": follows["best_epoch"], "effect_without_same_task": among.effect,
            "ci_low_without_same_task": among.ci_low, "ci_high_without_same_task": among.ci_high,
            "verdict_without_same_task": among.verdict}


def training_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The starting validation loss and best epoch of every (seed, rung), as rows of ``measure`` ``value`` (group
    "network") like the measures', from the long table (:data:`LONG_COLUMNS`)."""
    per_rung = table.drop_duplicates(["seed", "rung"])
    return pd.concat([per_rung.assign(measure=m, group=NETWORK, value=per_rung[m].astype(float)) for m in TRAINING],
                     ignore_index=True)


def summary_table(table: pd.DataFrame) -> pd.DataFrame:
    """Per measure and group: Spearman's rho of rung and measure per seed (``rho_seed<k>``), the margin's
    effect over seeds with its 95% t-interval, ``n_seeds``, ``n_positive``, the verdict, and how closely the
    measure follows the two quantities of training (``follows_start_loss``, ``follows_best_epoch``: the mean
    over seeds of sign * Spearman(quantity, measure) across the rungs; near +1: the measure ranks the rungs
    as the loss left to remove, or the training length, does), and the same effect and verdict over rungs 1-4
    alone (``*_without_same_task``): whether the measure orders the different tasks among themselves, not only
    the same task below all of them.

    Args:
        table: the long table of :func:`kneelib.study.ladder.ladder_table` (:data:`LONG_COLUMNS`); one row
            per seed, rung, measure and group.

    Returns one row per measure and group (``kind`` "measure"), then one per quantity of training (``kind``
    "training", group "network"). ``sign``: +1 for a distance, -1 for a similarity; ``effect`` is the mean
    of sign * rho, so a positive effect always means "orders the ladder".
    """
    seeds = sorted(int(s) for s in table.seed.unique())
    rows = [_summary_row(m, g, "measure", MEASURES[m], part, seeds)
            for (m, g), part in table.groupby(["measure", "group"], sort=False)]
    rows += [_summary_row(m, NETWORK, "training", TRAINING[m], part, seeds)
             for m, part in training_rows(table).groupby("measure", sort=False)]
    return pd.DataFrame(rows)


# A measure that ranks the rungs as the loss left to remove does (mean rank agreement at least this) cannot be
# told apart from it on five rungs.
FOLLOWS_LOSS = 0.9


def validation_outcome(summary: pd.DataFrame) -> dict[str, str]:
    """Measure name -> what the ladder says of it for the whole net (group "network"), as the claims
    report cites it. "supported" only when all three hold: the measure orders the whole ladder, it orders
    the different tasks among themselves (rungs 1-4: the tissue claims compare different tasks, never a
    task with itself), and it does not just rank the rungs as the starting validation loss does
    (``follows_start_loss`` < FOLLOWS_LOSS). Otherwise the verdict that failed, in words, e.g. "only
    separates the same task (rungs 1-4: inconclusive)"; "n/a" for a measure not in ``summary``.

    Keys are exactly ``"kernel_distance"``, ``"aligned_kernel_distance"``, ``"relative_displacement"``, ``"cka"``.
    ``summary`` may be the saved ``known_relatedness_summary.csv`` read with ``pandas.read_csv`` (a verdict
    "n/a" read as nan counts as n/a).
    """
    network = summary[summary.group == NETWORK].set_index("measure")
    out = {}
    for m in MEASURES:
        if m not in network.index or not isinstance(network.loc[m, "verdict"], str):
            out[m] = NOT_APPLICABLE
            continue
        row = network.loc[m]
        among = row.verdict_without_same_task if isinstance(row.verdict_without_same_task, str) else NOT_APPLICABLE
        if row.verdict != "supported":
            out[m] = row.verdict
        elif among != "supported":
            out[m] = f"only separates the same task (rungs 1-4: {among})"
        elif row.follows_start_loss >= FOLLOWS_LOSS:
            out[m] = f"orders the ladder as the loss left to remove does (rank agreement {row.follows_start_loss:.2f})"
        else:
            out[m] = "supported"
    return out
