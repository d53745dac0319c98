"""IWOAI 2019 knee MRI files: validated readers and z-scoring.

File format (docs/reference.md, "The data"): every scan is a pair of HDF5 files holding one
dataset named ``data``:

- ``{scan_id}.im``: image, shape (H, W, D), read as float32; D is the sagittal slice axis.
- ``{scan_id}.seg``: labels, shape (H, W, D, 6), binary, read as uint8; channels
  0 femoral, 1 lateral tibial, 2 medial tibial, 3 patellar cartilage, 4 lateral, 5 medial meniscus
  (``kneelib.names.SEG_CHANNEL_NAMES``). Each tissue of the study is a union of channels
  (``kneelib.names.TISSUE_LABELS["iwoai"]``: tibial cartilage = 1 | 2, medial meniscus = 5, ...).

Every problem with the data raises :class:`DataError` (or FileNotFoundError for a missing
file) with a message that names the file and the offending value or shape. The slice cache the
nets read from lives in :mod:`kneelib.data.slices`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np

from kneelib.data.manifest import ScanRecord, file_sha256
from kneelib.names import IWOAI, SEG_CHANNELS, TISSUE_LABELS, tissue_labels, tissue_name

DATA_KEY = "data"
ZSCORE_EPS = 1e-8

class DataError(ValueError):
    """A data file that is unreadable, malformed or inconsistent; the message names the file."""


# ----------------------------------------------------------------------------- reading


@contextmanager
def _open_data(path: str | os.PathLike, kind: str) -> Iterator[h5py.Dataset]:
    """Open ``path`` read-only and yield its ``data`` dataset, with errors that name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{kind} file not found: {path}")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise DataError(f"{path}: not a readable HDF5 {kind} file ({e})") from None
    with f:
        dset = f.get(DATA_KEY)
        if not isinstance(dset, h5py.Dataset):
            raise DataError(f"{path}: no dataset {DATA_KEY!r} in {kind} file (keys: {sorted(f.keys())})")
        if not (np.issubdtype(dset.dtype, np.number) or dset.dtype == np.bool_):
            raise DataError(f"{path}: {kind} dtype {dset.dtype} is not numeric")
        yield dset


def _read_all(dset: h5py.Dataset, path: Path) -> np.ndarray:
    try:
        return dset[()]
    except OSError as e:  # truncated or corrupt data blocks
        raise DataError(f"{path}: cannot read {DATA_KEY!r} ({e})") from None


def _check_image_shape(shape: tuple[int, ...], path: Path) -> None:
    if len(shape) != 3 or min(shape) < 1:
        raise DataError(f"{path}: image must be a non-empty 3-D array (H, W, D), got shape {shape}")


def _check_seg_shape(shape: tuple[int, ...], path: Path) -> None:
    if len(shape) != 4 or min(shape) < 1:
        raise DataError(f"{path}: segmentation must be a non-empty 4-D array (H, W, D, C), got shape {shape}")
    if shape[3] != SEG_CHANNELS:
        raise DataError(f"{path}: segmentation has {shape[3]} channels, expected {SEG_CHANNELS} (shape {shape})")


def image_shape(path: str | os.PathLike) -> tuple[int, int, int]:
    """Shape (H, W, D) of an ``.im`` file from HDF5 metadata alone (no array read)."""
    with _open_data(path, "image") as dset:
        _check_image_shape(dset.shape, Path(path))
        return tuple(dset.shape)


def seg_shape(path: str | os.PathLike) -> tuple[int, int, int, int]:
    """Shape (H, W, D, 6) of a ``.seg`` file from HDF5 metadata alone (no array read)."""
    with _open_data(path, "segmentation") as dset:
        _check_seg_shape(dset.shape, Path(path))
        return tuple(dset.shape)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read and validate an IWOAI ``.im`` file.

    Args:
        path: HDF5 file with a dataset ``data`` of rank 3.

    Returns:
        float32 array (H, W, D) of raw scanner intensities (arbitrary units); D is the slice axis.

    Raises:
        FileNotFoundError: the file does not exist.
        DataError: not HDF5, no ``data``, wrong rank, or NaN/inf values.
    """
    path = Path(path)
    with _open_data(path, "image") as dset:
        _check_image_shape(dset.shape, path)
        image = _read_all(dset, path).astype(np.float32, copy=False)
    finite = np.isfinite(image)
    if not finite.all():
        bad = image[~finite]
        raise DataError(f"{path}: image has {int(np.isnan(bad).sum())} NaN and "
                        f"{int(np.isinf(bad).sum())} inf value(s) out of {image.size}")
    return image


def read_seg(path: str | os.PathLike) -> np.ndarray:
    """Read and validate an IWOAI ``.seg`` file.

    Args:
        path: HDF5 file with a dataset ``data`` of shape (H, W, D, 6) holding only 0 and 1.

    Returns:
        uint8 array (H, W, D, 6) of 0/1 labels in IWOAI channel order (``SEG_CHANNEL_NAMES``).

    Raises:
        FileNotFoundError: the file does not exist.
        DataError: not HDF5, no ``data``, wrong rank or channel count, or values other than 0/1.
    """
    path = Path(path)
    with _open_data(path, "segmentation") as dset:
        _check_seg_shape(dset.shape, path)
        seg = _read_all(dset, path)
    _check_binary(seg, path)
    return seg.astype(np.uint8, copy=False)


def _check_binary(seg: np.ndarray, path: Path) -> None:
    if seg.dtype == np.bool_:
        return
    # An unsigned max is one cheap pass; other dtypes (floats, signed) need the full test.
    if np.issubdtype(seg.dtype, np.unsignedinteger) and seg.max() <= 1:
        return
    bad = (seg != 0) & (seg != 1)
    if bad.any():
        values = np.unique(seg[bad])
        raise DataError(f"{path}: segmentation is not binary: {int(bad.sum())} voxel(s) with values "
                        f"{values[:5].tolist()} (expected only 0 and 1)")


def seg_to_tissues(seg: np.ndarray, tissues: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Tissue masks from an IWOAI label array.

    Args:
        seg: (..., 6) array of 0/1 labels in IWOAI channel order.
        tissues: tissue names or codes to return; None: every tissue the IWOAI labels define
            (``TISSUE_LABELS["iwoai"]``, in ``kneelib.names.ALL_TISSUES`` order).

    Returns:
        ``{tissue name: bool array (...)}`` in ``tissues`` order; each mask is the union of the
        tissue's channels (femoral cartilage 0, tibial cartilage 1 | 2, patellar cartilage 3, ...).
    """
    if seg.shape[-1] != SEG_CHANNELS:
        raise ValueError(f"segmentation needs {SEG_CHANNELS} channels in its last axis, got shape {seg.shape}")
    names = list(TISSUE_LABELS[IWOAI]) if tissues is None else [tissue_name(t) for t in tissues]
    return {t: np.any(seg[..., list(tissue_labels(t, IWOAI))] != 0, axis=-1) for t in names}


