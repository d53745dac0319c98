"""nnU-Net raw folders: the reader on hand-built NIfTI files (labels, orientation, splits, every bad input)
and the phantoms written as an nnU-Net v2 folder (the same anatomy as the IWOAI-layout phantoms)."""

from __future__ import annotations

import itertools
import json
import re

import nibabel as nib
import numpy as np
import pytest

from kneelib.data import iwoai, nnunet, phantoms
from kneelib.data import nnunet_phantoms as nph
from kneelib.data.iwoai import DataError
from kneelib.names import OAIZIB_LABELS, TISSUE_LABELS

SHAPE = (6, 5, 4)          # (H, W, D) as the reader returns it
SPACING = (0.5, 0.6, 0.7)  # mm along those axes
# Hand-placed label counts: value -> voxels (OAIZIB-CM values: 2 femoral, 4 medial, 5 lateral tibial).
COUNTS = {2: 3, 4: 5, 5: 7, 1: 11, 3: 2}
TR = ["k1", "k2", "k3", "k4", "k5"]
TS = ["t1", "t2"]


def target_image() -> np.ndarray:
    """Distinct values in every voxel, so any wrong transpose or flip shows."""
    return np.arange(np.prod(SHAPE), dtype=np.float32).reshape(SHAPE)


def target_labels() -> np.ndarray:
    labels = np.zeros(SHAPE, dtype=np.uint8)
    start = 0
    for value, n in COUNTS.items():
        labels.flat[start:start + n] = value
        start += n
    return labels


def target_affine() -> np.ndarray:
    """Written by hand: axis 0 towards inferior (-z), axis 1 posterior (-y), axis 2 left (-x), in RAS+ mm."""
    s0, s1, s2 = SPACING
    return np.array([[0, 0, -s2, 10.0], [0, -s1, 0, 20.0], [-s0, 0, 0, 30.0], [0, 0, 0, 1]])


def stored(array: np.ndarray, perm=(0, 1, 2), flips=(False, False, False)) -> tuple[np.ndarray, np.ndarray]:
    """``array`` (target orientation) stored with storage axis i = target axis perm[i], reversed where
    flips[i]; the affine computed by hand, without nibabel's orientation code."""
    arr = np.transpose(array, perm)
    for i, f in enumerate(flips):
        if f:
            arr = np.flip(arr, i)
    base = target_affine()
    affine, index0 = np.eye(4), np.zeros(3)
    for i, (j, f) in enumerate(zip(perm, flips)):
        affine[:3, i] = base[:3, j] * (-1 if f else 1)
        if f:
            index0[j] = array.shape[j] - 1  # stored voxel 0 is the last one along target axis j
    affine[:3, 3] = base[:3, :3] @ index0 + base[:3, 3]
    return np.ascontiguousarray(arr), affine


def save(path, array, affine) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array, affine), path)


def make_folder(root, tr=TR, ts=TS, labels=OAIZIB_LABELS, perm=(2, 1, 0), flips=(True, True, True), **meta):
    """A tiny nnU-Net v2 raw folder, every case the same arrays, stored in ``perm``/``flips`` order."""
    image, affine = stored(target_image(), perm, flips)
    label, _ = stored(target_labels(), perm, flips)
    for folder, cases in (("imagesTr", tr), ("imagesTs", ts)):
        for case in cases:
            save(root / folder / f"{case}_0000.nii.gz", image, affine)
            save(root / nnunet.FOLDERS[folder] / f"{case}.nii.gz", label, affine)
    meta = {"channel_names": {"0": "DESS"}, "labels": labels, "numTraining": len(tr),
            "file_ending": ".nii.gz"} | meta
    (root / "dataset.json").write_text(json.dumps(meta))
    return root


@pytest.fixture
def folder(tmp_path):
    return make_folder(tmp_path / "raw")


def record_of(root, case, **options):
    return next(r for r in nnunet.read_records(root, **options) if r.scan_id == case)


def raises(match_file, *values, call, **kw):
    """Assert ``call(**kw)`` raises DataError whose message names ``match_file`` and each of ``values``."""
    with pytest.raises(DataError) as e:
        call(**kw)
    msg = str(e.value)
    assert str(match_file) in msg, msg
    for v in values:
        assert str(v) in msg, msg
    return msg


