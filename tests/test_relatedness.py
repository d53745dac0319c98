"""The known-relatedness ladder (kneelib.study.relatedness, kneelib.study.ladder, kneelib.data.mask_dilation):
the dilation, the rungs' specification and recipes, the Spearman margin and its verdicts, and 09 at the tiny
profile."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from kneelib.core import paths, registry
from kneelib.data.mask_dilation import DilatedMasks, dilate_in_plane
from kneelib.names import CODE_TISSUES, tissue_name
from kneelib.nets.run import NetSpec, train_config
from kneelib.study import ladder, relatedness
from kneelib.study.relatedness import RUNGS, rank_correlation, summary_table, validation_outcome
from kneelib.study.verdicts import VERDICTS, verdict

# ----------------------------------------------------------------------------- dilation


def test_dilation_adds_the_four_face_neighbours_of_each_pixel_in_plane_only():
    masks = np.zeros((2, 1, 5, 5), dtype=np.uint8)
    masks[0, 0, 2, 2] = 1   # centre of slice 0
    masks[1, 0, 0, 0] = 1   # corner of slice 1: the border clips the cross
    out = dilate_in_plane(masks)
    cross = np.zeros((5, 5), dtype=np.uint8)
    cross[1:4, 2] = cross[2, 1:4] = 1
    assert out.dtype == torch.uint8 and out.shape == (2, 1, 5, 5)
    assert np.array_equal(out[0, 0].numpy(), cross)  # no diagonal corners
    assert out[1, 0].sum() == 3 and out[1, 0, :2, :2].numpy().tolist() == [[1, 1], [1, 0]]
    assert out[1, 0, 2, 2] == 0 and out[0, 0, 0, 0] == 0  # nothing leaks from one slice to the other


def test_dilation_of_one_mask_and_of_an_empty_mask():
    single = torch.zeros(1, 4, 4)
    single[0, 1, 1] = 1
    assert dilate_in_plane(single).shape == (1, 4, 4) and int(dilate_in_plane(single).sum()) == 5
    assert int(dilate_in_plane(torch.zeros(3, 1, 4, 4)).sum()) == 0
    with pytest.raises(ValueError, match="shape"):
        dilate_in_plane(torch.zeros(4, 4))


class _Slices(torch.utils.data.Dataset):
    """A stand-in for a SliceDataset: two 4 x 4 slices, each mask one pixel."""

    def __init__(self, preload: bool) -> None:
        self.preload, self.scan_ids = preload, ("a",)
        self.images = torch.arange(32, dtype=torch.float32).reshape(2, 1, 4, 4)
        self.masks = torch.zeros(2, 1, 4, 4, dtype=torch.uint8)
        self.masks[0, 0, 1, 1] = self.masks[1, 0, 2, 3] = 1

    def __len__(self) -> int:
        return 2

    def raw_item(self, i: int):
        return self.images[i], self.masks[i]


@pytest.mark.parametrize("preload", [True, False])
def test_dilated_masks_dataset_dilates_every_mask_and_keeps_the_images(preload):
    ds = DilatedMasks(_Slices(preload))
    assert ds.preload == preload and len(ds) == 2 and ds.scan_ids == ("a",)
    image, mask = ds.raw_item(1)
    assert torch.equal(image, ds.dataset.images[1]) and mask.dtype == torch.uint8
    assert int(mask.sum()) == 4  # (2, 3) at the right border: 3 in-plane neighbours + itself
    assert ds[0][1].dtype == torch.float32 and int(ds[0][1].sum()) == 5
    if preload:
        assert torch.equal(ds.masks, dilate_in_plane(ds.dataset.masks))
    else:
        with pytest.raises(RuntimeError):
            _ = ds.masks


# ----------------------------------------------------------------------------- the rungs


def test_the_ladder_goes_from_the_same_task_to_another_tissue():
    assert [r.index for r in RUNGS] == [0, 1, 2, 3, 4]
    assert [r.name for r in RUNGS] == ["same_task", "dilated", "mirrored_compartment", "other_place", "other_tissue"]
    assert [(r.base_task, r.target_task) for r in RUNGS] == [("F", "F"), ("F", "F+1"), ("TL", "TM"), ("F", "P"),
                                                             ("F", "M")]
    assert [r.pair for r in RUNGS] == ["F(s) vs F|F(s)", "F(s) vs F+1|F(s)", "TL(s) vs TM|TL(s)", "F(s) vs P|F(s)",
                                       "F(s) vs M|F(s)"]
    assert [r.dilate for r in RUNGS] == [False, True, False, False, False]


def test_rung_recipes_are_the_profile_fine_tune_recipe():
    from kneelib.core.profiles import get_profile

    profile = get_profile("demo", finetune_lr=1e-3)
    same, dilated, mirrored, other_place, _ = RUNGS
    cfg = ladder.rung_config(profile, same, 2)
    assert cfg.base_net == "F(s)" and cfg.tissue == "femoral_cartilage" and cfg.lr == 1e-3
    assert cfg.seed == 2001  # NetSpec.run_seed's formula for F fine-tuned from F: 1000 * 2 + 10 * 0 + 1 + 0
    codes = list(CODE_TISSUES)
    study_seeds = {NetSpec(tissue_name(t), None if b is None else tissue_name(b), 2).run_seed
                   for t in codes for b in (None, *codes) if t != b}
    assert cfg.seed not in study_seeds  # no study net shares its shuffle
    assert ladder.rung_config(profile, dilated, 2) == cfg  # rungs 0 and 1 differ only in their masks
    assert ladder.rung_config(profile, mirrored, 2) == train_config(
        profile, NetSpec("medial_tibial_cartilage", "lateral_tibial_cartilage", 2))
    assert ladder.rung_config(profile, other_place, 0).base_net == "F(s)"
    assert ladder.base_spec(mirrored, 1) == NetSpec("lateral_tibial_cartilage", None, 1)


def test_rung_folders_and_data_identity(tmp_path, monkeypatch):
    from kneelib.core.profiles import get_profile

    monkeypatch.setenv(paths.OUTPUTS_ENV, str(tmp_path))
    profile = get_profile("tiny")
    expected = tmp_path / "tiny" / "models" / "relatedness" / "seed1" / "other_place"
    assert ladder.rung_dir(profile, RUNGS[3], 1) == expected

    class Ctx:
        manifest_hash = "abc"

    assert ladder.rung_data_hash(Ctx, RUNGS[0]) == "abc"  # the same data as the study's nets
    dilated = ladder.rung_data_hash(Ctx, RUNGS[1])
    assert dilated != "abc" and len(dilated) == 64  # dilated masks are other data: another run key


# ----------------------------------------------------------------------------- the statistics


def _ladder(values_by_seed: dict[int, list[float]], measure: str = "kernel_distance",
            start_loss: list[float] | None = None) -> pd.DataFrame:
    """A hand-built long table: one row per seed and rung of one measure (group "network")."""
    rows = []
    for seed, values in values_by_seed.items():
        for rung, value in zip(RUNGS, values):
            rows.append({"seed": seed, "rung": rung.index, "rung_name": rung.name, "pair": rung.pair,
                         "base_task": rung.base_task, "target_task": rung.target_task, "measure": measure,
                         "group": "network", "value": value,
                         "start_val_loss": (start_loss or [0.1, 0.2, 0.3, 0.4, 0.5])[rung.index],
                         "best_epoch": 6 - rung.index, "epochs": 6})
    return pd.DataFrame(rows)


def _row(summary: pd.DataFrame, measure: str) -> pd.Series:
    return summary.set_index(["measure", "group"]).loc[(measure, "network")]


def test_rank_correlation_is_spearman_and_nan_without_an_order():
    assert rank_correlation([0, 1, 2, 3], [1, 5, 7, 100]) == pytest.approx(1.0)
    assert rank_correlation([0, 1, 2, 3], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert rank_correlation([0, 1, 2, 3, 4], [1, 3, 2, 5, 4]) == pytest.approx(0.8)
    assert math.isnan(rank_correlation([0, 1, 2], [1, 1, 1])) and math.isnan(rank_correlation([0, 1], [1, 2]))


def test_a_distance_that_orders_the_ladder_is_supported_and_a_reversed_one_contradicted():
    up = {0: [0.01, 0.02, 0.03, 0.04, 0.05], 1: [0.011, 0.019, 0.035, 0.036, 0.06], 2: [0.0, 0.1, 0.2, 0.3, 0.4]}
    down = {s: v[::-1] for s, v in up.items()}
    unordered_loss = [0.5, 0.1, 0.4, 0.2, 0.3]  # so that the measures do not just follow the loss left
    table = pd.concat([_ladder(up, start_loss=unordered_loss),
                       _ladder(down, "aligned_kernel_distance", start_loss=unordered_loss)], ignore_index=True)
    summary = summary_table(table)
    ordered, reversed_ = _row(summary, "kernel_distance"), _row(summary, "aligned_kernel_distance")
    assert [ordered[f"rho_seed{s}"] for s in range(3)] == pytest.approx([1.0, 1.0, 1.0])
    assert ordered.effect == pytest.approx(1.0) and ordered.verdict == "supported" and ordered.n_positive == 3
    assert reversed_.effect == pytest.approx(-1.0) and reversed_.verdict == "contradicted" and reversed_.n_positive == 0
    assert ordered.follows_start_loss == pytest.approx(-0.3) and ordered.follows_best_epoch == pytest.approx(-1.0)
    assert validation_outcome(summary) == {"kernel_distance": "supported", "aligned_kernel_distance": "contradicted",
                                           "relative_displacement": "n/a", "cka": "n/a"}


def test_cka_is_a_similarity_its_sign_flips():
    falling = {0: [0.99, 0.9, 0.8, 0.7, 0.6], 1: [0.98, 0.95, 0.7, 0.65, 0.5]}
    summary = summary_table(_ladder(falling, "cka"))
    row = _row(summary, "cka")
    assert row.sign == -1 and row.rho_seed0 == pytest.approx(-1.0) and row.effect == pytest.approx(1.0)
    assert row.verdict == "supported" and row.follows_start_loss == pytest.approx(1.0)
    rising = {s: v[::-1] for s, v in falling.items()}
    assert _row(summary_table(_ladder(rising, "cka")), "cka").verdict == "contradicted"


def test_a_shuffled_measure_with_spread_across_seeds_is_inconclusive():
    shuffled = {0: [0.1, 0.3, 0.2, 0.5, 0.4], 1: [0.5, 0.1, 0.4, 0.2, 0.3], 2: [0.3, 0.5, 0.1, 0.2, 0.4]}
    row = _row(summary_table(_ladder(shuffled)), "kernel_distance")
    assert [row[f"rho_seed{s}"] for s in range(3)] == pytest.approx([0.8, -0.3, -0.1])
    assert row.ci_low < 0 < row.ci_high and row.verdict == "inconclusive" and row.n_positive == 1
    assert row.effect == pytest.approx(0.4 / 3)


def test_a_measure_that_only_sets_the_same_task_apart_does_not_order_the_other_rungs():
    """Rung 0 below four equally far rungs in some order: the whole ladder's rho is positive, the rungs 1-4 say
    nothing (their order changes from seed to seed)."""
    step = {0: [0.1, 0.5, 0.4, 0.3, 0.2], 1: [0.1, 0.2, 0.3, 0.4, 0.5], 2: [0.1, 0.4, 0.2, 0.5, 0.3]}
    row = _row(summary_table(_ladder(step)), "kernel_distance")
    assert row.effect > 0 and row.effect_without_same_task == pytest.approx(0.0, abs=1e-12)
    assert row.verdict_without_same_task == "inconclusive"
    ordered = _row(summary_table(_ladder({0: [1, 2, 3, 4, 5], 1: [1, 2, 3, 5, 6]})), "kernel_distance")
    assert ordered.effect_without_same_task == pytest.approx(1.0) and ordered.verdict_without_same_task == "supported"


def test_validation_needs_the_different_tasks_ordered_and_more_than_the_loss_left():
    # rung 0 lowest in every seed (whole-ladder rho 0.8, 0.4, 0.6: supported), rungs 1-4 in no stable order
    step = {0: [1, 3, 2, 5, 4], 1: [1, 5, 2, 3, 4], 2: [1, 2, 5, 4, 3]}
    outcome = validation_outcome(summary_table(_ladder(step, start_loss=[0.5, 0.1, 0.4, 0.2, 0.3])))
    assert outcome["kernel_distance"] == "only separates the same task (rungs 1-4: inconclusive)"
    ordered = {0: [1, 2, 3, 4, 5], 1: [1, 2, 3, 5, 6], 2: [1, 3, 4, 5, 6]}
    outcome = validation_outcome(summary_table(_ladder(ordered)))  # the default start loss rises with the rung
    assert outcome["kernel_distance"] == "orders the ladder as the loss left to remove does (rank agreement 1.00)"


def test_the_training_quantities_are_read_like_the_measures():
    summary = summary_table(_ladder({0: [1, 2, 3, 4, 5], 1: [1, 2, 3, 5, 4]}))
    loss, epoch = _row(summary, "start_val_loss"), _row(summary, "best_epoch")
    assert loss.kind == epoch.kind == "training"
    assert loss.effect == pytest.approx(1.0) and loss.verdict == "supported"  # the start loss grows here
    assert epoch.effect == pytest.approx(-1.0) and epoch.verdict == "contradicted"  # best epoch falls: 6 - rung
    assert _row(summary, "kernel_distance").rho_seed1 == pytest.approx(0.9)


def test_validation_outcome_reads_a_saved_summary(tmp_path):
    summary = summary_table(_ladder({0: [1, 2, 3, 4, 5], 1: [1, 2, 3, 5, 4]}))
    summary.loc[summary.measure == "kernel_distance", "verdict"] = "n/a"
    summary.to_csv(tmp_path / "s.csv", index=False)
    loaded = pd.read_csv(tmp_path / "s.csv")  # "n/a" comes back as nan
    assert validation_outcome(loaded)["kernel_distance"] == "n/a" and validation_outcome(loaded)["cka"] == "n/a"


def test_one_seed_gives_no_interval_and_so_no_decision():
    row = _row(summary_table(_ladder({0: [1, 2, 3, 4, 5]})), "kernel_distance")
    assert row.effect == pytest.approx(1.0) and math.isnan(row.ci_low) and row.verdict == "inconclusive"


# ----------------------------------------------------------------------------- the start model


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before")  # no steps, on purpose
def test_start_val_loss_is_the_loss_fit_starts_from(tiny, monkeypatch, tmp_path, one_thread):
    """With its optimizer steps left out, ``fit``'s first validation loss is its start model's: it must be
    what ``ladder.start_val_loss`` computes (same weights, same calibrated output bias), on a dilated rung
    and with the head-bias calibration on."""
    from kneelib.nets import train
    from kneelib.nets.unet import UNet2D

    profile, ctx = tiny
    profile = profile.replace(head_bias=-3.0, max_epochs=1)
    rung = RUNGS[1]
    base = UNet2D(profile.depth, profile.base_filters, seed=7).state_dict()
    expected = ladder.start_val_loss(profile, ctx, rung, 0, base)
    monkeypatch.setattr(train, "train_epoch", lambda *args, **kwargs: 0.0)
    train_ds, val_ds = ladder.rung_datasets(profile, ctx, rung)
    result = train.fit(ladder.rung_config(profile, rung, 0), train_ds, val_ds, tmp_path, "h", base_state=base,
                       progress=False)
    assert result.history[0]["val_loss"] == pytest.approx(expected, abs=1e-6)
    plain = ladder.start_val_loss(profile.replace(head_bias=0.0), ctx, rung, 0, base)
    assert abs(plain - expected) > 1e-4  # the calibration changes the start model (the check is not vacuous)


# ----------------------------------------------------------------------------- 09 at the tiny profile


@pytest.mark.slow
def test_relatedness_notebook_at_tiny_profile(tmp_path, monkeypatch):
    """09 alone from empty outputs (``--only 09``, what ``make validate`` runs): the ladder's long table has one
    row per rung, measure, group and seed, the summary a verdict per measure and group that agrees with its
    own interval, and the figure is drawn."""
    from kneelib.nets.unet import layer_groups
    from kneelib.report import runner

    monkeypatch.setenv(paths.OUTPUTS_ENV, str(tmp_path))
    (executed,) = runner.reproduce("tiny", only=["09"], report=False)
    assert executed.stem == "09_relatedness"
    out = tmp_path / "tiny"
    table = pd.read_csv(out / registry.TABLES["known_relatedness"].path)
    assert list(table.columns) == relatedness.LONG_COLUMNS
    groups = [*layer_groups(3), "network"]
    assert len(table) == 1 * len(RUNGS) * len(relatedness.MEASURES) * len(groups)
    assert not table.duplicated(["seed", "rung", "measure", "group"]).any()
    assert set(table.group) == set(groups) and set(table.measure) == set(relatedness.MEASURES)
    assert table.value.notna().all() and (table[table.measure != "cka"].value > 0).all()
    assert table[table.measure == "cka"].value.between(-1.5, 1.01).all()
    summary_path = out / registry.TABLES["known_relatedness_summary"].path
    assert set(validation_outcome(pd.read_csv(summary_path)).values()) <= set(VERDICTS)  # "n/a" read as nan
    summary = pd.read_csv(summary_path, keep_default_na=False, na_values=[""])  # verdict "n/a" stays a string
    assert len(summary) == len(relatedness.MEASURES) * len(groups) + len(relatedness.TRAINING)
    assert summary.verdict.isin(VERDICTS).all()
    assert [verdict(r.ci_low, r.ci_high, r.effect) for r in summary.itertuples()] == list(summary.verdict)
    assert [verdict(r.ci_low_without_same_task, r.ci_high_without_same_task, r.effect_without_same_task)
            for r in summary.itertuples()] == list(summary.verdict_without_same_task)
    assert set(validation_outcome(summary)) == set(relatedness.MEASURES)
    assert (out / "results" / "known_relatedness.meta.json").exists()
    assert "Plotly.newPlot" in (out / f"{registry.FIGURES['known_relatedness'].path}.html").read_text()
    assert len(list((out / "models" / "relatedness" / "seed0").glob("*/best.pt"))) == len(RUNGS)
