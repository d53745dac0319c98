"""The analyses of notebooks 03-07, one function each, from the nets' weights to the tables saved and
the claims read.

A notebook calls its function, saves what it returns and draws its figures; 08_robustness calls the
same functions for every training recipe (:func:`kneelib.study.robustness.claim_inputs`), so a change
to an analysis reaches the notebook and the robustness verdicts at once.

``states`` is always seed -> net name -> state_dict, seeds in the order they were trained (a
profile's ``seeds``), nets as :func:`kneelib.study.nine_nets.all_specs` names them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch

from kneelib.compare import activations as act
from kneelib.compare import distance_tables
from kneelib.compare.distance_tables import SeedStates as States
from kneelib.compare.spread import seed_summary
from kneelib.core.profiles import Profile
from kneelib.data.context import DataContext, activation_inputs, cka_images
from kneelib.names import net_name
from kneelib.nets.evaluate import evaluate_nets
from kneelib.nets.run import NetSpec
from kneelib.nets.train import TrainResult
from kneelib.nets.unet import model_from_state
from kneelib.nets.workers import TrainJob
from kneelib.study import controls as ctl
from kneelib.study import nine_nets, policy


def states_of(trained: dict[NetSpec, TrainResult]) -> States:
    """The best weights of trained nets (e.g. :func:`kneelib.study.nine_nets.train_nets`) by seed and net
    name, in the order they were trained."""
    out: States = {}
    for spec, result in trained.items():
        out.setdefault(spec.seed, {})[spec.name] = result.state
    return out


def evaluation(profile: Profile, ctx: DataContext, states: States) -> pd.DataFrame:
    """03 (Fig. 2): every net of every seed on the test split, one row per net and scan (net, tissue,
    base_tissue, kind, seed, scan_id, dice, voe, cv, assd_mm, pred_ml, truth_ml; C6 reads it as
    ``per_scan``). Raises KeyError when a seed lacks one of the study's nets (``profile.tissues``)."""
    specs = [spec for seed in states for spec in nine_nets.all_specs(seed, profile.tissues)]
    nets = {spec: states[spec.seed][spec.name] for spec in specs}
    return evaluate_nets(profile, ctx, nets)


def distances(profile: Profile, states: States) -> dict:
    """04 (Fig. 3a, 3b, 4): the kernel-distance tables over all seeds, keyed by their registry names:

    - ``scratch_pairs``, ``finetune`` (seed, pair, group, distance), ``tissue`` (seed, pair, d_ab, d_ba,
      tissue_distance, asymmetry): as :func:`kneelib.compare.distance_tables.distance_tables`;
    - ``headline``: seed (as a string) -> the C3 distances (to_base, to_own_scratch, ratio, ...);
    - ``distances_null``: group, expected and empirical distance of untrained He-initialized nets of
      ``profile``'s architecture (the first seed's first scratch net gives the shapes).
    """
    tables = distance_tables.distance_tables(states, tissues=profile.tissues)
    reference = states[next(iter(states))][net_name(profile.tissues[0])]
    return {**tables, "distances_null": distance_tables.null_table(profile, reference)}


class Activations(NamedTuple):
    """05's maps and their overlaps. ``maps``: seed -> net -> layer group -> (N, S, S) maps of
    ``images``; ``overlap`` (C7) and ``overlap_topk_iou``: net_a, net_b, group, value, seed."""

    images: torch.Tensor       # (N, 1, S, S) test slices
    truth: dict                # tissue -> (N, S, S) bool masks
    labels: list[str]          # "<scan_id> slice <k>" per image
    maps: dict[int, dict[str, dict[str, np.ndarray]]]
    overlap: pd.DataFrame      # Pearson correlation of the maps
    overlap_topk_iou: pd.DataFrame  # IoU of the top-10% regions