# ------------------------------------------------------------------------------- labels


def test_oaizib_labels_map_to_the_vocabulary_and_bones_are_listed_as_ignored(folder):
    mapping = nnunet.dataset_labels(folder)
    assert mapping.tissues == {"femoral_cartilage": (2,), "tibial_cartilage": (4, 5),
                               "medial_tibial_cartilage": (4,), "lateral_tibial_cartilage": (5,)}
    assert mapping.tissues == TISSUE_LABELS[nnunet.FORMAT]
    assert mapping.ignored == {"background": 0, "femur": 1, "tibia": 3}
    assert nnunet.tissues_present(folder) == ("femoral_cartilage", "tibial_cartilage",
                                              "medial_tibial_cartilage", "lateral_tibial_cartilage")


def test_v1_labels_value_to_name_read_as_v2(tmp_path):
    v1 = {str(v): k for k, v in OAIZIB_LABELS.items()}
    root = make_folder(tmp_path, labels=v1)
    assert nnunet.dataset_labels(root).tissues == TISSUE_LABELS["nnunet"]


@pytest.mark.parametrize("names, expected", [
    # case, underscores, hyphens and runs of spaces do not matter
    ({"Femoral_Cartilage": 1, "MEDIAL-tibial  cartilage": 2, "lateral_tibia_cartilage": 3},
     {"femoral_cartilage": (1,), "tibial_cartilage": (2, 3), "medial_tibial_cartilage": (2,),
      "lateral_tibial_cartilage": (3,)}),
    # meniscus = medial | lateral; an unsplit tibial cartilage stays one tissue
    ({"tibial cartilage": 1, "medial meniscus": 6, "lateral meniscus": 7, "patellar cartilage": 9},
     {"tibial_cartilage": (1,), "meniscus": (6, 7), "patellar_cartilage": (9,), "medial_meniscus": (6,),
      "lateral_meniscus": (7,)}),
    # one part only: no whole tissue is made of it
    ({"medial tibial cartilage": 4}, {"medial_tibial_cartilage": (4,)}),
])
def test_label_names_are_normalized_and_wholes_are_unions_of_both_parts(tmp_path, names, expected):
    root = make_folder(tmp_path, labels={"background": 0} | names)
    assert nnunet.dataset_labels(root).tissues == expected


def test_an_unknown_label_is_refused_not_guessed_and_label_map_names_it(tmp_path):
    root = make_folder(tmp_path, labels=OAIZIB_LABELS | {"osteophyte": 6, "PC": 7})
    msg = raises(root / "dataset.json", "'osteophyte': 6", "'PC': 7", call=nnunet.read_records, root=root)
    assert "label_map" in msg
    mapping = nnunet.dataset_labels(root, label_map={"osteophyte": "ignore", "7": "P"})
    assert mapping.tissues["patellar_cartilage"] == (7,)
    assert mapping.ignored["osteophyte"] == 6
    # by name, normalized; and an override wins over the known name
    mapping = nnunet.dataset_labels(root, label_map={"pc": "patellar_cartilage", "osteophyte": "ignore",
                                                     "Femur": "femoral_cartilage"})
    assert mapping.tissues["femoral_cartilage"] == (1, 2)
    with pytest.raises(ValueError, match="'nothing' names no label"):
        nnunet.dataset_labels(root, label_map={"nothing": "ignore"})


def test_masks_follow_the_dataset_json_values_not_the_iwoai_channel_order(folder):
    # Read as IWOAI channels (0 femoral, 1 lateral tibial, 2 medial tibial, ...) these counts would differ.
    masks = nnunet.read_tissue_masks(record_of(folder, "k1"), folder)
    assert {t: int(m.sum()) for t, m in masks.items()} == {
        "femoral_cartilage": 3, "tibial_cartilage": 12, "medial_tibial_cartilage": 5, "lateral_tibial_cartilage": 7}
    assert all(m.dtype == np.bool_ and m.shape == SHAPE for m in masks.values())
    np.testing.assert_array_equal(masks["femoral_cartilage"], target_labels() == 2)
    only = nnunet.read_tissue_masks(record_of(folder, "k1"), folder, ["T"])
    assert list(only) == ["tibial_cartilage"]


