"""SKM-TEA v1.0.0 (Stanford qDESS knee MRI): the manifest from its annotation JSONs, images and tissue masks
from its image files, and the checks that refuse a bad download.

Layout (only these two folders of the download are read; k-space, DICOMs and NIfTI masks are not):

- ``image_files/MTR_NNN.h5``, one HDF5 file per scan:

  - ``echo1``, ``echo2``: int16 (X, Y, Z), the two echoes of the qDESS sequence. X, Y, Z run superior-inferior,
    anterior-posterior and left-right, so Z (axis 2) is the sagittal slice axis, as in IWOAI. Scans are
    512 x 512 x Z; Z differs between scans (160 for most, 144 to 168 for a few), which is accepted.
  - ``seg``: (X, Y, Z, 6) one-hot labels in SKM-TEA's own channel order: 0 patellar, 1 femoral, 2 medial
    tibial, 3 lateral tibial cartilage, 4 medial, 5 lateral meniscus (``kneelib.names.SKMTEA_SEG_CHANNEL_NAMES``;
    a tissue is a union of channels, ``kneelib.names.TISSUE_LABELS["skm-tea"]``).
  - ``stats/...``: summary numbers per echo (not read).

- ``annotations/v1.0.0/{train,val,test}.json``: objects with the keys ``info, categories, tissues, images,
  annotations``. The split is the ``images`` list: one entry per scan with ``file_name`` (``MTR_001.h5``),
  ``scan_id``, ``subject_id`` (an int), ``timepoint`` (an int, 0 for every scan of v1.0.0), ``voxel_spacing``
  (mm, along the array axes), ``matrix_shape`` and ``orientation`` (the axis codes, ``["SI", "AP", "LR"]`` or
  ``["SI", "AP", "RL"]``). ``categories``, ``tissues`` and ``annotations`` describe pathology boxes, not ``seg``.
  ``val`` is the suite's ``valid`` split.

Each scan becomes a :class:`~kneelib.data.manifest.ScanRecord` whose ``image`` and ``seg`` are the same file;
its subject is ``str(subject_id)`` and its timepoint ``V{timepoint:02d}`` (``V00``: the visit code SKM-TEA
itself uses in its ``msp_id``, e.g. ``0000048_V00``). The image is the root-sum-of-squares of the two echoes
by default (one combined image per scan, like OAI's DESS image), or one echo (``echo="echo1"``/``"echo2"``).
Scans stored right-to-left (``RL``) are read as stored: medial and lateral are anatomical labels, so no
flip is needed for the masks to mean what they say.

Every bad input raises :class:`~kneelib.data.iwoai.DataError` naming the file and the offending value.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from kneelib.data.iwoai import DataError
from kneelib.data.manifest import ScanRecord
from kneelib.names import SKMTEA, TISSUE_LABELS, tissue_labels, tissue_name

FORMAT = SKMTEA
IMAGE_DIR = "image_files"
ANNOTATION_DIR = "annotations/v1.0.0"
# Annotation file stem -> the suite's split name.
SPLIT_FILES = {"train": "train", "val": "valid", "test": "test"}
TOP_KEYS = ("info", "categories", "tissues", "images", "annotations")
IMAGE_KEYS = ("file_name", "scan_id", "subject_id", "timepoint", "voxel_spacing", "orientation")
ECHO_KEYS = ("echo1", "echo2")
SEG_KEY = "seg"
SEG_CHANNELS = 6
ECHOES = ("rss", "echo1", "echo2")
# Orientation codes allowed on each array axis: in-plane SI and AP, sagittal slices last.
_AXIS_CODES = ({"SI", "IS"}, {"AP", "PA"}, {"LR", "RL"})
_FILE_NAME = re.compile(r"^[A-Za-z0-9_.-]+\.h5$")


# ------------------------------------------------------------------------------- the layout


def looks_like(root: str | Path) -> bool:
    """Whether ``root`` is laid out as SKM-TEA: an ``image_files/`` and an ``annotations/`` folder (no file read)."""
    root = Path(root)
    return (root / IMAGE_DIR).is_dir() and (root / "annotations").is_dir()


def tissues_present(root: str | Path, *, echo: str = "rss") -> tuple[str, ...]:
    """The tissues of the vocabulary SKM-TEA labels: all of them (its six channels include the patellar
    cartilage and both compartments of tibial cartilage and meniscus), in ``ALL_TISSUES`` order."""
    _check_echo(echo)
    return tuple(TISSUE_LABELS[FORMAT])


def annotation_path(root: str | Path, split_file: str) -> Path:
    """``root/annotations/v1.0.0/{split_file}.json`` (``split_file`` is ``train``, ``val`` or ``test``)."""
    return Path(root) / ANNOTATION_DIR / f"{split_file}.json"


def _check_echo(echo: str) -> str:
    if echo not in ECHOES:
        raise ValueError(f"echo={echo!r} must be one of {ECHOES}")
    return echo


# --------------------------------------------------------------------------- the manifest


def read_records(root: str | Path, *, echo: str = "rss") -> list[ScanRecord]:
    """The scans of a SKM-TEA folder, from its three annotation JSONs.

    Args:
        root: the data set's folder, holding ``image_files/`` and ``annotations/v1.0.0/``.
        echo: the image the scans will be read as (checked here so a bad option fails before any work).

    Returns:
        One record per scan, train then valid then test, each in its JSON's order: ``scan_id`` from the JSON,
        ``split`` (``val`` -> ``valid``), ``subject`` ``str(subject_id)``, ``timepoint`` ``V{timepoint:02d}``,
        ``image`` = ``seg`` = ``image_files/{file_name}`` (relative to root) and ``spacing_mm`` the JSON's
        ``voxel_spacing`` (mm along array axes 0, 1, 2; axis 2 the sagittal slices).

    Raises:
        DataError naming the file and value: a missing or malformed JSON, a missing top-level key or entry field,
        a bad spacing, timepoint or orientation, a split with no scans, a scan listed twice, a subject in two
        splits, or a listed scan whose image file is absent.
    """
    _check_echo(echo)
    root = Path(root)
    records: list[ScanRecord] = []
    listed_in: dict[str, Path] = {}        # scan id -> the JSON that lists it
    subject_in: dict[str, tuple[str, Path]] = {}  # subject -> (split, JSON)
    for stem, split in SPLIT_FILES.items():
        path = annotation_path(root, stem)
        images = _read_split_images(path)
        for i, entry in enumerate(images):
            record = _record(entry, split, path, i)
            _check_unique(record, path, listed_in, subject_in)
            if not (root / record.image).is_file():
                raise DataError(f"{path}: images[{i}] lists scan {record.scan_id!r} (file_name "
                                f"{entry['file_name']!r}) but {root / record.image} does not exist")
            records.append(record)
    return records


def _read_split_images(path: Path) -> list[dict[str, Any]]:
    """The ``images`` list of one annotation JSON, after checking the file's structure."""
    if not path.is_file():
        raise DataError(f"{path}: SKM-TEA annotation file not found (expected {ANNOTATION_DIR}/"
                        f"{{{','.join(SPLIT_FILES)}}}.json under the data root)")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise DataError(f"{path}: not a readable JSON annotation file ({e})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: top level is a {type(data).__name__}, expected an object with keys {list(TOP_KEYS)}")
    missing = [k for k in TOP_KEYS if k not in data]
    if missing:
        raise DataError(f"{path}: missing top-level key(s) {missing}; has {sorted(data)}")
    images = data["images"]
    if not isinstance(images, list):
        raise DataError(f"{path}: 'images' is a {type(images).__name__}, expected a list of scans")
    if not images:
        raise DataError(f"{path}: split has no scans ('images' is empty)")
    return images


