"""Controls for the paper's conclusions (06_controls): the untrained null, scale-free distances,
permutation-aligned distances and representation similarity (linear CKA).

Every function returns a long table with a ``seed`` column, so spreads across seeds come for free.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from kneelib.compare import distances
from kneelib.compare.activations import layer_activations
from kneelib.compare.alignment import align
from kneelib.compare.distance_tables import States
from kneelib.compare.similarity import cka_from_grams, gram
from kneelib.names import base_of, net_name, scratch_nets, tissue_of
from kneelib.nets.unet import layer_groups, model_from_state


def _scratch(states: dict[int, States], tissues: Sequence[str] | None) -> tuple[str, ...]:
    """The scratch nets compared: of ``tissues`` in order, or (None) of every tissue with a scratch net in
    the first seed's states (``kneelib.compare.distances.study_codes``)."""
    first = next(iter(states.values()), {})
    return scratch_nets(distances.study_codes(first, tissues))


def null_ratio_table(scratch_pairs: pd.DataFrame, null: pd.DataFrame) -> pd.DataFrame:
    """Each trained scratch-vs-scratch distance divided by the untrained He null of its group.

    How to read it: two independently initialized nets have uncorrelated kernels, and training does not
    align their hidden units, so d^2 is about ||w_a||^2 + ||w_b||^2 per kernel and the ratio follows the
    growth of the weights' norms: below 1 the weights shrank, above 1 they grew. It is not a measure of
    the nets converging on shared kernels (that needs an alignment: :func:`aligned_scratch_pairs`).
    """
    expected = dict(zip(null.group, null.expected))
    return scratch_pairs.assign(null=scratch_pairs.group.map(expected),
                                ratio=lambda d: d.distance / d.group.map(expected))


def scale_free_tables(states: dict[int, States], tissues: Sequence[str] | None = None) -> pd.DataFrame:
    """Scratch-vs-scratch and scratch-vs-fine-tuned distances per group with relative and cosine scales.

    ``states``: seed -> net name -> state_dict; ``tissues``: the study's tissues in order (None: those with
    a scratch net, ``kneelib.compare.distances.study_codes``)."""
    frames = []
    for seed, st in states.items():
        for scale in ("relative", "cosine"):
            for kind, fn in (("scratch_pairs", distances.scratch_pairs_table), ("finetune", distances.finetune_table)):
                frames.append(fn(st, scale=scale, tissues=tissues).assign(seed=seed, scale=scale, comparison=kind))
    return pd.concat(frames, ignore_index=True)


def aligned_scratch_pairs(states: dict[int, States], tissues: Sequence[str] | None = None) -> pd.DataFrame:
    """Scratch-vs-scratch kernel distances per group, raw and after aligning net b's channels to net a
    (weight matching, ``kneelib.compare.alignment.align``), for every pair of the scratch nets of ``tissues``
    (None: of every tissue with a scratch net)."""
    rows = []
    for seed, st in states.items():
        for a, b in itertools.combinations(_scratch(states, tissues), 2):
            model_a, model_b = model_from_state(st[a]), model_from_state(st[b])
            aligned = align(model_a, model_b, seed=seed)
            raw = distances.kernel_distances(st[a], st[b])
            after = distances.kernel_distances(st[a], aligned.state_dict())
            rows += [{"seed": seed, "pair": f"{a} vs {b}", "group": g, "raw": raw[g], "aligned": after[g]}
                     for g in raw]
    return pd.DataFrame(rows)


def gram_matrices(state: dict[str, torch.Tensor], images: torch.Tensor) -> dict[str, np.ndarray]:
    """(n, n) linear Gram matrix of every layer group's activations on ``images`` (N, 1, S, S)."""
    acts = layer_activations(model_from_state(state), images, batch_size=16)
    return {g: gram(a) for g, a in acts.items()}


Grams = dict[int, dict[str, dict[str, np.ndarray]]]  # seed -> net -> layer group -> (n, n) Gram matrix


def cka_tables(states: dict[int, States], images: torch.Tensor, depth: int,
               tissues: Sequence[str] | None = None) -> tuple[pd.DataFrame, Grams]:
    """Per-depth CKA (same group in both nets) for scratch-vs-scratch, scratch-vs-fine-tuned and
    fine-tuned-vs-own-scratch pairs of the nets of ``tissues`` (None: of every tissue with a scratch net).

    Args:
        states: seed -> net name -> state_dict.
        images: (N, 1, S, S) slices the activations are computed on.
        depth: U-Net depth, for the layer groups.

    Returns the table (seed, comparison, pair, group, cka) and the Gram matrices per seed and net,
    from which ``cka_heatmap`` draws any net pair's full layer-by-layer matrix.
    """
    rows, grams = [], {}
    scratch = _scratch(states, tissues)
    for seed, st in states.items():
        grams[seed] = {name: gram_matrices(s, images) for name, s in st.items()}
        tuned = [n for n in st if base_of(n) is not None and net_name(base_of(n)) in scratch
                 and net_name(tissue_of(n)) in scratch]
        pairs = [("scratch_pairs", a, b) for a, b in itertools.combinations(scratch, 2)]
        pairs += [("finetune", a, n) for a in scratch for n in tuned if net_name(base_of(n)) == a]
        pairs += [("own_scratch", net_name(tissue_of(n)), n) for n in tuned]  # B(s) vs B|A(s)
        for kind, a, b in pairs:
            rows += [{"seed": seed, "comparison": kind, "pair": f"{a} vs {b}", "group": g,
                      "cka": cka_from_grams(grams[seed][a][g], grams[seed][b][g])} for g in layer_groups(depth)]
    return pd.DataFrame(rows), grams


def cka_heatmap(grams_a: dict[str, np.ndarray], grams_b: dict[str, np.ndarray], depth: int) -> pd.DataFrame:
    """Every layer group of net a (rows) against every layer group of net b (columns)."""
    groups = layer_groups(depth)
    return pd.DataFrame([[cka_from_grams(grams_a[g], grams_b[h]) for h in groups] for g in groups],
                        index=groups, columns=groups)
