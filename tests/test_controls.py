"""kneelib.study.controls on hand-made tables and small synthetic UNet2D states whose answers are known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from kneelib.compare.alignment import permute, random_permutations
from kneelib.compare.distances import kernel_distances
from kneelib.compare.similarity import cka_from_grams
from kneelib.nets.unet import UNet2D, layer_groups
from kneelib.study import controls

pytestmark = pytest.mark.usefixtures("one_thread")

DEPTH, FILTERS = 3, 4
# kernel_distances' groups, in state_dict order, then the whole network
GROUPS = ["enc_layer1", "enc_layer2", "enc_layer3", "dec_layer1", "dec_layer2", "head", "network"]


def net(seed: int) -> dict[str, torch.Tensor]:
    return UNet2D(DEPTH, FILTERS, seed=seed).state_dict()


def scaled(state: dict[str, torch.Tensor], c: float) -> dict[str, torch.Tensor]:
    return {k: v * c if v.is_floating_point() else v.clone() for k, v in state.items()}


# ------------------------------------------------------------------ null ratios


def test_null_ratio_divides_each_distance_by_the_null_of_its_own_group():
    pairs = pd.DataFrame([{"seed": 0, "pair": "F(s) vs T(s)", "group": "enc_layer1", "distance": 0.6},
                          {"seed": 0, "pair": "F(s) vs T(s)", "group": "enc_layer2", "distance": 0.3},
                          {"seed": 0, "pair": "F(s) vs M(s)", "group": "enc_layer2", "distance": 0.1},
                          {"seed": 1, "pair": "F(s) vs T(s)", "group": "network", "distance": 0.5}])
    # rows in another order than the pairs table, so matching by position would fail
    null = pd.DataFrame({"group": ["network", "enc_layer2", "enc_layer1"], "expected": [0.25, 0.2, 1.2]})
    out = controls.null_ratio_table(pairs, null)
    assert out.null.tolist() == [1.2, 0.2, 0.2, 0.25]
    assert out.ratio.tolist() == pytest.approx([0.5, 1.5, 0.5, 2.0])
    assert out[["seed", "pair", "group", "distance"]].equals(pairs)  # input columns kept as they were


# ------------------------------------------------------------------ scale-free distances


def test_scale_free_tables_match_kernel_distances_and_see_through_scaling():
    c = 3.0
    states = {seed: {"F(s)": net(10 * seed), "T(s)": net(10 * seed + 1), "M(s)": net(10 * seed + 2)}
              for seed in (0, 1)}
    for st in states.values():
        st["T|F(s)"] = scaled(st["F(s)"], c)  # "fine-tuned" = the base net times c
    table = controls.scale_free_tables(states)
    assert set(zip(table.seed, table.scale, table.comparison)) == {
        (s, scale, kind) for s in (0, 1) for scale in ("relative", "cosine") for kind in ("scratch_pairs", "finetune")}

    scratch = table[table.comparison == "scratch_pairs"]
    for (seed, scale, pair), rows in scratch.groupby(["seed", "scale", "pair"]):
        a, b = pair.split(" vs ")
        expected = kernel_distances(states[seed][a], states[seed][b], scale=scale)
        assert dict(zip(rows.group, rows.distance)) == pytest.approx(expected), (seed, scale, pair)
    assert len(scratch) == 2 * 2 * 3 * len(GROUPS)  # seeds x scales x pairs x groups

    tuned = table[table.comparison == "finetune"]
    assert set(tuned.pair) == {"F(s) vs T|F(s)"}  # only the fine-tuned net present
    assert len(tuned) == 2 * 2 * len(GROUPS)
    # ||a - c a|| / ||a|| = |1 - c| for every kernel; the angle does not change at all
    assert tuned[tuned.scale == "relative"].distance.tolist() == pytest.approx([abs(1 - c)] * 2 * len(GROUPS))
    assert tuned[tuned.scale == "cosine"].distance.tolist() == pytest.approx([0.0] * 2 * len(GROUPS), abs=1e-12)
    # scratch nets are independent He inits: far apart on both scales (about sqrt(2) and 1)
    assert (scratch[scratch.group == "network"].distance > 0.5).all()


# ------------------------------------------------------------------ permutation alignment


def test_aligned_scratch_pairs_undo_channel_permutations():
    states = {}
    for seed in (0, 1):
        base = UNet2D(DEPTH, FILTERS, seed=seed)
        states[seed] = {"F(s)": base.state_dict(),
                        "T(s)": permute(base, random_permutations(base.state_dict(), seed=seed + 1)).state_dict(),
                        "M(s)": permute(base, random_permutations(base.state_dict(), seed=seed + 7)).state_dict()}
    table = controls.aligned_scratch_pairs(states)
    assert list(table.columns) == ["seed", "pair", "group", "raw", "aligned"]
    assert len(table) == 2 * 3 * len(GROUPS)
    for seed in (0, 1):
        rows = table[table.seed == seed]
        assert rows.pair.unique().tolist() == ["F(s) vs T(s)", "F(s) vs M(s)", "T(s) vs M(s)"]
        assert all(rows[rows.pair == p].group.tolist() == GROUPS for p in rows.pair.unique())
        raw = kernel_distances(states[seed]["T(s)"], states[seed]["M(s)"])
        tm = rows[rows.pair == "T(s) vs M(s)"]
        assert dict(zip(tm.group, tm.raw)) == pytest.approx(raw)
    # the raw distance sees the shuffled channels; after alignment the nets are the same net
    assert (table[table.group == "network"].raw > 0.1).all()
    assert (table.aligned < 1e-6).all()


# ------------------------------------------------------------------ CKA


def test_cka_tables_pairs_and_identities():
    images = torch.randn(8, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    st = {"F(s)": net(0), "T(s)": net(1), "M(s)": net(2)}
    st["T|F(s)"] = {k: v.clone() for k, v in st["F(s)"].items()}  # an untouched copy of its base
    table, grams = controls.cka_tables({3: st}, images, DEPTH)
    assert list(table.columns) == ["seed", "comparison", "pair", "group", "cka"]
    assert set(table.seed) == {3} and set(grams) == {3} and set(grams[3]) == set(st)
    assert {g.shape for by_group in grams[3].values() for g in by_group.values()} == {(8, 8)}  # one row per image
    pairs = table.groupby("comparison", sort=False).pair.unique().apply(list).to_dict()
    assert pairs == {"scratch_pairs": ["F(s) vs T(s)", "F(s) vs M(s)", "T(s) vs M(s)"],
                     "finetune": ["F(s) vs T|F(s)"], "own_scratch": ["T(s) vs T|F(s)"]}
    assert all(table[table.pair == p].group.tolist() == layer_groups(DEPTH) for p in table.pair.unique())

    cka = table.set_index(["pair", "group"]).cka
    groups = layer_groups(DEPTH)
    # a net against a copy of itself: CKA 1 in every group
    assert cka.loc["F(s) vs T|F(s)"].tolist() == pytest.approx([1.0] * len(groups))
    # the copy's own-tissue scratch net T(s) is as similar to it as to F(s)
    assert cka.loc["T(s) vs T|F(s)"].tolist() == pytest.approx(cka.loc["F(s) vs T(s)"].tolist())
    # independent inits are not identical in representation
    assert (cka.loc["F(s) vs M(s)"] < 0.999).all()
    assert cka.loc[("F(s) vs M(s)", "enc_layer2")] == pytest.approx(
        cka_from_grams(grams[3]["F(s)"]["enc_layer2"], grams[3]["M(s)"]["enc_layer2"]))


def test_controls_of_multi_letter_tissues():
    # TL|T(s) must pair with its base T(s) and its own scratch TL(s), not with "T(s)" read off its first letter.
    images = torch.randn(8, 1, 16, 16, generator=torch.Generator().manual_seed(2))
    st = {"TL(s)": net(0), "T(s)": net(1), "MM(s)": net(2)}
    st["TL|T(s)"] = {k: v.clone() for k, v in st["T(s)"].items()}
    st["T|MM(s)"] = net(3)
    tissues = ("tibial_cartilage", "lateral_tibial_cartilage", "medial_meniscus")
    table, _ = controls.cka_tables({0: st}, images, DEPTH, tissues)
    pairs = table.groupby("comparison", sort=False).pair.unique().apply(list).to_dict()
    assert pairs == {"scratch_pairs": ["T(s) vs TL(s)", "T(s) vs MM(s)", "TL(s) vs MM(s)"],
                     "finetune": ["T(s) vs TL|T(s)", "MM(s) vs T|MM(s)"],
                     "own_scratch": ["TL(s) vs TL|T(s)", "T(s) vs T|MM(s)"]}
    assert table[table.pair == "T(s) vs TL|T(s)"].cka.tolist() == pytest.approx([1.0] * len(layer_groups(DEPTH)))
    aligned = controls.aligned_scratch_pairs({0: st}, tissues[:2])
    assert aligned.pair.unique().tolist() == ["T(s) vs TL(s)"]
    scale_free = controls.scale_free_tables({0: st}, tissues)
    assert set(scale_free[scale_free.comparison == "finetune"].pair) == {"T(s) vs TL|T(s)", "MM(s) vs T|MM(s)"}


def test_cka_heatmap_rows_are_net_a_columns_net_b():
    images = torch.randn(8, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    ga, gb = (controls.gram_matrices(net(s), images) for s in (0, 1))
    groups = layer_groups(DEPTH)
    same = controls.cka_heatmap(ga, ga, DEPTH)
    assert list(same.index) == list(same.columns) == groups
    assert np.diag(same.values) == pytest.approx([1.0] * len(groups))
    cross = controls.cka_heatmap(ga, gb, DEPTH)
    assert cross.loc["enc_layer1", "head"] == pytest.approx(cka_from_grams(ga["enc_layer1"], gb["head"]))
    assert cross.loc["head", "enc_layer1"] == pytest.approx(cka_from_grams(ga["head"], gb["enc_layer1"]))
    assert cross.loc["enc_layer1", "head"] != pytest.approx(cross.loc["head", "enc_layer1"])