def _record(entry: Any, split: str, path: Path, i: int) -> ScanRecord:
    """The ScanRecord of ``images[i]`` of the JSON at ``path``."""
    where = f"{path}: images[{i}]"
    if not isinstance(entry, dict):
        raise DataError(f"{where} is a {type(entry).__name__}, expected an object")
    missing = [k for k in IMAGE_KEYS if k not in entry]
    if missing:
        raise DataError(f"{where} (scan {entry.get('scan_id')!r}) lacks field(s) {missing}")
    file_name, scan_id, subject = entry["file_name"], entry["scan_id"], entry["subject_id"]
    if not isinstance(file_name, str) or not _FILE_NAME.match(file_name):
        raise DataError(f"{where}: file_name {file_name!r} is not a plain .h5 file name like 'MTR_001.h5'")
    if not isinstance(scan_id, str) or not scan_id.strip():
        raise DataError(f"{where}: scan_id {scan_id!r} must be a non-empty string")
    if isinstance(subject, bool) or not isinstance(subject, (int, str)) or str(subject).strip() == "":
        raise DataError(f"{where} (scan {scan_id!r}): subject_id {subject!r} must be an int or a non-empty string")
    _check_orientation(entry["orientation"], where)
    image = f"{IMAGE_DIR}/{file_name}"
    return ScanRecord(scan_id.strip(), split, str(subject).strip(), _timepoint(entry["timepoint"], where),
                      image, image, _spacing(entry["voxel_spacing"], where))


def _timepoint(value: Any, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 99:
        raise DataError(f"{where}: timepoint {value!r} must be an int from 0 to 99")
    return f"V{value:02d}"


def _spacing(value: Any, where: str) -> tuple[float, float, float]:
    ok = isinstance(value, list) and len(value) == 3 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < math.inf for v in value)
    if not ok:
        raise DataError(f"{where}: voxel_spacing {value!r} must be 3 positive finite numbers (mm)")
    return tuple(float(v) for v in value)


