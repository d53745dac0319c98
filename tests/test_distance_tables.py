"""kneelib.compare.distance_tables: the per-seed distance tables summarized over seeds."""

import pandas as pd
import pytest

from kneelib.compare import distance_tables
from kneelib.compare.distances import kernel_distances
from kneelib.nets.unet import UNet2D

NETS = ["F(s)", "T(s)", "M(s)", "T|F(s)", "M|F(s)", "F|T(s)", "M|T(s)", "F|M(s)", "T|M(s)"]


def _states(seed: int) -> dict:
    return {name: UNet2D(depth=2, base_filters=2, seed=100 * seed + i).state_dict() for i, name in enumerate(NETS)}


@pytest.fixture(scope="module")
def tables():
    return distance_tables.distance_tables({0: _states(0), 1: _states(1), 2: _states(2)})


def test_distance_spread_summarizes_every_distance_over_seeds(tables):
    spread = distance_tables.distance_spread(tables)
    assert set(spread.table) == {"scratch_pairs", "finetune", "tissue", "headline"}
    assert (spread.n_seeds == 3).all()
    # 3 scratch pairs x (2 enc + 1 dec + head + network) groups
    assert len(spread[spread.table == "scratch_pairs"]) == len(tables["scratch_pairs"]) // 3
    row = spread[(spread.table == "scratch_pairs") & (spread.pair == "F(s) vs T(s)") & (spread.group == "network")]
    by_hand = [kernel_distances(_states(s)["F(s)"], _states(s)["T(s)"])["network"] for s in range(3)]
    assert row["mean"].item() == pytest.approx(sum(by_hand) / 3)
    assert row["ci95_low"].item() < row["mean"].item() < row["ci95_high"].item()
    headline = spread[(spread.table == "headline") & (spread.quantity == "to_base")]
    assert headline["mean"].item() == pytest.approx(
        sum(tables["headline"][str(s)]["to_base"] for s in range(3)) / 3)
    assert set(spread[spread.table == "tissue"].quantity) == {"d_ab", "d_ba", "tissue_distance", "asymmetry"}


def test_headline_frame_has_one_row_per_seed(tables):
    frame = distance_tables.headline_frame(tables["headline"])
    assert isinstance(frame, pd.DataFrame)
    assert frame.seed.tolist() == [0, 1, 2]
    assert (frame.ratio == frame.to_own_scratch / frame.to_base).all()
