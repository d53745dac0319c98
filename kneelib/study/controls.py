"""Controls for the paper's conclusions (06_controls): the untrained null, scale-free distances,
permutation-aligned distances and representation similarity (linear CKA).

Every function returns a long table with a ``seed`` column, so spreads across seeds come for free.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import torch

from kneelib.compare import distances
from kneelib.compare.activations import layer_activations
from kneelib.compare.alignment import align
from kneelib.compare.similarity import cka_from_grams, gram
from kneelib.names import SCRATCH_NETS
from kneelib.nets.unet import layer_groups, model_from_state

States = dict[str, dict[str, torch.Tensor]]
SCRATCH = SCRATCH_NETS


def null_ratio_table(scratch_pairs: pd.DataFrame, null: pd.DataFrame) -> pd.DataFrame:
    """Each trained scratch-vs-scratch distance divided by the untrained He null of its group.

    A ratio below 1 means training brought two nets closer than chance in that group.
    """
    expected = dict(zip(null.group, null.expected))
    return scratch_pairs.assign(null=scratch_pairs.group.map(expected),
                                ratio=lambda d: d.distance / d.group.map(expected))


def scale_free_tables(states: dict[int, States]) -> pd.DataFrame:
    """Scratch-vs-scratch and scratch-vs-fine-tuned distances per group with relative and cosine scales."""
    frames = []
    for seed, st in states.items():
        for scale in ("relative", "cosine"):
            for kind, fn in (("scratch_pairs", distances.scratch_pairs_table), ("finetune", distances.finetune_table)):
                frames.append(fn(st, scale=scale).assign(seed=seed, scale=scale, comparison=kind))
    return pd.concat(frames, ignore_index=True)


def aligned_scratch_pairs(states: dict[int, States]) -> pd.DataFrame:
    """Scratch-vs-scratch kernel distances per group, raw and after aligning net b's channels to net a
    (weight matching, ``kneelib.compare.alignment.align``)."""
    rows = []
    for seed, st in states.items():
        for a, b in itertools.combinations(SCRATCH, 2):
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


def cka_tables(states: dict[int, States], images: torch.Tensor, depth: int) -> tuple[pd.DataFrame, Grams]:
    """Per-depth CKA (same group in both nets) for scratch-vs-scratch and scratch-vs-fine-tuned pairs.

    Returns the table (seed, comparison, pair, group, cka) and the Gram matrices per seed and net,
    from which ``cka_heatmap`` draws any net pair's full layer-by-layer matrix.
    """
    rows, grams = [], {}
    for seed, st in states.items():
        grams[seed] = {name: gram_matrices(s, images) for name, s in st.items()}
        pairs = [("scratch_pairs", a, b) for a, b in itertools.combinations(SCRATCH, 2)]
        pairs += [("finetune", a, n) for a in SCRATCH for n in st if n.endswith(f"|{a}")]
        pairs += [("own_scratch", f"{n[0]}(s)", n) for n in st if "|" in n]  # B(s) vs B|A(s)
        for kind, a, b in pairs:
            rows += [{"seed": seed, "comparison": kind, "pair": f"{a} vs {b}", "group": g,
                      "cka": cka_from_grams(grams[seed][a][g], grams[seed][b][g])} for g in layer_groups(depth)]
    return pd.DataFrame(rows), grams


def cka_heatmap(grams_a: dict[str, np.ndarray], grams_b: dict[str, np.ndarray], depth: int) -> pd.DataFrame:
    """Every layer group of net a (rows) against every layer group of net b (columns)."""
    groups = layer_groups(depth)
    return pd.DataFrame([[cka_from_grams(grams_a[g], grams_b[h]) for h in groups] for g in groups],
                        index=groups, columns=groups)