def test_a_tissue_the_data_does_not_label_is_refused(folder):
    raises(folder / "dataset.json", "meniscus", call=nnunet.read_tissue_masks,
           record=record_of(folder, "k1"), root=folder, tissues=["meniscus"])


# ----------------------------------------------------------------------------- orientation

ORDERS = [(perm, flips) for perm in itertools.permutations(range(3))
          for flips in [(False, False, False), (True, False, True), (True, True, True)]]


@pytest.mark.parametrize("perm, flips", ORDERS)
def test_any_storage_order_gives_back_the_same_anatomy_with_its_spacing(tmp_path, perm, flips):
    root = make_folder(tmp_path, perm=perm, flips=flips)
    record = record_of(root, "k2")
    np.testing.assert_allclose(record.spacing_mm, SPACING, rtol=1e-6)
    image = nnunet.read_image(record, root)
    assert image.dtype == np.float32 and image.flags.c_contiguous
    np.testing.assert_array_equal(image, target_image())
    np.testing.assert_array_equal(nnunet.read_labels(record, root), target_labels())
    assert nnunet.validate_scan(record, root) == SHAPE


def test_an_oblique_affine_takes_the_nearest_axes(tmp_path):
    image, affine = stored(target_image(), (2, 0, 1), (False, True, False))
    angle = np.radians(12)
    rot = np.eye(4)
    rot[:2, :2] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    root = make_folder(tmp_path, perm=(2, 0, 1), flips=(False, True, False))
    for f in list((root / "imagesTr").iterdir()) + list((root / "labelsTr").iterdir()):
        img = nib.load(f)
        save(f, np.asanyarray(img.dataobj), rot @ affine)
    record = record_of(root, "k1")
    np.testing.assert_array_equal(nnunet.read_image(record, root), target_image())
    np.testing.assert_allclose(record.spacing_mm, SPACING, rtol=1e-5)


# ---------------------------------------------------------------------------------- splits


def test_imagests_is_test_and_a_seeded_share_of_subjects_is_valid(tmp_path):
    tr = [f"c{i:02d}" for i in range(10)]
    root = make_folder(tmp_path, tr=tr)
    records = nnunet.read_records(root)
    by_split = {s: [r.scan_id for r in records if r.split == s] for s in ("train", "valid", "test")}
    assert by_split["test"] == TS
    assert len(by_split["valid"]) == 2 and len(by_split["train"]) == 8  # 0.2 of 10 subjects
    assert set(by_split["valid"]) | set(by_split["train"]) == set(tr)
    assert [r.split for r in records] == sorted((r.split for r in records), key=["train", "valid", "test"].index)
    assert nnunet.read_records(root) == records  # fixed for a seed
    others = {tuple(r.scan_id for r in nnunet.read_records(root, split_seed=s) if r.split == "valid")
              for s in range(1, 6)}
    assert len(others | {tuple(by_split["valid"])}) > 1
    assert sum(r.split == "valid" for r in nnunet.read_records(root, valid_fraction=0.5)) == 5
    rec = records[0]
    assert (rec.image, rec.seg) == (f"imagesTr/{rec.scan_id}_0000.nii.gz", f"labelsTr/{rec.scan_id}.nii.gz")


def test_default_subject_rule_keeps_oai_visits_of_a_subject_together(tmp_path):
    tr = [f"{s}_V0{v}" for s in ("9001", "9002", "9003", "9004", "9005") for v in (0, 1)]
    root = make_folder(tmp_path, tr=tr, ts=["9100_V00"])
    records = nnunet.read_records(root)
    r = next(r for r in records if r.scan_id == "9003_V01")
    assert (r.subject, r.timepoint) == ("9003", "V01")
    split_of = {}
    for r in records:
        assert split_of.setdefault(r.subject, r.split) == r.split
    plain = next(r for r in nnunet.read_records(make_folder(tmp_path / "b")) if r.scan_id == "k1")
    assert (plain.subject, plain.timepoint) == ("k1", "")


