"""Synthetic knee phantoms: IWOAI layout, determinism, label semantics, reuse, and the realism bar."""

from __future__ import annotations

import json
import os

import h5py
import numpy as np
import pytest

from kneelib.data import phantoms
from kneelib.data.iwoai import seg_to_tissues
from kneelib.data.manifest import file_sha256, read_manifest
from kneelib.names import ALL_TISSUES

TINY = (48, 48, 8)
SMALL = (64, 64, 12)
DEMO = (128, 128, 40)
FEW = {"train": 2, "valid": 1, "test": 1}


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float((a & b).sum()) / float(a.sum() + b.sum())


def _read(path):
    with h5py.File(path, "r") as f:
        assert list(f.keys()) == ["data"]
        return f["data"][()]


def _mtimes(root):
    return {p: p.stat().st_mtime_ns for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def small_scan():
    return phantoms.make_scan(SMALL, 2020, "train", 1, 0)


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("phantoms")
    return root, phantoms.make_dataset(root, FEW, TINY, seed=5, workers=1)


# ------------------------------------------------------------------------- one scan


def test_same_seed_same_arrays_other_seed_differs():
    im, seg = phantoms.make_scan(TINY, 3, "valid", 1, 1)
    im2, seg2 = phantoms.make_scan(TINY, 3, "valid", 1, 1)
    assert np.array_equal(im, im2) and np.array_equal(seg, seg2)
    other, _ = phantoms.make_scan(TINY, 4, "valid", 1, 1)
    assert not np.array_equal(im, other)
    neighbour, _ = phantoms.make_scan(TINY, 3, "valid", 2, 1)
    assert not np.array_equal(im, neighbour)


def test_make_volume_api():
    subject = phantoms.sample_subject(np.random.default_rng(1))
    im, seg = phantoms.make_volume(TINY, subject, timepoint=1, rng=7)
    assert im.shape == TINY and im.dtype == np.float32
    assert seg.shape == (*TINY, 6) and seg.dtype == np.uint8
    assert np.isfinite(im).all() and im.min() >= 0  # Rician magnitudes
    im2, _ = phantoms.make_volume(TINY, subject, timepoint=1, rng=np.random.default_rng(7))
    assert np.array_equal(im, im2)
    with pytest.raises(ValueError, match="timepoint=2"):
        phantoms.make_volume(TINY, subject, timepoint=2)
    with pytest.raises(ValueError, match="index=0"):
        phantoms.make_scan(TINY, 1, "train", 0, 0)
    with pytest.raises(ValueError, match="split='training'"):
        phantoms.make_scan(TINY, 1, "training", 1, 0)


def test_seg_binary_exclusive_and_semantic(small_scan):
    _, seg = small_scan
    assert set(np.unique(seg)) <= {0, 1}
    assert seg.sum(axis=-1).max() == 1  # one label per voxel
    volume = seg.reshape(-1, 6).sum(axis=0)
    assert all(volume[c] > 0 for c in (0, 1, 2, 4, 5)), volume
    assert volume[0] > volume[1] + volume[2] and volume[0] > volume[4] + volume[5]
    # Axis 2 runs lateral -> medial: lateral channels lie at lower slice indices.
    centre = [np.nonzero(seg[..., c])[2].mean() for c in range(6)]
    assert centre[1] < centre[2] and centre[4] < centre[5]
    # Axis 0 runs superior -> inferior: the femoral cartilage is above the tibial cartilage.
    rows = [np.nonzero(seg[..., c])[0].mean() for c in range(3)]
    assert rows[0] < min(rows[1], rows[2])


def test_tissues_in_most_joint_slices():
    _, seg = phantoms.make_scan(DEMO, 2020, "test", 2, 0)
    present = seg.any(axis=(0, 1))  # (D, 6)
    joint = present[:, [1, 2, 4, 5]].any(axis=1)
    for c in (0, 1, 2, 4, 5):
        side = present[:, c].sum() if c == 0 else present[:, c].sum() * 2  # a compartment is half the joint
        assert side >= 0.6 * joint.sum(), (c, present[:, c].sum(), joint.sum())


def test_every_tissue_of_the_vocabulary_is_labelled():
    # The phantoms write all six IWOAI channels, so a study of any tissue (patellar cartilage, a compartment)
    # has something to learn, in the tiny profile's small volumes too.
    for shape in (TINY, DEMO):
        _, seg = phantoms.make_scan(shape, 2020, "train", 1, 0)
        assert all(seg[..., c].any() for c in range(6)), shape
        masks = seg_to_tissues(seg)
        assert list(masks) == list(ALL_TISSUES)
        voxels = {t: int(m.sum()) for t, m in masks.items()}
        assert min(voxels.values()) > 0, voxels
        assert voxels["tibial_cartilage"] > max(voxels["medial_tibial_cartilage"], voxels["lateral_tibial_cartilage"])


def test_timepoints_overlap_strongly_but_differ():
    for index in (1, 2, 3):
        _, s0 = phantoms.make_scan(SMALL, 2020, "train", index, 0)
        _, s1 = phantoms.make_scan(SMALL, 2020, "train", index, 1)
        d = _dice(s0[..., 0] > 0, s1[..., 0] > 0)
        assert 0.7 < d < 1.0, d


def test_spacing():
    assert phantoms.phantom_spacing_mm((384, 384, 160)) == pytest.approx((140 / 384, 140 / 384, 0.7))
    assert phantoms.phantom_spacing_mm(DEMO) == pytest.approx((140 / 128, 140 / 128, 2.8))


# --------------------------------------------------------------------- the realism bar


@pytest.mark.parametrize("split,index,timepoint", [("train", 1, 0), ("valid", 2, 1)])
def test_no_intensity_window_finds_a_tissue(split, index, timepoint):
    im, seg = phantoms.make_scan(DEMO, 2020, split, index, timepoint)
    scores = phantoms.intensity_dice_by_tissue(im, seg, levels=64)
    assert set(scores) == {"femoral_cartilage", "tibial_cartilage", "meniscus"}
    assert all(v <= 0.5 for v in scores.values()), scores
    # ... yet the tissues are visible: cartilage is bright, menisci are dark, fluid is brightest.
    cartilage = im[seg[..., :3].any(axis=-1)].mean()
    meniscus = im[seg[..., 4:].any(axis=-1)].mean()
    assert cartilage > 2.5 * meniscus, (cartilage, meniscus)


def test_best_intensity_dice_on_known_cases():
    rng = np.random.default_rng(0)
    image = rng.normal(size=(40, 40, 10)).astype(np.float32)
    assert phantoms.best_intensity_dice(image, image > 1.0) == pytest.approx(1.0, abs=0.02)
    band = (image > -0.5) & (image < 0.5)  # a window, not a threshold, separates it
    assert phantoms.best_intensity_dice(image, band) == pytest.approx(1.0, abs=0.03)
    noise = rng.random(image.shape) < 0.3
    assert phantoms.best_intensity_dice(image, noise) < 0.5
    assert phantoms.best_intensity_dice(image, np.zeros(image.shape, bool)) == 0.0
    with pytest.raises(ValueError, match="differ"):
        phantoms.best_intensity_dice(image, noise[:, :, :5])


# ------------------------------------------------------------------------ the data set


def test_layout_files_and_manifest(tiny_set):
    root, manifest = tiny_set
    assert manifest == root / "manifest.csv"
    records = read_manifest(manifest)
    expected = [f"{s}_{i:03d}_{tp}" for s, n in FEW.items() for i in range(1, n + 1) for tp in ("V00", "V01")]
    assert [r.scan_id for r in records] == expected
    for r in records:
        split, number, timepoint = r.scan_id.split("_")
        assert (r.split, r.subject, r.timepoint) == (split, f"{split}_{number}", timepoint)
        assert r.image == f"{r.split}/{r.scan_id}.im" and r.seg == f"{r.split}/{r.scan_id}.seg"
        assert r.spacing_mm == pytest.approx((140 / 48, 140 / 48, 14.0), rel=1e-5)
        assert r.sha256_image == file_sha256(root / r.image) and r.sha256_seg == file_sha256(root / r.seg)
        im, seg = _read(root / r.image), _read(root / r.seg)
        assert im.dtype == np.float32 and im.shape == TINY
        assert seg.dtype == np.uint8 and seg.shape == (*TINY, 6)
    stored = json.loads((root / phantoms.PARAMS_FILE).read_text())
    assert stored == {"phantom_version": phantoms.PHANTOM_VERSION, "subjects": FEW, "shape": list(TINY),
                      "seed": 5}
    # The files hold exactly what make_scan makes.
    im, seg = phantoms.make_scan(TINY, 5, "test", 1, 1)
    assert np.array_equal(_read(root / "test/test_001_V01.im"), im)
    assert np.array_equal(_read(root / "test/test_001_V01.seg"), seg)
    assert not list(root.rglob(".*tmp*")), "temporary files left behind"


def test_reuse_then_regenerate(tmp_path):
    first = phantoms.make_dataset(tmp_path, FEW, TINY, seed=1, workers=1)
    before = _mtimes(tmp_path)
    assert phantoms.make_dataset(tmp_path, FEW, TINY, seed=1, workers=1) == first
    assert _mtimes(tmp_path) == before  # reused, nothing rewritten
    old = {r.scan_id: r.sha256_image for r in read_manifest(first)}
    phantoms.make_dataset(tmp_path, {"train": 1, "test": 1}, TINY, seed=2, workers=1)
    new = {r.scan_id: r.sha256_image for r in read_manifest(first)}
    assert set(new) == {"train_001_V00", "train_001_V01", "test_001_V00", "test_001_V01"}
    assert all(new[k] != old[k] for k in new)
    # Scans of the old parameters that the new set lacks are removed.
    assert not (tmp_path / "train" / "train_002_V00.im").exists()
    assert not (tmp_path / "valid" / "valid_001_V00.seg").exists()


def test_interrupted_run_is_completed(tmp_path):
    manifest = phantoms.make_dataset(tmp_path, FEW, TINY, seed=1, workers=1)
    (tmp_path / "valid" / "valid_001_V01.seg").unlink()
    kept = tmp_path / "train" / "train_001_V00.im"
    mtime = kept.stat().st_mtime_ns
    assert phantoms.make_dataset(tmp_path, FEW, TINY, seed=1, workers=1) == manifest
    assert kept.stat().st_mtime_ns == mtime  # finished scans are kept
    assert all(r.sha256_seg == file_sha256(tmp_path / r.seg) for r in read_manifest(manifest))


def test_workers_do_not_change_the_files(tmp_path, tiny_set, monkeypatch):
    monkeypatch.setattr(phantoms, "_POOL_MIN_VOXELS", 0)  # use the process pool even for tiny scans
    manifest = phantoms.make_dataset(tmp_path, FEW, TINY, seed=5, workers=2)
    assert read_manifest(manifest) == read_manifest(tiny_set[1])


def test_refuses_a_folder_that_is_not_a_phantom_set(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "train_001_V00.im").write_bytes(b"real data")
    with pytest.raises(FileExistsError, match="not a phantom folder"):
        phantoms.make_dataset(tmp_path, FEW, TINY)
    assert (tmp_path / "train" / "train_001_V00.im").read_bytes() == b"real data"


@pytest.mark.parametrize("kwargs,named", [
    ({"shape": (48, 48)}, "shape="),
    ({"shape": (8, 48, 8)}, "shape="),
    ({"shape": (48, 48, 2)}, "shape="),
    ({"shape": (48.0, 48, 8)}, "shape="),
    ({"subjects": {"train": 0}}, "subjects['train']=0"),
    ({"subjects": {"train": 2.5}}, "subjects['train']=2.5"),
    ({"subjects": {"training": 2}}, "'training'"),
    ({"subjects": {}}, "subjects={}"),
    ({"seed": -1}, "seed=-1"),
    ({"seed": 1.5}, "seed=1.5"),
    ({"workers": 0}, "workers=0"),
])
def test_bad_parameters_raise(tmp_path, kwargs, named):
    args = {"subjects": FEW, "shape": TINY, **kwargs}
    with pytest.raises(ValueError) as info:
        phantoms.make_dataset(tmp_path / "out", **args)
    assert named in str(info.value)
    assert not (tmp_path / "out").exists()


def test_tiny_set_in_process(tmp_path):
    # (its speed is measured in benchmarks/, not asserted here)
    phantoms.make_dataset(tmp_path, {"train": 3, "valid": 1, "test": 1}, TINY, workers=1)
    assert os.path.getsize(tmp_path / "manifest.csv") > 0
    assert len(list(tmp_path.glob("*/*.im"))) == 10