def read_tissue_masks(path: str | os.PathLike, tissues: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Read a ``.seg`` file as ``{tissue: bool array (H, W, D)}`` (:func:`seg_to_tissues`; None: every
    tissue IWOAI labels)."""
    return seg_to_tissues(read_seg(path), tissues)


# -------------------------------------------------------------------------- validation


def scan_paths(record: ScanRecord, root: str | os.PathLike) -> tuple[Path, Path]:
    root = Path(root)
    return root / record.image, root / record.seg


def _check_sha256(path: Path, expected: str) -> None:
    actual = file_sha256(path)
    if actual.lower() != expected.lower():
        raise DataError(f"{path}: sha256 mismatch: manifest has {expected}, file has {actual}")


def _check_pair(image_shape_: tuple[int, ...], seg_shape_: tuple[int, ...], image: Path, seg: Path) -> None:
    if tuple(seg_shape_[:3]) != tuple(image_shape_):
        raise DataError(f"{seg}: segmentation shape {tuple(seg_shape_)} does not match image {image.name} "
                        f"shape {tuple(image_shape_)}")


def validate_scan(record: ScanRecord, root: str | os.PathLike, check_sha256: bool = True,
                  check_values: bool = True) -> tuple[int, int, int]:
    """Check one scan's image and segmentation files.

    Args:
        record: the scan's manifest row; its files are ``root / record.image`` and ``root / record.seg``.
        root: data root holding ``train/``, ``valid/``, ``test/``.
        check_sha256: compare against the record's sha256 values where they are not blank.
        check_values: read the arrays and check values (finite image, binary labels); with
            False only HDF5 metadata is read, which is instant.

    Returns:
        The image shape (H, W, D).

    Raises:
        FileNotFoundError, DataError: the first problem found, naming its file.
    """
    image_path, seg_path = scan_paths(record, root)
    shape = image_shape(image_path)
    _check_pair(shape, seg_shape(seg_path), image_path, seg_path)
    if check_sha256:
        for path, expected in ((image_path, record.sha256_image), (seg_path, record.sha256_seg)):
            if expected:
                _check_sha256(path, expected)
    if check_values:
        read_image(image_path)
        read_seg(seg_path)
    return shape


def validate_dataset(records: Sequence[ScanRecord], root: str | os.PathLike,
                     full: bool = False) -> dict[str, tuple[int, int, int]]:
    """Check every scan of ``records``; raise on the first failing file.

    Args:
        records: manifest rows.
        root: data root.
        full: also read every array and check sha256 values (minutes on the 176-scan set);
            by default only existence, HDF5 structure, ranks, channel count and the
            image/segmentation shape match are checked, from metadata. Values are always
            checked when a scan is read (``read_*``, the slice cache).

    Returns:
        ``{scan_id: image shape (H, W, D)}``.
    """
    if not records:
        raise ValueError("validate_dataset: no records given")
    return {r.scan_id: validate_scan(r, root, check_sha256=full, check_values=full) for r in records}


# ------------------------------------------------------------------------ preprocessing


def zscore_stats(volume: np.ndarray) -> tuple[float, float]:
    """Mean and (population) standard deviation of a whole volume, accumulated in float64."""
    if volume.size == 0:
        raise ValueError("zscore: empty volume")
    return float(volume.mean(dtype=np.float64)), float(volume.std(dtype=np.float64))


def zscore(volume: np.ndarray, stats: tuple[float, float] | None = None) -> np.ndarray:
    """Whiten a volume: ``(x - mean) / (std + 1e-8)`` over all its voxels (DOSMA ``whiten_volume``).

    Args:
        volume: array of any shape, e.g. (H, W, D) intensities.
        stats: (mean, std) to use instead of the volume's own, e.g. from a cache's attrs.

    Returns:
        float32 array of the same shape, mean about 0 and std about 1.
    """
    mean, std = zscore_stats(volume) if stats is None else stats
    return ((volume - mean) / (std + ZSCORE_EPS)).astype(np.float32, copy=False)