def test_subject_options_regex_and_function(tmp_path):
    tr = ["a-1", "a-2", "b-1", "b-2", "c-1"]
    root = make_folder(tmp_path, tr=tr, ts=["z-1"])
    by_regex = {r.scan_id: r.subject for r in nnunet.read_records(root, subject=r"(\w)-\d")}
    by_function = {r.scan_id: r.subject for r in nnunet.read_records(root, subject_of=lambda c: c[0])}
    assert by_regex == by_function == {c: c[0] for c in tr + ["z-1"]}
    raises(root / "imagesTr" / "a-1_0000.nii.gz", "'a-1'", call=nnunet.read_records, root=root, subject=r"x(.)")


# ------------------------------------------------------------------------------ bad inputs


def test_case_without_its_label_file(folder):
    (folder / "labelsTr" / "k3.nii.gz").unlink()
    raises(folder / "labelsTr" / "k3.nii.gz", "'k3'", call=nnunet.read_records, root=folder)


def test_label_file_without_its_image(folder):
    (folder / "imagesTs" / "t2_0000.nii.gz").unlink()
    raises(folder / "labelsTs" / "t2.nii.gz", "t2_0000.nii.gz", call=nnunet.read_records, root=folder)


def test_label_value_not_in_dataset_json(folder):
    path = folder / "labelsTr" / "k2.nii.gz"
    img = nib.load(path)
    labels = np.asanyarray(img.dataobj).copy()
    labels.flat[-4:] = 7
    save(path, labels, img.affine)
    record = record_of(folder, "k2")
    raises(path, "[7]", "{7: 4}", call=nnunet.validate_scan, record=record, root=folder)
    raises(path, "[7]", call=nnunet.read_tissue_masks, record=record, root=folder)


def test_label_values_that_are_not_integers(folder):
    path = folder / "labelsTr" / "k2.nii.gz"
    img = nib.load(path)
    labels = np.asanyarray(img.dataobj).astype(np.float32)
    labels.flat[0] = 2.5
    save(path, labels, img.affine)
    raises(path, "2.5", call=nnunet.read_labels, record=record_of(folder, "k2"), root=folder)


def test_image_and_label_of_different_shapes(folder):
    path = folder / "labelsTr" / "k1.nii.gz"
    img = nib.load(path)
    save(path, np.asanyarray(img.dataobj)[:-1], img.affine)
    image_shape = nib.load(folder / "imagesTr" / "k1_0000.nii.gz").shape
    label_shape = (image_shape[0] - 1, *image_shape[1:])
    raises(path, label_shape, image_shape, call=nnunet.validate_scan, record=record_of(folder, "k1"), root=folder)


def test_affines_that_disagree_beyond_the_tolerance(folder):
    path = folder / "labelsTr" / "k1.nii.gz"
    img = nib.load(path)
    moved = img.affine.copy()
    moved[0, 3] += 0.5  # half a millimetre
    save(path, np.asanyarray(img.dataobj), moved)
    record = record_of(folder, "k1")
    raises(path, "0.5 mm", call=nnunet.validate_scan, record=record, root=folder)
    assert nnunet.validate_scan(record, folder, affine_tol_mm=1.0) == SHAPE


@pytest.mark.parametrize("bad, words", [(np.nan, "1 NaN and 0 inf"), (np.inf, "0 NaN and 1 inf")])
def test_nan_or_inf_in_an_image(folder, bad, words):
    path = folder / "imagesTr" / "k4_0000.nii.gz"
    img = nib.load(path)
    image = img.get_fdata(dtype=np.float32)
    image.flat[7] = bad
    save(path, image, img.affine)
    record = record_of(folder, "k4")
    raises(path, words, call=nnunet.read_image, record=record, root=folder)
    raises(path, words, call=nnunet.validate_scan, record=record, root=folder)


def test_a_split_with_no_scans(tmp_path):
    root = make_folder(tmp_path / "a", ts=[])
    raises(root / "imagesTs", "'test'", call=nnunet.read_records, root=root)
    one = make_folder(tmp_path / "b", tr=["k1"])
    raises(one / "imagesTr", "1 subject", call=nnunet.read_records, root=one)
    same = make_folder(tmp_path / "c", tr=["s1_V00", "s1_V01"])  # one subject twice: no valid split
    raises(same / "imagesTr", "1 subject", call=nnunet.read_records, root=same)


def test_a_subject_in_two_splits(tmp_path):
    root = make_folder(tmp_path, tr=["9001_V00", "9002_V00", "9003_V00"], ts=["9002_V01"])
    raises(root / "imagesTs" / "9002_V01_0000.nii.gz", "'9002'", root / "imagesTr" / "9002_V00_0000.nii.gz",
           call=nnunet.read_records, root=root)


