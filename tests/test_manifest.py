"""The committed IWOAI 2019 manifest and read_manifest's checks."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from kneelib.core.paths import IWOAI_MANIFEST
from kneelib.data import manifest
from kneelib.data.manifest import ManifestError, read_manifest, write_manifest


@pytest.fixture(scope="module")
def records():
    return read_manifest(IWOAI_MANIFEST)


def test_committed_split_counts(records):
    assert len(records) == 176
    assert Counter(r.split for r in records) == {"train": 120, "valid": 28, "test": 28}
    subjects = {s: {r.subject for r in records if r.split == s} for s in manifest.SPLITS}
    assert {s: len(v) for s, v in subjects.items()} == {"train": 60, "valid": 14, "test": 14}
    assert not (subjects["train"] & subjects["valid"] or subjects["train"] & subjects["test"]
                or subjects["valid"] & subjects["test"])


def test_committed_names_and_paths(records):
    for r in records:
        m = re.fullmatch(r"(train|valid|test)_(\d{3})_V0([01])", r.scan_id)
        assert m, r.scan_id
        assert (m[1], f"{m[1]}_{m[2]}", f"V0{m[3]}") == (r.split, r.subject, r.timepoint)
        assert (r.image, r.seg) == (f"{r.split}/{r.scan_id}.im", f"{r.split}/{r.scan_id}.seg")
        assert r.spacing_mm == pytest.approx((140 / 384, 140 / 384, 0.7), rel=1e-5)
    # Every subject has both timepoints, numbered 001..N without gaps.
    for split, n in manifest.IWOAI_SUBJECTS.items():
        ids = sorted(r.scan_id for r in records if r.split == split)
        assert ids == sorted(f"{split}_{i:03d}_{tp}" for i in range(1, n + 1) for tp in ("V00", "V01"))


def test_committed_file_is_canonical(records):
    assert IWOAI_MANIFEST.read_text() == manifest.to_csv(manifest.iwoai_records())
    assert manifest.to_csv(records) == IWOAI_MANIFEST.read_text()


def test_round_trip(tmp_path):
    recs = manifest.iwoai_records({"train": 2, "valid": 1, "test": 1})
    write_manifest(recs, tmp_path / "m.csv")
    back = read_manifest(tmp_path / "m.csv")
    # The CSV keeps 6 significant digits of the spacing, so compare it approximately.
    assert [r.__dict__ | {"spacing_mm": None} for r in back] == [r.__dict__ | {"spacing_mm": None} for r in recs]
    for a, b in zip(back, recs, strict=True):
        assert a.spacing_mm == pytest.approx(b.spacing_mm, rel=1e-5)


def _rows(text: str) -> list[str]:
    return text.splitlines(keepends=True)


@pytest.fixture
def small_csv():
    return manifest.to_csv(manifest.iwoai_records({"train": 2, "valid": 1, "test": 1}))


def _edit_duplicate(text):
    rows = _rows(text)
    return "".join(rows + [rows[1]])


def _edit_subject_in_two_splits(text):
    # valid_001 V01 moved to train while V00 stays in valid.
    return text.replace("valid_001_V01,valid,", "valid_001_V01,train,")


def _edit_missing_column(text):
    rows = [",".join(r.rstrip("\n").split(",")[:-1]) + "\n" for r in _rows(text)]
    return "".join(rows)


def _edit_bad_spacing(text):
    return text.replace("0.364583", "abc", 1)


def _edit_zero_spacing(text):
    return text.replace(",0.7,", ",0,", 1)


def _edit_bad_split(text):
    return text.replace("test_001_V00,test,", "test_001_V00,tst,")


@pytest.mark.parametrize("edit, match", [
    (_edit_duplicate, "listed twice"),
    (_edit_subject_in_two_splits, "valid_001_V01.*names split 'valid'.*row says 'train'"),
    (_edit_missing_column, "sha256_seg"),
    (_edit_bad_spacing, "not a number"),
    (_edit_zero_spacing, "positive"),
    (_edit_bad_split, "tst"),
])
def test_read_manifest_rejects(tmp_path, small_csv, edit, match):
    path = tmp_path / "bad.csv"
    path.write_text(edit(small_csv))
    with pytest.raises(ManifestError, match=match) as info:
        read_manifest(path)
    assert "bad.csv" in str(info.value)


def test_read_manifest_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        read_manifest(tmp_path / "nope.csv")


def test_subject_in_two_splits_is_leakage_whatever_the_naming():
    from kneelib.data.manifest import ManifestError, ScanRecord, validate_records

    spacing = (0.36, 0.36, 0.7)
    records = [ScanRecord("knee7_baseline", "train", "knee7", "V00", "a.im", "a.seg", spacing),
               ScanRecord("knee7_followup", "test", "knee7", "V01", "b.im", "b.seg", spacing)]
    with pytest.raises(ManifestError, match="knee7.*both 'train' and 'test'"):
        validate_records(records)
    validate_records(records[:1])  # ids outside the IWOAI scheme are accepted as they are
