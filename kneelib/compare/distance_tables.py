"""Distance tables of the study's networks over all seeds: what 04_distances computes and saves."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import torch

from kneelib.compare import distances
from kneelib.compare.spread import seed_summary
from kneelib.core.profiles import Profile

States = dict[str, dict[str, torch.Tensor]]  # net name -> state_dict
SeedStates = dict[int, States]  # seed -> net name -> state_dict


def _with_seed(frames: dict[int, pd.DataFrame]) -> pd.DataFrame:
    return pd.concat([f.assign(seed=seed) for seed, f in frames.items()], ignore_index=True)


def distance_tables(states: dict[int, States], reduction: str = "kernel", scale: str = "absolute",
                    tissues: Sequence[str] | None = None) -> dict:
    """Fig. 3a, Fig. 3b and Fig. 4 tables (a ``seed`` column each) and the C3 headline per seed.

    Args:
        states: seed -> net name -> state_dict.
        reduction, scale: as in ``kernel_distances``.
        tissues: the study's tissues in order (``Profile.tissues``); None: those with a scratch net
            (``kneelib.compare.distances.study_codes``).
    """
    kw = {"reduction": reduction, "scale": scale, "tissues": tissues}
    return {
        "scratch_pairs": _with_seed({s: distances.scratch_pairs_table(st, **kw) for s, st in states.items()}),
        "finetune": _with_seed({s: distances.finetune_table(st, **kw) for s, st in states.items()}),
        "tissue": _with_seed({s: distances.tissue_distances(st, **kw) for s, st in states.items()}),
        "headline": {str(s): distances.headline(st, **kw) for s, st in states.items()},
    }


def headline_frame(headline: dict[str, dict]) -> pd.DataFrame:
    """The C3 headline per seed as a table: seed, to_base, to_own_scratch, ratio."""
    return pd.DataFrame([{"seed": int(s), **{k: h[k] for k in ("to_base", "to_own_scratch", "ratio")}}
                         for s, h in headline.items()])


def distance_spread(tables: dict) -> pd.DataFrame:
    """Mean, sd and 95% interval across seeds of every distance 04 reports, stacked in one table.

    ``tables`` is the output of :func:`distance_tables`; the ``table`` column says where each row comes
    from (scratch_pairs, finetune: per pair and layer group; tissue: per tissue pair, both directions,
    their mean and the asymmetry; headline: the C3 network-level distances).
    """
    tissue_values = ["d_ab", "d_ba", "tissue_distance", "asymmetry"]
    parts = [seed_summary(tables["scratch_pairs"], ["pair", "group"], ["distance"], "scratch_pairs"),
             seed_summary(tables["finetune"], ["pair", "group"], ["distance"], "finetune"),
             seed_summary(tables["tissue"], ["pair"], tissue_values, "tissue").assign(group="network"),
             seed_summary(headline_frame(tables["headline"]).assign(pair="fine-tuned vs base / own scratch"),
                          ["pair"], ["to_base", "to_own_scratch", "ratio"], "headline").assign(group="network")]
    return pd.concat(parts, ignore_index=True)


def null_table(profile: Profile, reference_state: dict[str, torch.Tensor], n_pairs: int = 3) -> pd.DataFrame:
    """Per-group distance between untrained nets initialized as the profile's (``Profile.init``): expected
    (``he_null_distances``) and the empirical mean over ``n_pairs`` pairs of fresh inits (of ``2 * n_pairs`` seeds)."""
    expected = distances.he_null_distances(reference_state, init=profile.init)
    seeds = range(1000, 1000 + 2 * n_pairs)  # seeds no training run uses
    empirical = distances.empirical_null(profile.depth, profile.base_filters, seeds, init=profile.init)
    return pd.DataFrame([{"group": g, "expected": expected[g], "empirical": empirical.get(g)} for g in expected])


