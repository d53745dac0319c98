"""The SKM-TEA v1.0.0 reader on hand-built files, every bad input it refuses, and the SKM-TEA phantom writer."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from kneelib.data import iwoai, phantoms, phantoms_skmtea, skmtea
from kneelib.data.iwoai import DataError
from kneelib.data.manifest import read_manifest
from kneelib.names import ALL_TISSUES, TISSUE_LABELS

SHAPE = (12, 10, 5)
# One box per SKM-TEA channel (rows, cols, slices), each with its own voxel count, channels 2 and 3 overlapping
# in 3 voxels: any wrong channel mapping (the IWOAI order, say) or a sum instead of a union changes a count.
BOXES = {
    0: (slice(5, 8), slice(0, 10), slice(0, 5)),   # patellar cartilage: 150
    1: (slice(0, 2), slice(0, 10), slice(0, 5)),   # femoral cartilage: 100
    2: (slice(3, 5), slice(0, 4), slice(1, 5)),    # medial tibial cartilage: 32
    3: (slice(2, 4), slice(0, 3), slice(0, 2)),    # lateral tibial cartilage: 12, 3 voxels shared with ch 2
    4: (slice(9, 12), slice(5, 10), slice(4, 5)),  # medial meniscus: 15
    5: (slice(8, 9), slice(0, 7), slice(0, 3)),    # lateral meniscus: 21
}
TISSUE_VOXELS = {"femoral_cartilage": 100, "tibial_cartilage": 41, "meniscus": 36, "medial_tibial_cartilage": 32,
                 "lateral_tibial_cartilage": 12, "patellar_cartilage": 150, "medial_meniscus": 15,
                 "lateral_meniscus": 21}
# The hand-built folder: split file -> scans (scan id, subject id, depth, orientation of the last axis).
SCANS = {"train": [("MTR_001", 10, 5, "LR"), ("MTR_002", 11, 4, "LR")],
         "val": [("MTR_003", 12, 5, "RL")],
         "test": [("MTR_004", 13, 6, "LR")]}
SPACING = [0.3125, 0.35, 0.8]  # unequal in-plane, so a reordered spacing shows


def make_seg(shape=SHAPE, channels=6) -> np.ndarray:
    seg = np.zeros((*shape, channels), dtype=np.uint8)
    for c, box in BOXES.items():
        if c < channels:
            seg[(*box, c)] = 1
    return seg


def make_echoes(shape=SHAPE, seed=0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 3000, size=shape).astype(np.int16), rng.integers(0, 1500, size=shape).astype(np.int16))


def write_scan(root: Path, scan_id: str, depth: int = 5, drop: tuple[str, ...] = (), **datasets) -> Path:
    """``image_files/{scan_id}.h5`` with echo1, echo2 and seg (hand-built, or as given in ``datasets``)."""
    shape = (*SHAPE[:2], depth)
    echo1, echo2 = make_echoes(shape, seed=depth)
    arrays = {"echo1": echo1, "echo2": echo2, "seg": make_seg(shape)} | datasets
    path = root / "image_files" / f"{scan_id}.h5"
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        for key, array in arrays.items():
            if key not in drop:
                f.create_dataset(key, data=array)
        f.create_dataset("stats/rss/mean", data=1.0)
    return path


def image_entry(i: int, scan_id: str, subject: int, depth: int, last_axis: str = "LR") -> dict:
    return {"id": i, "file_name": f"{scan_id}.h5", "msp_id": f"{subject:07d}_V00",
            "msp_file_name": f"{subject:07d}_V00.h5", "scan_id": scan_id, "subject_id": subject, "timepoint": 0,
            "voxel_spacing": list(SPACING), "matrix_shape": [*SHAPE[:2], depth], "orientation": ["SI", "AP", last_axis],
            "num_echoes": 2, "inspected": True}


def write_annotation(root: Path, stem: str, images: list[dict], drop: tuple[str, ...] = ()) -> Path:
    data = {"info": {"version": "v1.0.0"}, "categories": [], "tissues": [], "images": images, "annotations": []}
    path = skmtea.annotation_path(root, stem)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({k: v for k, v in data.items() if k not in drop}))
    return path


def entries(stem: str) -> list[dict]:
    return [image_entry(i, s, subj, depth, axis) for i, (s, subj, depth, axis) in enumerate(SCANS[stem], start=1)]


@pytest.fixture
def folder(tmp_path) -> Path:
    """A hand-built SKM-TEA folder: 2 train scans (depths 5 and 4), 1 val (RL), 1 test (depth 6)."""
    for stem, scans in SCANS.items():
        for scan_id, _, depth, _ in scans:
            write_scan(tmp_path, scan_id, depth)
        write_annotation(tmp_path, stem, entries(stem))
    return tmp_path


def record(root: Path, scan_id: str):
    return next(r for r in skmtea.read_records(root) if r.scan_id == scan_id)


# ------------------------------------------------------------------------ the reader


def test_records_from_the_annotations(folder):
    records = skmtea.read_records(folder)
    assert [(r.scan_id, r.split, r.subject, r.timepoint) for r in records] == [
        ("MTR_001", "train", "10", "V00"), ("MTR_002", "train", "11", "V00"),
        ("MTR_003", "valid", "12", "V00"), ("MTR_004", "test", "13", "V00")]
    for r in records:
        assert r.image == r.seg == f"image_files/{r.scan_id}.h5"
        assert r.spacing_mm == tuple(SPACING)
        assert (r.sha256_image, r.sha256_seg) == ("", "")


def test_looks_like_and_tissues_present(folder, tmp_path_factory):
    assert skmtea.looks_like(folder)
    iwoai_root = tmp_path_factory.mktemp("iwoai")
    phantoms.make_dataset(iwoai_root, {"train": 1, "valid": 1, "test": 1}, (16, 16, 4), seed=1, workers=1)
    assert not skmtea.looks_like(iwoai_root)
    assert not skmtea.looks_like(tmp_path_factory.mktemp("empty"))
    assert skmtea.FORMAT == "skm-tea"
    assert skmtea.tissues_present(folder) == ALL_TISSUES  # all six channels: every tissue of the vocabulary


def test_image_is_rss_by_default_or_one_echo(folder):
    r = record(folder, "MTR_001")
    echo1, echo2 = make_echoes(SHAPE, seed=5)
    rss = skmtea.read_image(r, folder)
    assert rss.dtype == np.float32 and rss.shape == SHAPE
    assert np.allclose(rss, np.sqrt(echo1.astype(np.float64) ** 2 + echo2.astype(np.float64) ** 2), rtol=1e-6)
    assert np.array_equal(skmtea.read_image(r, folder, echo="echo1"), echo1.astype(np.float32))
    assert np.array_equal(skmtea.read_image(r, folder, echo="echo2"), echo2.astype(np.float32))
    with pytest.raises(ValueError, match="echo='echo3'"):
        skmtea.read_image(r, folder, echo="echo3")
    with pytest.raises(ValueError, match="echo='both'"):
        skmtea.read_records(folder, echo="both")


def test_rss_does_not_overflow_int16(folder):
    # Squared as stored (int16), 30000^2 would wrap around.
    big = np.full(SHAPE, 30000, dtype=np.int16)
    write_scan(folder, "MTR_001", echo1=big, echo2=big)
    assert skmtea.read_image(record(folder, "MTR_001"), folder) == pytest.approx(np.full(SHAPE, 30000 * 2 ** 0.5))


def test_masks_follow_the_skmtea_channel_order(folder):
    r = record(folder, "MTR_001")
    masks = skmtea.read_tissue_masks(r, folder)
    assert list(masks) == list(ALL_TISSUES)
    assert {t: int(m.sum()) for t, m in masks.items()} == TISSUE_VOXELS
    assert all(m.dtype == np.bool_ and m.shape == SHAPE for m in masks.values())
    femoral = np.zeros(SHAPE, dtype=bool)
    femoral[BOXES[1]] = True
    assert np.array_equal(masks["femoral_cartilage"], femoral)
    # The same labels read in IWOAI channel order give other tissues: this test tells the orders apart.
    as_iwoai = iwoai.seg_to_tissues(make_seg())
    assert {t: int(m.sum()) for t, m in as_iwoai.items()} != TISSUE_VOXELS
    some = skmtea.read_tissue_masks(r, folder, ["M", "patellar_cartilage"])
    assert list(some) == ["meniscus", "patellar_cartilage"]
    assert [int(m.sum()) for m in some.values()] == [36, 150]


def test_label_map_in_names():
    assert TISSUE_LABELS["skm-tea"]["femoral_cartilage"] == (1,)
    assert TISSUE_LABELS["skm-tea"]["tibial_cartilage"] == (2, 3)
    assert TISSUE_LABELS["skm-tea"]["patellar_cartilage"] == (0,)
    assert TISSUE_LABELS["skm-tea"]["medial_meniscus"] == (4,)


def test_validate_scan_accepts_scans_of_any_depth(folder):
    shapes = {r.scan_id: skmtea.validate_scan(r, folder) for r in skmtea.read_records(folder)}
    assert shapes == {"MTR_001": (12, 10, 5), "MTR_002": (12, 10, 4), "MTR_003": (12, 10, 5), "MTR_004": (12, 10, 6)}
    r = record(folder, "MTR_002")
    assert skmtea.read_image(r, folder).shape == (12, 10, 4)
    assert skmtea.read_tissue_masks(r, folder)["femoral_cartilage"].shape == (12, 10, 4)


def test_one_echo_needs_only_that_echo(folder):
    write_scan(folder, "MTR_001", drop=("echo2",))
    r = record(folder, "MTR_001")
    assert skmtea.validate_scan(r, folder, echo="echo1") == SHAPE
    assert skmtea.read_image(r, folder, echo="echo1").shape == SHAPE


# ------------------------------------------------------------------------ bad inputs, one test each


def _error(call) -> str:
    with pytest.raises(DataError) as e:
        call()
    return str(e.value)


def _scan_error(folder: Path, scan_id: str = "MTR_001", **options) -> str:
    r = record(folder, scan_id)
    return _error(lambda: skmtea.validate_scan(r, folder, **options))


def test_scan_listed_but_absent(folder):
    (folder / "image_files" / "MTR_003.h5").unlink()
    msg = _error(lambda: skmtea.read_records(folder))
    assert str(skmtea.annotation_path(folder, "val")) in msg and "'MTR_003.h5'" in msg and "does not exist" in msg


@pytest.mark.parametrize("key", ["echo1", "echo2", "seg"])
def test_missing_dataset(folder, key):
    path = write_scan(folder, "MTR_001", drop=(key,))
    msg = _scan_error(folder)
    assert str(path) in msg and f"no dataset {key!r}" in msg


def test_missing_echo_when_read(folder):
    path = write_scan(folder, "MTR_001", drop=("echo2",))
    msg = _error(lambda: skmtea.read_image(record(folder, "MTR_001"), folder))
    assert str(path) in msg and "'echo2'" in msg


def test_seg_without_six_channels(folder):
    path = write_scan(folder, "MTR_001", seg=make_seg(channels=5))
    msg = _scan_error(folder)
    assert str(path) in msg and "5 channels" in msg and "(12, 10, 5, 5)" in msg
    msg = _error(lambda: skmtea.read_tissue_masks(record(folder, "MTR_001"), folder))
    assert str(path) in msg and "5 channels" in msg


def test_image_and_mask_of_different_shapes(folder):
    path = write_scan(folder, "MTR_001", seg=make_seg((12, 10, 4)))
    msg = _scan_error(folder)
    assert str(path) in msg and "(12, 10, 4, 6)" in msg and "(12, 10, 5)" in msg


def test_echoes_of_different_shapes(folder):
    path = write_scan(folder, "MTR_001", echo2=make_echoes((12, 10, 4))[1])
    msg = _scan_error(folder)
    assert str(path) in msg and "(12, 10, 5)" in msg and "(12, 10, 4)" in msg


@pytest.mark.parametrize("value,count", [(np.nan, "1 NaN and 0 inf"), (np.inf, "0 NaN and 1 inf")])
def test_nan_or_inf(folder, value, count):
    echo1 = make_echoes()[0].astype(np.float32)
    echo1[3, 4, 2] = value
    path = write_scan(folder, "MTR_001", echo1=echo1)
    for msg in (_scan_error(folder), _error(lambda: skmtea.read_image(record(folder, "MTR_001"), folder))):
        assert str(path) in msg and "'echo1'" in msg and count in msg
    # Values are read only when asked: the metadata check passes.
    assert skmtea.validate_scan(record(folder, "MTR_001"), folder, check_values=False) == SHAPE


def test_labels_not_one_hot(folder):
    seg = make_seg()
    seg[0, 0, 0, 2] = 3
    path = write_scan(folder, "MTR_001", seg=seg)
    msg = _scan_error(folder)
    assert str(path) in msg and "values [3]" in msg


def test_not_an_hdf5_file(folder):
    path = folder / "image_files" / "MTR_001.h5"
    path.write_text("not hdf5")
    msg = _scan_error(folder)
    assert str(path) in msg and "not a readable HDF5" in msg


def test_split_with_no_scans(folder):
    path = write_annotation(folder, "test", [])
    msg = _error(lambda: skmtea.read_records(folder))
    assert str(path) in msg and "no scans" in msg


def test_subject_in_two_splits(folder):
    path = write_annotation(folder, "test", [image_entry(1, "MTR_004", 10, 6)])  # subject 10 is in train
    msg = _error(lambda: skmtea.read_records(folder))
    assert str(path) in msg and "subject_id '10'" in msg and str(skmtea.annotation_path(folder, "train")) in msg
    assert "'test'" in msg and "'train'" in msg


def test_scan_listed_twice(folder):
    path = write_annotation(folder, "test", [image_entry(1, "MTR_003", 13, 5)])
    msg = _error(lambda: skmtea.read_records(folder))
    assert str(path) in msg and "'MTR_003' is listed twice" in msg


def test_malformed_annotation(folder):
    path = skmtea.annotation_path(folder, "val")
    path.write_text('{"info": {}, "images": [')
    msg = _error(lambda: skmtea.read_records(folder))
    assert str(path) in msg and "not a readable JSON" in msg


def test_missing_annotation(folder):
    path = skmtea.annotation_path(folder, "train")
    path.unlink()
    msg = _error(lambda: skmtea.read_records(folder))
    assert str(path) in msg and "not found" in msg


@pytest.mark.parametrize("key", ["images", "annotations", "info"])
def test_missing_top_level_key(folder, key):
    path = write_annotation(folder, "val", entries("val"), drop=(key,))
    msg = _error(lambda: skmtea.read_records(folder))
    assert str(path) in msg and f"missing top-level key(s) [{key!r}]" in msg


def test_top_level_not_an_object(folder):
    path = skmtea.annotation_path(folder, "val")
    path.write_text("[]")
    msg = _error(lambda: skmtea.read_records(folder))
    assert str(path) in msg and "list" in msg


@pytest.mark.parametrize("field,value,shown", [
    ("voxel_spacing", None, "lacks field(s) ['voxel_spacing']"),
    ("subject_id", None, "lacks field(s) ['subject_id']"),
    ("voxel_spacing", [0.3125, 0.3125], "voxel_spacing [0.3125, 0.3125]"),
    ("voxel_spacing", [0.3125, 0.0, 0.8], "voxel_spacing [0.3125, 0.0, 0.8]"),
    ("timepoint", "V00", "timepoint 'V00'"),
    ("orientation", ["LR", "AP", "SI"], "orientation ['LR', 'AP', 'SI']"),
    ("file_name", "../MTR_003.h5", "file_name '../MTR_003.h5'"),
    ("scan_id", "", "scan_id ''"),
])
def test_bad_entry(folder, field, value, shown):
    entry = entries("val")[0]
    if value is None:
        del entry[field]
    else:
        entry[field] = value
    path = write_annotation(folder, "val", [entry])
    msg = _error(lambda: skmtea.read_records(folder))
    assert str(path) in msg and "images[0]" in msg and shown in msg


# ------------------------------------------------------------------------ the phantom writer

TINY = (48, 48, 8)
FEW = {"train": 2, "valid": 1, "test": 1}


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    """The same phantoms as an IWOAI folder and as a SKM-TEA folder: (iwoai root, skm-tea root)."""
    iwoai_root, skm_root = tmp_path_factory.mktemp("iwoai"), tmp_path_factory.mktemp("skmtea")
    phantoms.make_dataset(iwoai_root, FEW, TINY, seed=5, workers=1)
    assert phantoms_skmtea.write_skmtea_dataset(skm_root, FEW, TINY, seed=5) == skm_root
    return iwoai_root, skm_root


def test_phantom_folder_reads_as_skmtea(both):
    _, root = both
    assert skmtea.looks_like(root)
    records = skmtea.read_records(root)
    assert [r.scan_id for r in records] == [f"MTR_{i:03d}" for i in range(1, 9)]
    assert [r.split for r in records] == ["train"] * 4 + ["valid"] * 2 + ["test"] * 2
    # Two timepoints per subject: scans 1-2 are subject 1, 3-4 subject 2, ...
    assert [(r.subject, r.timepoint) for r in records[:4]] == [("1", "V00"), ("1", "V01"), ("2", "V00"), ("2", "V01")]
    assert all(r.spacing_mm == pytest.approx(phantoms.phantom_spacing_mm(TINY)) for r in records)
    val = json.loads(skmtea.annotation_path(root, "val").read_text())
    assert set(val) == set(skmtea.TOP_KEYS)
    assert val["images"][1]["matrix_shape"] == list(TINY) and val["images"][1]["msp_id"] == "0000003_V01"
    with h5py.File(root / records[0].image, "r") as f:
        assert f["echo1"].dtype == np.int16 and f["echo2"].dtype == np.int16 and f["echo1"].shape == TINY
        assert f["seg"].dtype == np.uint8 and f["seg"].shape == (*TINY, 6)
        assert "stats/rss/mean" in f
    assert not list(root.rglob(".*tmp*")), "temporary files left behind"


def test_phantom_round_trip_matches_the_iwoai_phantoms(both):
    iwoai_root, root = both
    pairs = list(zip(read_manifest(iwoai_root / "manifest.csv"), skmtea.read_records(root), strict=True))
    for iw, skm in pairs:
        assert (iw.split, iw.timepoint) == (skm.split, skm.timepoint)
        assert skmtea.validate_scan(skm, root) == TINY
        expected = {t: int(m.sum()) for t, m in iwoai.read_tissue_masks(iwoai_root / iw.seg).items()}
        got = {t: int(m.sum()) for t, m in skmtea.read_tissue_masks(skm, root).items()}
        assert got == expected and min(got.values()) > 0, iw.scan_id
        # Every label voxel in place, not just the counts.
        masks = skmtea.read_tissue_masks(skm, root, ["F", "TL", "MM"])
        for t, m in iwoai.read_tissue_masks(iwoai_root / iw.seg, ["F", "TL", "MM"]).items():
            assert np.array_equal(masks[t], m)
        image = iwoai.read_image(iwoai_root / iw.image)
        rss = skmtea.read_image(skm, root)
        scale = phantoms_skmtea.INT16_PEAK / image.max()
        assert np.abs(rss - image * scale).max() <= 0.5 * 2 ** 0.5 + 1e-3
    # The subjects group as in the IWOAI folder: the same scans share a subject.
    assert len({(iw.subject, skm.subject) for iw, skm in pairs}) == len({iw.subject for iw, _ in pairs})


def test_phantom_echoes_split_the_image():
    image = np.array([[[0.0, 0.5, 1.0, 2.0]]], dtype=np.float32)
    echo1, echo2 = phantoms_skmtea.split_echoes(image)
    rss = np.hypot(echo1.astype(np.float64), echo2.astype(np.float64))
    assert np.abs(rss - image * 15000).max() <= 0.71  # peak 2.0 -> 30000
    # echo2 / echo1 runs from 0.2 (dark) to 0.8 (the brightest voxel).
    assert echo2[0, 0, 3] / echo1[0, 0, 3] == pytest.approx(0.8, rel=1e-3)
    assert echo2[0, 0, 1] / echo1[0, 0, 1] == pytest.approx(0.2 + 0.6 * 0.25, rel=1e-3)
    with pytest.raises(ValueError, match="not all zero"):
        phantoms_skmtea.split_echoes(np.zeros((2, 2, 2)))


def test_phantom_seg_channel_order():
    seg = np.eye(6, dtype=np.uint8)  # voxel i has IWOAI channel i
    out = phantoms_skmtea.iwoai_to_skmtea_seg(seg)
    # IWOAI 0 femoral -> SKM-TEA 1; 1 lateral tibial -> 3; 2 medial tibial -> 2; 3 patellar -> 0;
    # 4 lateral meniscus -> 5; 5 medial meniscus -> 4.
    assert [int(np.argmax(out[i])) for i in range(6)] == [1, 3, 2, 0, 5, 4]


def _echo1(path: Path) -> np.ndarray:
    with h5py.File(path, "r") as f:
        return f["echo1"][()]


def _mtimes(root: Path) -> dict:
    return {p: p.stat().st_mtime_ns for p in sorted(root.rglob("*")) if p.is_file()}


def test_phantom_writer_reuses_completes_and_replaces(tmp_path):
    small = {"train": 1, "valid": 1, "test": 1}
    phantoms_skmtea.write_skmtea_dataset(tmp_path, small, (16, 16, 4), seed=1)
    before = _mtimes(tmp_path)
    phantoms_skmtea.write_skmtea_dataset(tmp_path, small, (16, 16, 4), seed=1)
    assert _mtimes(tmp_path) == before  # reused untouched
    # Interrupted: a scan and the annotations are missing; the others are kept as they are.
    (tmp_path / "image_files" / "MTR_003.h5").unlink()
    skmtea.annotation_path(tmp_path, "val").unlink()
    phantoms_skmtea.write_skmtea_dataset(tmp_path, small, (16, 16, 4), seed=1)
    after = _mtimes(tmp_path)
    assert after[tmp_path / "image_files" / "MTR_001.h5"] == before[tmp_path / "image_files" / "MTR_001.h5"]
    assert len(skmtea.read_records(tmp_path)) == 6
    # Other parameters: the old scans go.
    first = tmp_path / "image_files" / "MTR_001.h5"
    old_echo = _echo1(first)
    phantoms_skmtea.write_skmtea_dataset(tmp_path, small, (16, 16, 4), seed=2)
    assert not np.array_equal(_echo1(first), old_echo)
    phantoms_skmtea.write_skmtea_dataset(tmp_path, {"train": 1, "valid": 1, "test": 1}, (16, 16, 4), seed=2)
    # Fewer subjects: the scans the new set lacks are removed.
    phantoms_skmtea.write_skmtea_dataset(tmp_path, {"train": 2, "valid": 1, "test": 1}, (16, 16, 4), seed=2)
    phantoms_skmtea.write_skmtea_dataset(tmp_path, small, (16, 16, 4), seed=2)
    assert [p.name for p in sorted((tmp_path / "image_files").glob("*.h5"))] == [f"MTR_00{i}.h5" for i in range(1, 7)]


def test_phantom_writer_refuses_real_data_and_bad_subjects(folder, tmp_path_factory):
    with pytest.raises(FileExistsError, match="not a phantom folder"):
        phantoms_skmtea.write_skmtea_dataset(folder, FEW, TINY, seed=1)
    assert skmtea.read_records(folder)  # left as it was
    with pytest.raises(ValueError, match="every split"):
        phantoms_skmtea.write_skmtea_dataset(tmp_path_factory.mktemp("x"), {"train": 2, "test": 1}, TINY, seed=1)