def test_missing_or_malformed_dataset_json(folder):
    path = folder / "dataset.json"
    path.unlink()
    raises(path, "missing", call=nnunet.read_records, root=folder)
    for text, value in [("{not json", "not valid JSON"), ('{"labels": []}', "[]"),
                        ('{"name": "x"}', "None"),
                        ('{"labels": {"background": 0, "cartilage": [1, 2]}}', "[1, 2]"),
                        ('{"labels": {"background": 0, "femoral cartilage": -2}}', "-2"),
                        ('{"labels": {"0": "background", "femoral cartilage": "2"}}', "'2'"),
                        ('{"labels": {"background": 0}, "file_ending": ".mha"}', "'.mha'")]:
        path.write_text(text)
        raises(path, value, call=nnunet.read_records, root=folder)


def test_numtraining_that_disagrees_with_imagestr(tmp_path):
    root = make_folder(tmp_path, numTraining=9)
    raises(root / "dataset.json", "numTraining is 9", "5 case(s)", call=nnunet.read_records, root=root)


@pytest.mark.parametrize("shape", [(4, 5), (4, 5, 6, 2)])
def test_an_image_that_is_not_3d(folder, shape):
    path = folder / "imagesTr" / "k5_0000.nii.gz"
    save(path, np.zeros(shape, np.float32), np.eye(4))
    raises(path, shape, call=nnunet.read_records, root=folder)


def test_a_trailing_axis_of_one_is_still_3d(folder):
    path = folder / "imagesTr" / "k5_0000.nii.gz"
    img = nib.load(path)
    save(path, img.get_fdata(dtype=np.float32)[..., None], img.affine)
    record = record_of(folder, "k5")
    np.testing.assert_array_equal(nnunet.read_image(record, folder), target_image())


def test_a_corrupt_file_is_named(folder):
    path = folder / "imagesTr" / "k2_0000.nii.gz"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DataError, match=re.escape(str(path))):
        nnunet.validate_scan(nnunet.ScanRecord("k2", "train", "k2", "", "imagesTr/k2_0000.nii.gz",
                                               "labelsTr/k2.nii.gz", SPACING), folder)


def test_a_second_channel_is_refused_unless_ignored(folder):
    second = folder / "imagesTr" / "k2_0001.nii.gz"
    second.write_bytes((folder / "imagesTr" / "k2_0000.nii.gz").read_bytes())
    raises(second, "channel 0001", "extra_channels='ignore'", call=nnunet.read_records, root=folder)
    records = nnunet.read_records(folder, extra_channels="ignore")
    assert [r.image for r in records if r.scan_id == "k2"] == ["imagesTr/k2_0000.nii.gz"]
    meta = json.loads((folder / "dataset.json").read_text())
    meta["channel_names"] = {"0": "DESS", "1": "T2"}
    (folder / "dataset.json").write_text(json.dumps(meta))
    raises(folder / "dataset.json", "'T2'", call=nnunet.read_records, root=folder, extra_channels="refuse")


def test_an_image_not_named_by_channel(folder):
    path = folder / "imagesTr" / "k9.nii.gz"
    path.write_bytes(b"")
    raises(path, "'k9.nii.gz'", call=nnunet.read_records, root=folder)


def test_unknown_options_and_bad_values_are_refused(folder):
    with pytest.raises(TypeError, match="skmtea_echo"):
        nnunet.read_records(folder, skmtea_echo="rss")
    with pytest.raises(ValueError, match="valid_fraction=1.0"):
        nnunet.read_records(folder, valid_fraction=1.0)


def test_looks_like(folder, tmp_path):
    assert nnunet.looks_like(folder)
    iwoai_like = tmp_path / "iwoai"
    (iwoai_like / "train").mkdir(parents=True)
    assert not nnunet.looks_like(iwoai_like)
    (folder / "dataset.json").unlink()
    assert not nnunet.looks_like(folder)


# -------------------------------------------------------------------------- phantom writer

TINY = (48, 48, 8)
FEW = {"train": 2, "valid": 1, "test": 1}


