import math

import pandas as pd
import pytest

from kneelib.compare.spread import interval95, seed_summary


def test_interval95_matches_t_table():
    mean, sd, lo, hi = interval95([1.0, 2.0, 3.0])
    assert (mean, sd) == (2.0, 1.0)
    assert hi - mean == pytest.approx(4.302653 / math.sqrt(3), rel=1e-5)  # t(0.975, 2) = 4.3027
    assert mean - lo == pytest.approx(hi - mean)
    assert math.isnan(interval95([1.0])[2])
    with pytest.raises(ValueError):
        interval95([])


def test_seed_summary_one_row_per_pair_group_and_value():
    table = pd.DataFrame({
        "seed": [0, 1, 2, 0, 1, 2],
        "pair": ["a"] * 3 + ["b"] * 3,
        "group": ["enc_layer1"] * 6,
        "distance": [1.0, 2.0, 3.0, 5.0, 5.0, 5.0],
        "ratio": [0.1, 0.1, 0.4, 1.0, 2.0, 3.0],
    })
    out = seed_summary(table, ["pair", "group"], ["distance", "ratio"], name="scratch_pairs")
    assert list(out.columns[:4]) == ["table", "pair", "group", "quantity"]
    assert len(out) == 4 and set(out.n_seeds) == {3}
    a = out[(out.pair == "a") & (out.quantity == "distance")].iloc[0]
    assert (a["mean"], a["sd"]) == (2.0, 1.0)
    assert a.ci95_low == pytest.approx(2.0 - 4.302653 / math.sqrt(3), rel=1e-5)
    b = out[(out.pair == "b") & (out.quantity == "distance")].iloc[0]
    assert b["sd"] == 0 and b.ci95_low == b.ci95_high == 5.0
    assert out[(out.pair == "b") & (out.quantity == "ratio")]["mean"].item() == pytest.approx(2.0)


def test_seed_summary_rejects_duplicates_and_missing_columns():
    table = pd.DataFrame({"seed": [0, 0], "pair": ["a", "a"], "distance": [1.0, 2.0]})
    with pytest.raises(ValueError, match="duplicate"):
        seed_summary(table, ["pair"], ["distance"])
    with pytest.raises(ValueError, match="group"):
        seed_summary(table, ["pair", "group"], ["distance"])