def activations(profile: Profile, ctx: DataContext, states: States) -> Activations:
    """05 (Fig. 5): activation maps of every net on ``profile.activation_slices`` test slices
    (:func:`kneelib.data.context.activation_inputs`) and how much every pair of nets' maps overlap."""
    images, truth, labels = activation_inputs(profile, ctx, profile.activation_slices)
    maps = {seed: {name: act.activation_maps(model_from_state(state), images) for name, state in nets.items()}
            for seed, nets in states.items()}

    def overlap(measure: str) -> pd.DataFrame:
        return pd.concat([act.overlap_table(m, measure).assign(seed=seed) for seed, m in maps.items()],
                         ignore_index=True)

    return Activations(images, truth, labels, maps, overlap("correlation"), overlap("topk_iou"))


class Controls(NamedTuple):
    """06's controls, each a long table with a ``seed`` column (see :mod:`kneelib.study.controls`)."""

    null_ratio: pd.DataFrame   # scratch pairs' distance / untrained null: seed, pair, group, distance, null, ratio
    scale_free: pd.DataFrame   # relative and cosine distances: ..., scale, comparison
    aligned: pd.DataFrame      # scratch pairs raw and after weight matching: seed, pair, group, raw, aligned
    cka: pd.DataFrame          # debiased linear CKA per depth: seed, comparison, pair, group, cka
    grams: ctl.Grams           # seed -> net -> group -> Gram matrix, for layer-by-layer heatmaps


def controls(profile: Profile, ctx: DataContext, states: States, dist: dict) -> Controls:
    """06: the untrained-null ratio of the scratch pairs' distances (``dist``: :func:`distances`), the
    scale-free distances, the distances after aligning hidden units and CKA on ``profile.cka_slices``
    test slices."""
    tissues = profile.tissues
    cka, grams = ctl.cka_tables(states, cka_images(profile, ctx, profile.cka_slices), profile.depth, tissues)
    return Controls(ctl.null_ratio_table(dist["scratch_pairs"], dist["distances_null"]),
                    ctl.scale_free_tables(states, tissues), ctl.aligned_scratch_pairs(states, tissues), cka, grams)


def controls_spread(c: Controls) -> pd.DataFrame:
    """06: mean, sd and 95% t-interval over seeds of the null ratios, the raw and aligned distances and
    the CKA values (:func:`kneelib.compare.spread.seed_summary`; column ``table`` says which)."""
    return pd.concat([
        seed_summary(c.null_ratio, ["pair", "group"], ["ratio"], "null_ratio"),
        seed_summary(c.aligned, ["pair", "group"], ["raw", "aligned"], "aligned"),
        seed_summary(c.cka.assign(pair=c.cka.comparison + ": " + c.cka.pair), ["pair", "group"], ["cka"], "cka"),
    ], ignore_index=True)


def policy_sweep(profile: Profile, ctx: DataContext, force: bool = False, progress: bool = True,
                 relocate: Callable[[TrainJob], TrainJob] | None = None) -> pd.DataFrame:
    """07 (C8): train (or reuse) every run of ``profile``'s policy sweep and test it, one row per run
    (:func:`kneelib.study.policy.run_policy`); ``relocate`` may move a run's folder."""
    return policy.run_policy(profile, ctx, policy.policy_runs(profile), force=force, progress=progress,
                             relocate=relocate)


def claim_tables(per_scan: pd.DataFrame, dist: dict, overlap: pd.DataFrame, c: Controls,
                 policy_table: pd.DataFrame, history: pd.DataFrame) -> dict:
    """The analyses' tables under the names :func:`kneelib.study.claims.claims_table` takes
    (:data:`kneelib.core.registry.CLAIM_INPUTS`), as the claims report loads them from the files.
    ``history``: the nets' learning curves (03's ``history_all``) or one row per net with its epochs and
    best epoch (:func:`kneelib.study.claims.convergence_table` takes either)."""
    return {"scratch_pairs": dist["scratch_pairs"], "finetune": dist["finetune"],
            "headline": {"by_seed": dist["headline"]}, "tissue": dist["tissue"], "per_scan": per_scan,
            "overlap": overlap, "null_ratio": c.null_ratio, "aligned": c.aligned, "cka": c.cka,
            "policy": policy_table, "history_all": history}