@pytest.fixture(scope="module")
def phantom_folder(tmp_path_factory):
    return nph.write_nnunet_dataset(tmp_path_factory.mktemp("nnunet") / "raw", FEW, TINY, 2020)


def test_phantom_folder_is_an_nnunet_v2_raw_folder_with_oaizib_labels(phantom_folder):
    meta = json.loads((phantom_folder / "dataset.json").read_text())
    assert meta["labels"] == {"background": 0, "femoral cartilage": 2, "medial tibial cartilage": 4,
                              "lateral tibial cartilage": 5}  # no bone masks: no femur, no tibia
    assert meta["numTraining"] == 6 and meta["file_ending"] == ".nii.gz" and meta["channel_names"] == {"0": "DESS"}
    assert sorted(f.name for f in (phantom_folder / "imagesTs").iterdir()) == [
        "test_001_V00_0000.nii.gz", "test_001_V01_0000.nii.gz"]
    img = nib.load(phantom_folder / "imagesTr" / "train_001_V00_0000.nii.gz")
    assert nib.aff2axcodes(img.affine) == ("R", "A", "S")  # slice (left-right) axis stored first
    assert img.shape == (TINY[2], TINY[1], TINY[0])
    assert nnunet.looks_like(phantom_folder)


def test_phantom_round_trip_equals_the_iwoai_phantom_scan_by_scan(phantom_folder, tmp_path):
    iwoai_root = phantoms.make_dataset(tmp_path / "iwoai", FEW, TINY, 2020).parent
    iwoai_records = {r.scan_id: r for r in phantoms.read_manifest(iwoai_root / phantoms.MANIFEST_FILE)}
    records = nnunet.read_records(phantom_folder)
    assert sorted(r.scan_id for r in records) == sorted(iwoai_records)
    assert {r.scan_id for r in records if r.split == "test"} == {"test_001_V00", "test_001_V01"}
    for r in records:
        ref = iwoai_records[r.scan_id]
        np.testing.assert_allclose(r.spacing_mm, phantoms.phantom_spacing_mm(TINY), rtol=1e-6)
        assert (r.subject, r.timepoint) == (ref.subject, ref.timepoint)
        masks = nnunet.read_tissue_masks(r, phantom_folder)
        expected = iwoai.read_tissue_masks(iwoai_root / ref.seg, list(masks))
        assert {t: int(m.sum()) for t, m in masks.items()} == {t: int(m.sum()) for t, m in expected.items()}
        assert all(np.array_equal(masks[t], expected[t]) for t in masks)
        assert masks["femoral_cartilage"].sum() > 0 and masks["lateral_tibial_cartilage"].sum() > 0
        np.testing.assert_array_equal(nnunet.read_image(r, phantom_folder), iwoai.read_image(iwoai_root / ref.image))
        assert nnunet.validate_scan(r, phantom_folder) == TINY


def test_phantom_folder_is_reused_replaced_and_never_overwrites_foreign_data(phantom_folder, tmp_path):
    mtimes = {p: p.stat().st_mtime_ns for p in phantom_folder.rglob("*") if p.is_file()}
    assert nph.write_nnunet_dataset(phantom_folder, FEW, TINY, 2020) == phantom_folder
    assert {p: p.stat().st_mtime_ns for p in phantom_folder.rglob("*") if p.is_file()} == mtimes

    other = tmp_path / "other"
    nph.write_nnunet_dataset(other, {"train": 2, "valid": 1, "test": 1}, TINY, 2020)
    (other / "imagesTr" / "valid_001_V01_0000.nii.gz").unlink()  # an interrupted run is completed
    nph.write_nnunet_dataset(other, FEW, TINY, 2020)
    assert (other / "imagesTr" / "valid_001_V01_0000.nii.gz").is_file()
    nph.write_nnunet_dataset(other, {"train": 2, "valid": 1, "test": 1}, TINY, 7)  # other seed: replaced
    assert not np.array_equal(nnunet.read_image(record_of(other, "train_001_V00"), other),
                              nnunet.read_image(record_of(phantom_folder, "train_001_V00"), phantom_folder))

    foreign = make_folder(tmp_path / "real")
    with pytest.raises(FileExistsError, match="not a phantom folder"):
        nph.write_nnunet_dataset(foreign, FEW, TINY, 2020)
