"""kneelib.data.context: the data a profile trains on (subject subsets, the real-data root and its shapes)."""

from __future__ import annotations

import pytest

from kneelib.data import context, manifest


def test_subset_subjects_keeps_both_timepoints():
    records = manifest.split_records(manifest.iwoai_records(), "train")
    half = context.subset_subjects(records, 0.25, seed=0)
    assert len({r.subject for r in half}) == 15 and len(half) == 30
    assert context.subset_subjects(records, 0.25, seed=0) == half
    assert context.subset_subjects(records, 0.25, seed=1) != half
    assert len(context.subset_subjects(records, 0.001, seed=0)) == 2
    with pytest.raises(ValueError, match="fraction 0"):
        context.subset_subjects(records, 0, seed=0)


def test_missing_real_data_root_is_named(tmp_path):
    from kneelib.core.profiles import get_profile

    with pytest.raises(FileNotFoundError, match="nowhere"):
        context.prepare_data(get_profile("tiny"), tmp_path / "nowhere")


def test_real_data_of_another_shape_is_refused_naming_the_shapes(tmp_path):
    from kneelib.core.profiles import get_profile
    from kneelib.data.phantoms import make_dataset

    make_dataset(tmp_path, {"train": 1, "valid": 1, "test": 1}, (16, 16, 4), seed=1, workers=1)
    with pytest.raises(ValueError, match=r"6 of 6 scans do not have profile 'tiny' volume_shape=\[48, 48, 8\] "
                                         r"\(scan .* is \[16, 16, 4\]\).*--set volume_shape=\[16, 16, 4\]"):
        context.prepare_data(get_profile("tiny"), tmp_path)
    ctx = context.prepare_data(get_profile("tiny", volume_shape=[16, 16, 4], slice_size=16), tmp_path)
    assert ctx.source == "real" and len(ctx.records) == 6
