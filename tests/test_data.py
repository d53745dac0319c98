"""kneelib.data on small hand-built IWOAI-format files."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from kneelib import names
from kneelib.data import iwoai, slices
from kneelib.data.iwoai import DataError
from kneelib.data.manifest import file_sha256, scan_record
from kneelib.data.slices import SliceDataset
from kneelib.names import ALL_TISSUES, PAPER_TISSUES

# One box per IWOAI channel (rows, cols, slices), each with a different voxel count, and
# ch1/ch2 overlapping, so a wrong channel mapping or a sum instead of a union changes the counts.
# Patellar cartilage (ch3) must appear in its own mask only.
BOXES = {
    0: (slice(0, 2), slice(0, 10), slice(0, 5)),   # femoral: 2*10*5 = 100
    1: (slice(2, 4), slice(0, 3), slice(0, 2)),    # lateral tibial: 12
    2: (slice(3, 5), slice(0, 4), slice(1, 5)),    # medial tibial: 32, overlaps ch1 in 3 voxels
    3: (slice(5, 8), slice(0, 10), slice(0, 5)),   # patellar: 150, in no other tissue
    4: (slice(8, 9), slice(0, 7), slice(0, 3)),    # lateral meniscus: 21
    5: (slice(9, 12), slice(5, 10), slice(4, 5)),  # medial meniscus: 15
}
TISSUE_VOXELS = {"femoral_cartilage": 100, "tibial_cartilage": 41, "meniscus": 36, "medial_tibial_cartilage": 32,
                 "lateral_tibial_cartilage": 12, "patellar_cartilage": 150, "medial_meniscus": 15,
                 "lateral_meniscus": 21}


def make_seg(shape=(12, 10, 5)) -> np.ndarray:
    seg = np.zeros((*shape, 6), dtype=np.uint8)
    for c, box in BOXES.items():
        seg[(*box, c)] = 1
    return seg


def expected_masks(shape=(12, 10, 5)) -> dict[str, np.ndarray]:
    def box(*channels):
        m = np.zeros(shape, dtype=bool)
        for c in channels:
            m[BOXES[c]] = True
        return m
    return {"femoral_cartilage": box(0), "tibial_cartilage": box(1, 2), "meniscus": box(4, 5),
            "medial_tibial_cartilage": box(2), "lateral_tibial_cartilage": box(1), "patellar_cartilage": box(3),
            "medial_meniscus": box(5), "lateral_meniscus": box(4)}


def make_image(shape=(12, 10, 5), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).normal(100.0, 20.0, size=shape).astype(np.float32)


def write_h5(path: Path, array, key: str = "data") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.create_dataset(key, data=array)
    return path


def write_scan(root: Path, index: int = 1, image=None, seg=None, **record_fields):
    """Write one IWOAI-layout scan under ``root`` and return its ScanRecord."""
    record = scan_record("train", index, "V00")
    if record_fields:
        record = type(record)(**{**record.__dict__, **record_fields})
    write_h5(root / record.image, make_image() if image is None else image)
    write_h5(root / record.seg, make_seg() if seg is None else seg)
    return record


@pytest.fixture
def scan(tmp_path):
    root = tmp_path / "data"
    return write_scan(root), root


# ------------------------------------------------------------------------------ readers


def test_read_image_dtype_shape_values(scan):
    record, root = scan
    image = iwoai.read_image(root / record.image)
    assert image.dtype == np.float32 and image.shape == (12, 10, 5)
    np.testing.assert_array_equal(image, make_image())


def test_read_image_casts_integers(tmp_path):
    path = write_h5(tmp_path / "a.im", np.arange(24, dtype=np.int16).reshape(2, 3, 4))
    image = iwoai.read_image(path)
    assert image.dtype == np.float32 and image[1, 2, 3] == 23.0


def test_read_seg_and_tissue_mapping(scan):
    record, root = scan
    seg = iwoai.read_seg(root / record.seg)
    assert seg.dtype == np.uint8 and seg.shape == (12, 10, 5, 6)
    masks = iwoai.read_tissue_masks(root / record.seg)
    assert list(masks) == list(ALL_TISSUES)  # every tissue IWOAI labels, in the vocabulary's order
    for tissue, expected in expected_masks().items():
        assert masks[tissue].dtype == np.bool_ and masks[tissue].shape == (12, 10, 5)
        assert masks[tissue].sum() == TISSUE_VOXELS[tissue], tissue
        np.testing.assert_array_equal(masks[tissue], expected)
    patellar = np.zeros((12, 10, 5), bool)
    patellar[BOXES[3]] = True
    assert [t for t, m in masks.items() if (m & patellar).any()] == ["patellar_cartilage"]


def test_tissue_masks_of_chosen_tissues(scan):
    record, root = scan
    masks = iwoai.read_tissue_masks(root / record.seg, ["P", "lateral_tibial_cartilage", "T"])
    assert list(masks) == ["patellar_cartilage", "lateral_tibial_cartilage", "tibial_cartilage"]
    seg = make_seg()
    np.testing.assert_array_equal(masks["patellar_cartilage"], seg[..., 3] == 1)
    np.testing.assert_array_equal(masks["tibial_cartilage"], (seg[..., 1] | seg[..., 2]) == 1)
    np.testing.assert_array_equal(masks["lateral_tibial_cartilage"], seg[..., 1] == 1)
    with pytest.raises(ValueError, match="'Q'"):
        iwoai.seg_to_tissues(seg, ["F", "Q"])


def test_iwoai_labels_of_the_paper_tissues():
    # The paper's tissues must stay these unions: their masks, slice caches and nets depend on it.
    assert {t: names.tissue_labels(t) for t in PAPER_TISSUES} == {
        "femoral_cartilage": (0,), "tibial_cartilage": (1, 2), "meniscus": (4, 5)}
    assert names.SEG_CHANNELS == 6
    # a tissue of one IWOAI channel is the channel of that name
    single = {t: labels[0] for t, labels in names.TISSUE_LABELS[names.IWOAI].items() if len(labels) == 1}
    assert {t: names.SEG_CHANNEL_NAMES[c] for t, c in single.items()} == {t: t for t in single}
    assert len(single) == 6
    with pytest.raises(ValueError, match="'skm_tea'"):
        names.tissue_labels("F", "skm_tea")


def test_read_seg_accepts_float_and_bool_labels(tmp_path):
    for dtype in (np.float32, np.bool_):
        path = write_h5(tmp_path / f"{np.dtype(dtype).name}.seg", make_seg().astype(dtype))
        np.testing.assert_array_equal(iwoai.read_seg(path), make_seg())


# --------------------------------------------------------------------- preprocessing


def test_zscore():
    vol = make_image(seed=3) * 7 + 50
    z = iwoai.zscore(vol)
    assert z.dtype == np.float32 and z.shape == vol.shape
    assert abs(float(z.mean())) < 1e-5 and abs(float(z.std()) - 1) < 1e-5
    np.testing.assert_allclose(z, (vol - vol.mean()) / (vol.std() + 1e-8), rtol=1e-4, atol=1e-5)
    # A constant volume maps to zeros, not NaN, thanks to the epsilon.
    assert np.array_equal(iwoai.zscore(np.full((3, 3, 3), 5.0)), np.zeros((3, 3, 3), np.float32))


@pytest.mark.parametrize("shape, size", [((2, 1, 12, 10), 8), ((3, 2, 5, 5), 16), ((1, 1, 7, 9), 7)])
def test_resample_shapes(shape, size):
    x = torch.rand(shape)
    assert slices.resample_slices(x, size, "image").shape == (*shape[:2], size, size)
    m = (torch.rand(shape) > 0.5).to(torch.uint8)
    out = slices.resample_slices(m, size, "mask")
    assert out.shape == (*shape[:2], size, size) and out.dtype == torch.uint8
    assert set(out.unique().tolist()) <= {0, 1}


def test_resample_noop_returns_input():
    x = torch.rand(2, 1, 8, 8)
    assert slices.resample_slices(x, 8, "image") is x


def test_resample_image_bilinear_half_pixel():
    # align_corners=False: upsampling [0, 1] by 2 gives [0, .25, .75, 1]; align_corners=True would give thirds.
    x = torch.tensor([[0.0, 1.0], [0.0, 1.0]])[None, None]
    np.testing.assert_allclose(slices.resample_slices(x, 4, "image")[0, 0, 0].numpy(), [0, 0.25, 0.75, 1])
    const = torch.full((1, 1, 12, 10), 3.5)
    np.testing.assert_allclose(slices.resample_slices(const, 5, "image").numpy(), 3.5, rtol=1e-6)


def test_resample_mask_threshold():
    # 2x2 blocks with 0, 1, 2, 3 foreground pixels: area 0, .25, .5, .75 -> 0, 0, 1, 1 (ties are foreground).
    m = torch.zeros(4, 4, dtype=torch.uint8)
    m[0, 2] = 1
    m[2:4, 0] = 1
    m[2:4, 2] = 1
    m[2, 3] = 1
    out = slices.resample_slices(m[None, None], 2, "mask")[0, 0]
    assert out.tolist() == [[0, 0], [1, 1]]
    up = slices.resample_slices(torch.tensor([[1, 0], [0, 1]], dtype=torch.uint8)[None, None], 4, "mask")[0, 0]
    assert up.tolist() == [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]]


@pytest.mark.parametrize("args", [(torch.rand(1, 8, 8), 4, "image"), (torch.rand(1, 1, 8, 8), 0, "image"),
                                  (torch.rand(1, 1, 8, 8), 4, "nearest")])
def test_resample_bad_arguments(args):
    with pytest.raises(ValueError):
        slices.resample_slices(*args)


# ----------------------------------------------------------------------------- the cache


def test_cache_contents(scan, tmp_path):
    record, root = scan
    path = slices.build_slice_cache(record, root, tmp_path / "cache", 8)
    assert path == tmp_path / "cache" / "train_001_V00_s8.h5"
    image = make_image()
    with h5py.File(path, "r") as f:
        assert f["image"].shape == (5, 8, 8) and f["image"].dtype == np.float32
        assert f["masks"].shape == (5, len(ALL_TISSUES), 8, 8) and f["masks"].dtype == np.uint8
        assert list(f.attrs["tissues"]) == list(slices.CACHE_TISSUES) == list(ALL_TISSUES)
        assert tuple(f.attrs["shape"]) == (12, 10, 5) and f.attrs["slice_size"] == 8
        assert f.attrs["mean"] == pytest.approx(float(image.mean(dtype=np.float64)))
        assert f.attrs["std"] == pytest.approx(float(image.std(dtype=np.float64)))
        # Normalized at full resolution, then resampled.
        z = torch.from_numpy(iwoai.zscore(image).transpose(2, 0, 1).copy())[:, None]
        np.testing.assert_allclose(f["image"][()], slices.resample_slices(z, 8, "image")[:, 0].numpy(), atol=1e-5)
        m = np.stack([expected_masks()[t] for t in ALL_TISSUES]).transpose(3, 0, 1, 2).astype(np.uint8)
        np.testing.assert_array_equal(f["masks"][()], slices.resample_slices(torch.from_numpy(m), 8, "mask").numpy())


def test_cache_exact_at_native_size(tmp_path):
    root = tmp_path / "data"
    image, seg = make_image((12, 12, 5)), make_seg((12, 12, 5))
    record = write_scan(root, image=image, seg=seg)
    with h5py.File(slices.build_slice_cache(record, root, tmp_path / "cache", 12), "r") as f:
        np.testing.assert_array_equal(f["image"][()], iwoai.zscore(image).transpose(2, 0, 1))
        np.testing.assert_array_equal(f["masks"][:, 1], expected_masks((12, 12, 5))["tibial_cartilage"]
                                      .transpose(2, 0, 1))


def test_cache_reused_then_rebuilt_when_source_changes(scan, tmp_path):
    record, root = scan
    cache = tmp_path / "cache"
    path = slices.build_slice_cache(record, root, cache, 8)
    stamp = path.stat().st_mtime_ns, path.stat().st_ino
    assert slices.build_slice_cache(record, root, cache, 8) == path
    assert (path.stat().st_mtime_ns, path.stat().st_ino) == stamp  # reused, not rewritten

    new_image = make_image(seed=9) + 1000
    write_h5(root / record.image, new_image)  # same size: only the mtime tells it apart
    later = (root / record.image).stat().st_mtime_ns + 10**9
    os.utime(root / record.image, ns=(later, later))
    slices.build_slice_cache(record, root, cache, 8)
    assert path.stat().st_ino != stamp[1]
    with h5py.File(path, "r") as f:
        assert f.attrs["mean"] == pytest.approx(float(new_image.mean(dtype=np.float64)))
    assert sorted(p.name for p in cache.iterdir()) == ["train_001_V00_s8.h5"]  # no temp files left


def test_cache_rebuilt_when_its_tissues_differ(scan, tmp_path, monkeypatch):
    # A cache written for other tissues (an older vocabulary, a changed label map) is rebuilt, so no net
    # reads another tissue's channel.
    record, root = scan
    path = slices.build_slice_cache(record, root, tmp_path / "cache", 8)
    inode = path.stat().st_ino
    from kneelib.data import formats

    monkeypatch.setattr(formats, "tissues_present", lambda root, records: ("tibial_cartilage", "femoral_cartilage"))
    slices.build_slice_cache(record, root, tmp_path / "cache", 8)
    assert path.stat().st_ino != inode
    with h5py.File(path, "r") as f:  # the format's tissues, in vocabulary order
        assert list(f.attrs["tissues"]) == ["femoral_cartilage", "tibial_cartilage"] and f["masks"].shape[1] == 2
    ds = SliceDataset([record], root, "femoral_cartilage", 8, tmp_path / "cache", preload=True)
    femoral = torch.from_numpy(expected_masks()["femoral_cartilage"].transpose(2, 0, 1).copy()[:, None])
    np.testing.assert_array_equal(ds.masks.numpy(), slices.resample_slices(femoral.to(torch.uint8), 8, "mask").numpy())


def test_cache_rebuilt_when_damaged_and_per_slice_size(scan, tmp_path):
    record, root = scan
    cache = tmp_path / "cache"
    path = slices.build_slice_cache(record, root, cache, 8)
    path.write_bytes(b"garbage")
    slices.build_slice_cache(record, root, cache, 8)
    with h5py.File(path, "r") as f:
        assert f["image"].shape == (5, 8, 8)
    other = slices.build_slice_cache(record, root, cache, 4)
    assert other.name == "train_001_V00_s4.h5" and path.is_file()


def test_failed_cache_build_leaves_nothing(tmp_path):
    root, cache = tmp_path / "data", tmp_path / "cache"
    image = make_image()
    image[1, 1, 1] = np.nan
    record = write_scan(root, image=image)
    with pytest.raises(DataError, match="train_001_V00.im"):
        slices.build_slice_cache(record, root, cache, 8)
    assert not cache.exists() or not any(cache.iterdir())


def _cache_arrays(path: Path) -> dict[str, object]:
    with h5py.File(path, "r") as f:
        return {"image": f["image"][()], "masks": f["masks"][()],
                **{k: np.asarray(v).tolist() for k, v in f.attrs.items()}}


@pytest.fixture
def three_scans(tmp_path):
    root = tmp_path / "data"
    return [write_scan(root, i, make_image(seed=i), make_seg()) for i in (1, 2, 3)], root


def test_parallel_cache_build_matches_serial_bitwise(three_scans, tmp_path, monkeypatch):
    records, root = three_scans
    pools = []

    class CountedPool(slices.ProcessPoolExecutor):
        def __init__(self, *args, **kwargs):
            pools.append(kwargs["max_workers"])
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(slices, "ProcessPoolExecutor", CountedPool)
    monkeypatch.setattr(slices, "POOL_MIN_VOXELS", 0)
    parallel = slices.build_slice_caches(records, root, tmp_path / "parallel", 8, workers=2)
    assert pools == [2]  # the stale caches really went to two processes
    serial = slices.build_slice_caches(records, root, tmp_path / "serial", 8, workers=1)
    assert pools == [2]
    assert [p.name for p in parallel] == [f"train_00{i}_V00_s8.h5" for i in (1, 2, 3)]
    for a, b in zip(parallel, serial, strict=True):
        arrays_a, arrays_b = _cache_arrays(a), _cache_arrays(b)
        assert arrays_a.keys() == arrays_b.keys()
        for key in arrays_a:
            np.testing.assert_array_equal(arrays_a[key], arrays_b[key], err_msg=f"{a.name} {key}")
    assert not np.array_equal(_cache_arrays(parallel[0])["image"], _cache_arrays(parallel[1])["image"])
    # Nothing stale the second time: no pool at all.
    stamps = [p.stat().st_mtime_ns for p in parallel]
    slices.build_slice_caches(records, root, tmp_path / "parallel", 8, workers=2)
    assert pools == [2] and [p.stat().st_mtime_ns for p in parallel] == stamps


def test_parallel_cache_build_names_a_bad_scan_and_leaves_no_partial_cache(three_scans, tmp_path, monkeypatch):
    records, root = three_scans
    image = make_image(seed=2)
    image[1, 1, 1] = np.nan
    write_h5(root / records[1].image, image)
    monkeypatch.setattr(slices, "POOL_MIN_VOXELS", 0)
    with pytest.raises(DataError, match="train_002_V00.im"):
        slices.build_slice_caches(records, root, tmp_path / "cache", 8, workers=2)
    assert "train_002_V00_s8.h5" not in [p.name for p in (tmp_path / "cache").iterdir()]
    assert all(p.suffix == ".h5" for p in (tmp_path / "cache").iterdir())  # no temporary files left


@pytest.mark.parametrize("workers", [0, -1, 1.5, True])
def test_parallel_cache_build_bad_workers(scan, tmp_path, workers):
    record, root = scan
    with pytest.raises(ValueError, match="workers="):
        slices.build_slice_caches([record], root, tmp_path / "cache", 8, workers=workers)


# --------------------------------------------------------------------------- the dataset


@pytest.fixture
def two_scans(tmp_path):
    root = tmp_path / "data"
    a = write_scan(root, 1, make_image((12, 12, 5), seed=1), make_seg((12, 12, 5)))
    seg_b = make_seg((12, 12, 5))[:, :, 2:5]  # 3 slices
    b = write_scan(root, 2, make_image((12, 12, 3), seed=2), seg_b)
    return [a, b], root, tmp_path / "cache"


def test_dataset_length_index_and_items(two_scans):
    records, root, cache = two_scans
    ds = SliceDataset(records, root, "tibial_cartilage", 12, cache)
    assert len(ds) == 8 and ds.scan_ids == ("train_001_V00", "train_002_V00")
    assert ds.index[4] == ("train_001_V00", 4) and ds.locate(5) == ("train_002_V00", 0)
    assert ds.locate(-1) == ("train_002_V00", 2)
    tibial = expected_masks((12, 12, 5))["tibial_cartilage"]
    for i, (scan_id, k) in enumerate(ds.index):
        image, mask = ds[i]
        assert image.shape == mask.shape == (1, 12, 12)
        assert image.dtype == mask.dtype == torch.float32
        seed, offset = (1, 0) if scan_id == "train_001_V00" else (2, 2)
        vol = make_image((12, 12, 5 if seed == 1 else 3), seed=seed)
        np.testing.assert_array_equal(image[0].numpy(), iwoai.zscore(vol)[:, :, k])
        np.testing.assert_array_equal(mask[0].numpy(), tibial[:, :, k + offset].astype(np.float32))
    with pytest.raises(IndexError):
        ds[8]


@pytest.mark.parametrize("tissue", ALL_TISSUES)
def test_lazy_and_preload_agree(two_scans, tissue):
    records, root, cache = two_scans
    lazy = SliceDataset(records, root, tissue, 8, cache)
    pre = SliceDataset(records, root, tissue, 8, cache, preload=True)
    assert pre.images.shape == pre.masks.shape == (8, 1, 8, 8)
    assert pre.images.dtype == torch.float32 and pre.masks.dtype == torch.uint8
    for i in range(len(lazy)):
        for a, b in zip(lazy[i], pre[i], strict=True):
            assert torch.equal(a, b)
    assert sum(float(lazy[i][1].sum()) for i in range(8)) > 0
    with pytest.raises(RuntimeError, match="preload"):
        _ = lazy.images
    assert lazy._images is None  # nothing held in memory in lazy mode


def test_lazy_reopens_after_fork_and_pickles(two_scans):
    records, root, cache = two_scans
    ds = SliceDataset(records, root, "meniscus", 8, cache)
    first = ds[6]
    handle = ds._handles[1][0]
    ds._pid = -1  # as a forked worker sees it
    assert all(torch.equal(a, b) for a, b in zip(ds[6], first, strict=True))
    assert ds._handles[1][0] is not handle
    clone = pickle.loads(pickle.dumps(ds))
    assert all(torch.equal(a, b) for a, b in zip(clone[6], first, strict=True))
    ds.close()
    clone.close()


def test_lazy_handles_hold_no_chunk_cache(two_scans):
    records, root, cache = two_scans
    ds = SliceDataset(records, root, "tibial_cartilage", 8, cache)
    pre = SliceDataset(records, root, "tibial_cartilage", 8, cache, preload=True)
    assert all(torch.equal(a, b) for i in range(len(ds)) for a, b in zip(ds[i], pre[i], strict=True))
    f = ds._handles[1][0]
    assert f.id.get_access_plist().get_cache()[2] == 0  # rdcc_nbytes: memory flat in the number of open scans
    ds.close()


def test_dataloader_workers_read_same_items(two_scans):
    records, root, cache = two_scans
    ds = SliceDataset(records, root, "femoral_cartilage", 8, cache)
    ds[0]  # opens a handle in the parent before the workers fork
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2)
    images = torch.cat([x for x, _ in loader])
    assert torch.equal(images, torch.stack([ds[i][0] for i in range(len(ds))]))


def test_raw_items_hold_the_stored_uint8_masks(two_scans):
    records, root, cache = two_scans
    for preload in (False, True):
        ds = SliceDataset(records, root, "meniscus", 8, cache, preload=preload)
        for i in range(len(ds)):
            (image, mask), (raw_image, raw_mask) = ds[i], ds.raw_item(i)
            assert raw_mask.dtype == torch.uint8 and mask.dtype == torch.float32
            assert torch.equal(raw_image, image) and torch.equal(raw_mask.float(), mask)
        assert any(ds.raw_item(i)[1].any() for i in range(len(ds)))  # the masks are not all empty


@pytest.mark.parametrize("workers", [0, 2])
def test_training_batches_from_the_lazy_loader_match_the_preloaded_ones(two_scans, workers):
    from kneelib.nets.train import epoch_order, iterate_batches

    records, root, cache = two_scans
    lazy = SliceDataset(records, root, "tibial_cartilage", 8, cache)
    pre = SliceDataset(records, root, "tibial_cartilage", 8, cache, preload=True)
    order = epoch_order(len(lazy), seed=1, epoch=0)
    a = list(iterate_batches(lazy, order, 3, num_workers=workers))
    b = list(iterate_batches(pre, order, 3))
    assert [len(x) for x, _ in a] == [3, 3, 2]
    for (xa, ya), (xb, yb) in zip(a, b, strict=True):
        assert ya.dtype == yb.dtype == torch.uint8  # as stored; the training step makes them float32
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert sum(int(y.sum()) for _, y in a) == int(pre.masks.sum()) > 0


@pytest.mark.parametrize("kwargs, match", [
    ({"tissue": "fibular_cartilage"}, "fibular_cartilage"),
    ({"tissue": "P"}, "'P'"),  # a code, not a tissue name
    ({"slice_size": 0}, "0"),
    ({"records": []}, "record"),
])
def test_dataset_bad_parameters(two_scans, kwargs, match):
    records, root, cache = two_scans
    args = {"records": records, "root": root, "tissue": "meniscus", "slice_size": 8, "cache_dir": cache} | kwargs
    with pytest.raises(ValueError, match=match):
        SliceDataset(**args)


def test_load_eval_volume(two_scans):
    records, root, cache = two_scans
    direct, masks = slices.load_eval_volume(records[1], root, 8)
    cached, masks_c = slices.load_eval_volume(records[1], root, 8, cache_dir=cache)
    assert direct.shape == (3, 1, 8, 8) and direct.dtype == torch.float32
    torch.testing.assert_close(direct, cached)
    full = {t: m[:, :, 2:5] for t, m in expected_masks((12, 12, 5)).items()}
    for t in ALL_TISSUES:
        assert masks[t].shape == (12, 12, 3) and masks[t].dtype == np.bool_
        np.testing.assert_array_equal(masks[t], full[t])
        np.testing.assert_array_equal(masks_c[t], full[t])


# --------------------------------------------------------------------------- bad inputs


def _nan_image():
    x = make_image()
    x[3, 4, 2] = np.nan
    return x


def _inf_image():
    x = make_image()
    x[0, 0, 0] = -np.inf
    return x


def _nonbinary_seg():
    s = make_seg()
    s[1, 1, 1, 3] = 2
    return s


def _half_seg():
    s = make_seg().astype(np.float32)
    s[0, 0, 0, 0] = 0.5
    return s


# (case, which file is bad, writer of its content or None for "delete it", error type, message fragment)
BAD_FILES = [
    ("missing image", "image", None, FileNotFoundError, "not found"),
    ("missing seg", "seg", None, FileNotFoundError, "not found"),
    ("no data key", "image", lambda p: write_h5(p, make_image(), key="volume"), DataError, "'data'"),
    ("image rank 2", "image", lambda p: write_h5(p, make_image()[:, :, 0]), DataError, "(12, 10)"),
    ("seg rank 3", "seg", lambda p: write_h5(p, make_seg()[..., 0]), DataError, "(12, 10, 5)"),
    ("seg 5 channels", "seg", lambda p: write_h5(p, make_seg()[..., :5]), DataError, "5 channels"),
    ("seg value 2", "seg", lambda p: write_h5(p, _nonbinary_seg()), DataError, "not binary"),
    ("seg value 0.5", "seg", lambda p: write_h5(p, _half_seg()), DataError, "0.5"),
    ("image NaN", "image", lambda p: write_h5(p, _nan_image()), DataError, "1 NaN"),
    ("image inf", "image", lambda p: write_h5(p, _inf_image()), DataError, "1 inf"),
    ("image not HDF5", "image", lambda p: p.write_bytes(b"not an hdf5 file at all"), DataError, "HDF5"),
    ("seg truncated", "seg", lambda p: p.write_bytes(p.read_bytes()[:900]), DataError, "HDF5"),
]


def _break(record, root, which, writer):
    path = root / (record.image if which == "image" else record.seg)
    if writer is None:
        path.unlink()
    else:
        writer(path)
    return path


@pytest.mark.parametrize("case, which, writer, error, match", BAD_FILES, ids=[c[0] for c in BAD_FILES])
def test_bad_file_named_in_error(scan, case, which, writer, error, match):
    record, root = scan
    path = _break(record, root, which, writer)
    reader = iwoai.read_image if which == "image" else iwoai.read_seg
    for call in (lambda: reader(path), lambda: iwoai.validate_scan(record, root)):
        with pytest.raises(error) as info:
            call()
        assert path.name in str(info.value) and match in str(info.value), str(info.value)


def test_shape_mismatch_named(tmp_path):
    root = tmp_path / "data"
    record = write_scan(root, seg=make_seg((12, 10, 4)))
    with pytest.raises(DataError) as info:
        iwoai.validate_scan(record, root)
    msg = str(info.value)
    assert "train_001_V00.seg" in msg and "(12, 10, 4, 6)" in msg and "(12, 10, 5)" in msg
    with pytest.raises(DataError, match="train_001_V00.seg"):
        slices.build_slice_cache(record, root, tmp_path / "cache", 8)


def test_sha256_checked(tmp_path):
    root = tmp_path / "data"
    record = write_scan(root)
    good = type(record)(**{**record.__dict__, "sha256_image": file_sha256(root / record.image),
                           "sha256_seg": file_sha256(root / record.seg)})
    assert iwoai.validate_scan(good, root) == (12, 10, 5)
    bad = type(record)(**{**record.__dict__, "sha256_seg": "0" * 64})
    with pytest.raises(DataError, match="train_001_V00.seg.*sha256 mismatch"):
        iwoai.validate_scan(bad, root)
    iwoai.validate_scan(bad, root, check_sha256=False)
    with pytest.raises(DataError, match="sha256"):
        slices.build_slice_cache(bad, root, tmp_path / "cache", 8)


def test_validate_dataset_reports_first_failure(tmp_path):
    root = tmp_path / "data"
    records = [write_scan(root, i) for i in (1, 2, 3)]
    assert iwoai.validate_dataset(records, root) == {r.scan_id: (12, 10, 5) for r in records}
    write_h5(root / records[1].seg, make_seg()[..., :4])
    (root / records[2].image).unlink()
    with pytest.raises(DataError, match="train_002_V00.seg"):
        iwoai.validate_dataset(records, root)
    # Values are only read with full=True.
    write_h5(root / records[1].seg, _nonbinary_seg())
    assert iwoai.validate_dataset(records[:2], root)["train_002_V00"] == (12, 10, 5)
    with pytest.raises(DataError, match="train_002_V00.seg"):
        iwoai.validate_dataset(records[:2], root, full=True)
    with pytest.raises(ValueError):
        iwoai.validate_dataset([], root)