def _check_orientation(value: Any, where: str) -> None:
    """Check that axes 0, 1, 2 are SI, AP and the sagittal LR (either direction of each)."""
    ok = isinstance(value, list) and len(value) == 3 and all(
        isinstance(code, str) and code in allowed for code, allowed in zip(value, _AXIS_CODES))
    if not ok:
        raise DataError(f"{where}: orientation {value!r} is not supported; expected ['SI', 'AP', 'LR'] or "
                        "['SI', 'AP', 'RL'] (the sagittal axis last)")


def _check_unique(record: ScanRecord, path: Path, listed_in: dict[str, Path],
                  subject_in: dict[str, tuple[str, Path]]) -> None:
    """Refuse a scan listed twice and a subject in two splits (data leakage between training and testing)."""
    if record.scan_id in listed_in:
        raise DataError(f"{path}: scan {record.scan_id!r} is listed twice (also in {listed_in[record.scan_id]})")
    listed_in[record.scan_id] = path
    split, other = subject_in.setdefault(record.subject, (record.split, path))
    if split != record.split:
        raise DataError(f"{path}: subject_id {record.subject!r} (scan {record.scan_id!r}) is in split "
                        f"{record.split!r} and also in {split!r} ({other}): a subject must lie in one split")


# ---------------------------------------------------------------------------- the scans


@contextmanager
def _open_scan(record: ScanRecord, root: str | Path) -> Iterator[tuple[h5py.File, Path]]:
    """Open a scan's image file read-only; yield (file, path)."""
    path = Path(root) / record.image
    if not path.is_file():
        raise DataError(f"{path}: image file of scan {record.scan_id!r} not found")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise DataError(f"{path}: not a readable HDF5 file ({e})") from None
    with f:
        yield f, path


def _dataset(f: h5py.File, key: str, path: Path, rank: int) -> h5py.Dataset:
    """The numeric dataset ``key`` of rank ``rank``, non-empty."""
    dset = f.get(key)
    if not isinstance(dset, h5py.Dataset):
        raise DataError(f"{path}: no dataset {key!r} (keys: {sorted(f.keys())})")
    if not (np.issubdtype(dset.dtype, np.number) or dset.dtype == np.bool_):
        raise DataError(f"{path}: dataset {key!r} has dtype {dset.dtype}, not numeric")
    if len(dset.shape) != rank or min(dset.shape, default=0) < 1:
        raise DataError(f"{path}: dataset {key!r} must be a non-empty {rank}-D array, got shape {dset.shape}")
    return dset


def _read(dset: h5py.Dataset, path: Path) -> np.ndarray:
    try:
        return dset[()]
    except OSError as e:  # truncated or corrupt data blocks
        raise DataError(f"{path}: cannot read dataset {dset.name!r} ({e})") from None


def _echo_datasets(f: h5py.File, path: Path, echo: str) -> list[h5py.Dataset]:
    """The echo datasets an image of kind ``echo`` is made of, checked for rank and equal shapes."""
    keys = ECHO_KEYS if echo == "rss" else (echo,)
    dsets = [_dataset(f, k, path, 3) for k in keys]
    if len({d.shape for d in dsets}) > 1:
        raise DataError(f"{path}: echo1 shape {dsets[0].shape} differs from echo2 shape {dsets[1].shape}")
    return dsets


def _seg_dataset(f: h5py.File, path: Path) -> h5py.Dataset:
    dset = _dataset(f, SEG_KEY, path, 4)
    if dset.shape[3] != SEG_CHANNELS:
        raise DataError(f"{path}: {SEG_KEY!r} has {dset.shape[3]} channels, expected {SEG_CHANNELS} "
                        f"(shape {dset.shape})")
    return dset


def _finite(array: np.ndarray, path: Path, key: str) -> np.ndarray:
    finite = np.isfinite(array)
    if not finite.all():
        bad = array[~finite]
        raise DataError(f"{path}: {key!r} has {int(np.isnan(bad).sum())} NaN and {int(np.isinf(bad).sum())} "
                        f"inf value(s) out of {array.size}")
    return array


def _combine(echoes: list[np.ndarray]) -> np.ndarray:
    """One echo as float32, or the root-sum-of-squares of two (in float32: int16 squares would overflow)."""
    if len(echoes) == 1:
        return echoes[0].astype(np.float32, copy=False)
    e1, e2 = (e.astype(np.float32) for e in echoes)
    return np.sqrt(e1 * e1 + e2 * e2)


