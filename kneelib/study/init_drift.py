"""Init and drift per layer group for the study's nets (06_controls), and C1 and C2 read through them.

Does the distance between two scratch nets come from where they started or from where training took
them? Every net's start is regenerated from its seed (:func:`kneelib.study.null_world.init_states`); the
weight maths is :mod:`kneelib.compare.init_drift` (Frobenius norms over a group's convolution weights,
and the split of a squared distance into init, drift and cross terms, exact on squares only; the
suite's kernel distance is a mean of per-kernel norms and has no such split).
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from kneelib.compare.distance_tables import SeedStates as States
from kneelib.compare.distances import NETWORK
from kneelib.compare.init_drift import d2_decomposition, group_drift
from kneelib.core.profiles import Profile
from kneelib.names import base_of, scratch_nets
from kneelib.study.null_world import init_states

DRIFT_COLUMNS = ["seed", "net", "kind", "group", "init_norm", "drift", "norm_growth", "rel_displacement"]


def drift_table(profile: Profile, states: States, inits: States | None = None) -> pd.DataFrame:
    """How far every net moved from where it started, per layer group (head included) and ``"network"``.

    w0 is a scratch net's He init, regenerated from its seed, and a fine-tuned net's base, the trained
    A(s) it started from. Over the group's convolution weights (Frobenius norms, weight units):
    init_norm ||w0||, drift ||w - w0||, norm_growth ||w|| / ||w0||, and for fine-tuned nets
    rel_displacement ||w - w_base|| / ||w_base|| (= drift / init_norm there; nan for scratch nets).

    Args:
        profile: the study's profile (the nets' recipes, for their inits).
        states: seed -> net name -> trained state_dict.
        inits: :func:`kneelib.study.null_world.init_states` of ``states``, when already computed.

    Returns:
        columns seed, net, kind ("scratch" / "fine-tuned"), group, init_norm, drift, norm_growth,
        rel_displacement; one row per seed, net and group.
    """
    inits = init_states(profile, states) if inits is None else inits
    frames = []
    for seed, nets in states.items():
        for name, state in nets.items():
            tuned = base_of(name) is not None
            d = group_drift(state, inits[seed][name])
            d = d.assign(seed=seed, net=name, kind="fine-tuned" if tuned else "scratch",
                         rel_displacement=d.drift / d.init_norm if tuned else np.nan)
            frames.append(d)
    return pd.concat(frames, ignore_index=True)[DRIFT_COLUMNS]


def scratch_pair_decomposition(profile: Profile, states: States, inits: States | None = None) -> pd.DataFrame:
    """For every pair of scratch nets (as in Fig. 3a) and group: how much of their squared Frobenius
    distance the inits' difference, the drifts' difference and their cross term explain
    (:func:`kneelib.compare.init_drift.d2_decomposition`).

    Returns:
        columns seed, pair ("F(s) vs T(s)"), net_a, net_b, group, d2, init_term, drift_term, cross_term,
        init_share, drift_share, cross_share (the shares sum to 1).
    """
    inits = init_states(profile, states) if inits is None else inits
    frames = []
    for seed, nets in states.items():
        present = [n for n in scratch_nets(profile.tissues) if n in nets]
        for a, b in itertools.combinations(present, 2):
            d = d2_decomposition(inits[seed][a], inits[seed][b], nets[a], nets[b])
            frames.append(d.assign(seed=seed, pair=f"{a} vs {b}", net_a=a, net_b=b))
    out = pd.concat(frames, ignore_index=True)
    first = ["seed", "pair", "net_a", "net_b", "group"]
    return out[first + [c for c in out.columns if c not in first]]


def reread_by_group(drift: pd.DataFrame, scratch_pairs: pd.DataFrame, init_scratch_pairs: pd.DataFrame) -> pd.DataFrame:
    """C1 and C2 through init and drift, per seed and layer group (``"network"`` left out).

    Args:
        drift: :func:`drift_table`.
        scratch_pairs: the trained scratch-pair kernel distances (seed, pair, group, distance; Fig. 3a's).
        init_scratch_pairs: the same between the nets' inits (the untrained world's,
            :func:`kneelib.study.null_world.null_claim_tables` ``["scratch_pairs"]``).

    Returns:
        columns seed, group, scratch_drift_ratio (mean over scratch nets of drift / init_norm),
        finetune_drift (mean ||w - w_base|| of the fine-tuned nets), finetune_rel_displacement (their
        mean drift / ||w_base||), init_distance, trained_distance (mean kernel distance over scratch
        pairs), init_rank, trained_rank (1: the group with the smallest distance, as C1 ranks them).
    """
    groups = drift[drift.group != NETWORK]
    scratch = groups[groups.kind == "scratch"].assign(ratio=lambda d: d.drift / d.init_norm)
    tuned = groups[groups.kind == "fine-tuned"]
    by = ["seed", "group"]
    out = pd.concat([scratch.groupby(by, sort=False).ratio.mean().rename("scratch_drift_ratio"),
                     tuned.groupby(by, sort=False).drift.mean().rename("finetune_drift"),
                     tuned.groupby(by, sort=False).rel_displacement.mean().rename("finetune_rel_displacement"),
                     _mean_distance(init_scratch_pairs).rename("init_distance"),
                     _mean_distance(scratch_pairs).rename("trained_distance")], axis=1).reset_index()
    ranks = {f"{stage}_rank": out.groupby("seed")[f"{stage}_distance"].rank(method="min").astype(int)
             for stage in ("init", "trained")}
    return out.assign(**ranks)


def _mean_distance(pairs: pd.DataFrame) -> pd.Series:
    return pairs[pairs.group != NETWORK].groupby(["seed", "group"], sort=False).distance.mean()


def c1_at_init_and_trained(by_group: pd.DataFrame, latent: str) -> pd.DataFrame:
    """Per seed and stage ("init", "trained"): the group with the smallest mean scratch-pair distance, the
    smallest other than ``latent`` and C1's margin (smallest other - latent) / latent (> 0: the
    latent level is the smallest). ``by_group``: :func:`reread_by_group`. When the margin has one sign at
    init and keeps it after training, C1 follows the init scale."""
    rows = []
    for seed, d in by_group.groupby("seed", sort=False):
        for stage in ("init", "trained"):
            values = d.set_index("group")[f"{stage}_distance"]
            others = values.drop(latent)
            rows.append({"seed": seed, "stage": stage, "smallest": values.idxmin(), "smallest_other": others.idxmin(),
                         "latent_distance": values[latent],
                         "margin": (others.min() - values[latent]) / values[latent]})
    return pd.DataFrame(rows)


def drift_summary(drift: pd.DataFrame, decomposition: pd.DataFrame) -> pd.DataFrame:
    """What ``figures/init_drift`` draws, per layer group (``"network"`` left out): mean and sd over seeds
    and nets of drift / init_norm for scratch nets ("scratch: drift / init norm") and for fine-tuned nets
    ("fine-tuned: ||w - w_base|| / ||w_base||"), and over seeds and scratch pairs of the init share of d^2
    ("scratch pairs: init share of d^2").

    Args:
        drift: :func:`drift_table`.
        decomposition: :func:`scratch_pair_decomposition`.

    Returns:
        columns panel ("drift" / "init_share"), series, group, mean, sd (nan for a single value).
    """
    groups = drift[drift.group != NETWORK].assign(value=lambda d: d.drift / d.init_norm)
    parts = [(groups[groups.kind == "scratch"], "drift", "scratch: drift / init norm"),
             (groups[groups.kind == "fine-tuned"], "drift", "fine-tuned: ||w - w_base|| / ||w_base||"),
             (decomposition[decomposition.group != NETWORK].assign(value=lambda d: d.init_share), "init_share",
              "scratch pairs: init share of d^2")]
    frames = [d.groupby("group", sort=False).value.agg(["mean", "std"]).rename(columns={"std": "sd"}).reset_index()
              .assign(panel=panel, series=series) for d, panel, series in parts if len(d)]
    return pd.concat(frames, ignore_index=True)[["panel", "series", "group", "mean", "sd"]]