def read_image(record: ScanRecord, root: str | Path, *, echo: str = "rss") -> np.ndarray:
    """A scan's image.

    Args:
        record: the scan (``root / record.image`` is its ``MTR_NNN.h5``).
        root: the data set's folder.
        echo: ``"rss"`` (default) sqrt(echo1^2 + echo2^2); ``"echo1"`` or ``"echo2"``: that echo alone.

    Returns:
        float32 (H, W, D) = (SI, AP, LR) magnitudes in the file's units; D is the sagittal slice axis.

    Raises:
        DataError naming the file: no file, no echo dataset, wrong rank, echoes of different shapes, NaN/inf.
    """
    _check_echo(echo)
    with _open_scan(record, root) as (f, path):
        echoes = [_finite(_read(d, path), path, d.name.lstrip("/")) for d in _echo_datasets(f, path, echo)]
    return _combine(echoes)


def _check_binary(seg: np.ndarray, path: Path) -> None:
    if seg.dtype == np.bool_:
        return
    bad = (seg != 0) & (seg != 1)
    if bad.any():
        values = np.unique(seg[bad])[:5].tolist()
        raise DataError(f"{path}: {SEG_KEY!r} is not one-hot: {int(bad.sum())} voxel(s) with values {values} "
                        "(expected only 0 and 1)")


def read_seg(record: ScanRecord, root: str | Path) -> np.ndarray:
    """A scan's labels: uint8 (H, W, D, 6) of 0/1 in SKM-TEA channel order (``SKMTEA_SEG_CHANNEL_NAMES``).

    Raises DataError naming the file: no ``seg``, wrong rank or channel count, values other than 0 and 1.
    """
    with _open_scan(record, root) as (f, path):
        seg = _read(_seg_dataset(f, path), path)
    _check_binary(seg, path)
    return seg.astype(np.uint8, copy=False)


def seg_to_tissues(seg: np.ndarray, tissues: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Tissue masks from SKM-TEA labels.

    Args:
        seg: (..., 6) 0/1 labels in SKM-TEA channel order.
        tissues: tissue names or codes; None: every tissue of ``TISSUE_LABELS["skm-tea"]`` (``ALL_TISSUES`` order).

    Returns:
        ``{tissue name: bool (...)}`` in ``tissues`` order, each the union of its channels (femoral cartilage 1,
        tibial cartilage 2 | 3, meniscus 4 | 5, patellar cartilage 0, ...).
    """
    if seg.shape[-1] != SEG_CHANNELS:
        raise ValueError(f"SKM-TEA labels need {SEG_CHANNELS} channels in their last axis, got shape {seg.shape}")
    names = list(TISSUE_LABELS[FORMAT]) if tissues is None else [tissue_name(t) for t in tissues]
    return {t: np.any(seg[..., list(tissue_labels(t, FORMAT))] != 0, axis=-1) for t in names}


def read_tissue_masks(record: ScanRecord, root: str | Path, tissues: Sequence[str] | None = None, *,
                      echo: str = "rss") -> dict[str, np.ndarray]:
    """A scan's tissue masks: ``{tissue: bool (H, W, D)}`` (:func:`seg_to_tissues` of :func:`read_seg`).

    ``tissues``: names or codes; None: all eight tissues SKM-TEA labels. ``echo`` is accepted (and checked)
    for a uniform call with the other readers; masks do not depend on it.
    """
    _check_echo(echo)
    return seg_to_tissues(read_seg(record, root), tissues)


# --------------------------------------------------------------------------- validation


def validate_scan(record: ScanRecord, root: str | Path, *, echo: str = "rss",
                  check_values: bool = True) -> tuple[int, int, int]:
    """Check one scan's file.

    Args:
        record: the scan; root: the data set's folder.
        echo: the image kind to check (``"rss"`` needs both echoes, ``"echo1"``/``"echo2"`` one).
        check_values: also read the arrays (finite echoes, 0/1 labels); with False only the HDF5 metadata is
            read: datasets present, ranks, 6 channels and equal shapes.

    Returns:
        The image shape (H, W, D).

    Raises:
        DataError naming the file and value: file absent or unreadable, a missing ``echo1``/``echo2``/``seg``,
        a ``seg`` without 6 channels, echoes and ``seg`` of different shapes, NaN/inf in an echo, labels not 0/1.
    """
    _check_echo(echo)
    with _open_scan(record, root) as (f, path):
        echoes = _echo_datasets(f, path, echo)
        seg = _seg_dataset(f, path)
        shape = tuple(int(n) for n in echoes[0].shape)
        if tuple(seg.shape[:3]) != shape:
            raise DataError(f"{path}: {SEG_KEY!r} shape {seg.shape} does not match the image shape {shape} "
                            f"({', '.join(d.name.lstrip('/') for d in echoes)})")
        if check_values:
            for d in echoes:
                _finite(_read(d, path), path, d.name.lstrip("/"))
            _check_binary(_read(seg, path), path)
    return shape
