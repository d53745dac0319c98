"""The slice-major cache and the 2D slice dataset the U-Nets train on.

The source arrays (any format of :mod:`kneelib.data.formats`) are stored C-contiguous, so one
sagittal slice ``data[:, :, k]`` is a strided
read across the whole file. :func:`build_slice_cache` rewrites each scan once, slice axis first,
already z-scored and resampled to the nets' input size, so that a training step reads one
contiguous block per slice; :class:`SliceDataset` reads those blocks lazily (or preloads them).
"""

from __future__ import annotations

import math
import multiprocessing
import numbers
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from itertools import repeat
from pathlib import Path
from typing import Literal

import h5py
import numpy as np
import torch
import torch.nn.functional as F

from kneelib.core.atomic import atomic_path
from kneelib.data import formats
from kneelib.data.iwoai import DataError, scan_paths, zscore, zscore_stats
from kneelib.data.manifest import ScanRecord
from kneelib.names import ALL_TISSUES, IWOAI, TISSUE_LABELS

# Bump when the cache layout or its preprocessing changes, so old caches are rebuilt.
# 2: masks of every tissue the IWOAI labels define (CACHE_TISSUES), not only the paper's three.
CACHE_VERSION = 2
# The tissues a cache holds masks of, in its channel order: all that the data format labels, so one cache
# serves a study of any of them (a tissue's mask is resampled as a whole, not as the union of resampled labels).
CACHE_TISSUES = tuple(TISSUE_LABELS[IWOAI])
# Below this many voxels to cache in all (about 1.4 full-size scans), build in-process: starting
# processes that import torch costs more than it saves.
POOL_MIN_VOXELS = 1 << 25

ResampleMode = Literal["image", "mask"]


def resample_slices(x: torch.Tensor, size: int, mode: ResampleMode = "image") -> torch.Tensor:
    """Resample slices in-plane to ``size x size``.

    Args:
        x: (N, C, H, W) tensor of slices.
        size: output height and width in pixels.
        mode: ``"image"``: bilinear, ``align_corners=False``, antialiased when shrinking;
            returns float32. ``"mask"``: area average of the 0/1 mask, then ``>= 0.5``, so an
            output pixel is foreground when at least half of the input area under it is
            (ties count as foreground, which keeps thin cartilage from vanishing);
            returns 0/1 in ``x``'s dtype.

    Returns:
        (N, C, size, size) tensor; ``x`` itself when it already has that size.
    """
    if x.ndim != 4:
        raise ValueError(f"resample_slices expects (N, C, H, W), got shape {tuple(x.shape)}")
    if size < 1:
        raise ValueError(f"resample_slices: size must be >= 1, got {size}")
    if mode not in ("image", "mask"):
        raise ValueError(f"resample_slices: mode must be 'image' or 'mask', got {mode!r}")
    h, w = x.shape[-2:]
    if (h, w) == (size, size):
        return x
    if mode == "image":
        shrink = size < h or size < w
        return F.interpolate(x.float(), size=(size, size), mode="bilinear", align_corners=False,
                             antialias=shrink)
    area = F.interpolate(x.float(), size=(size, size), mode="area")
    return (area >= 0.5).to(x.dtype)


def _volume_to_slices(image: np.ndarray, size: int) -> torch.Tensor:
    """(H, W, D) z-scored float32 -> (D, 1, size, size) float32, slice axis first."""
    slices = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[:, None]
    return resample_slices(slices, size, "image").contiguous()


def scan_tissues(record: ScanRecord, root: str | os.PathLike) -> tuple[str, ...]:
    """The tissues a scan's cache holds, in vocabulary order: every tissue its format labels (all of
    ``CACHE_TISSUES`` for IWOAI and SKM-TEA; an nnU-Net data set only those its dataset.json names)."""
    present = set(formats.tissues_present(root, [record]))
    return tuple(t for t in ALL_TISSUES if t in present)


def cache_tissues(masks: dict[str, np.ndarray]) -> tuple[str, ...]:
    """The tissues of ``masks`` in vocabulary order (the cache's mask channels)."""
    return tuple(t for t in ALL_TISSUES if t in masks)


def _tissues_to_slices(masks: dict[str, np.ndarray], size: int) -> torch.Tensor:
    """``{tissue: bool (H, W, D)}`` -> uint8 (D, T, size, size), the T masks in :func:`cache_tissues` order."""
    stacked = np.stack([masks[t] for t in cache_tissues(masks)], axis=0).astype(np.uint8)  # (T, H, W, D)
    slices = torch.from_numpy(np.ascontiguousarray(stacked.transpose(3, 0, 1, 2)))
    return resample_slices(slices, size, "mask").contiguous()


# --------------------------------------------------------------------------- the cache


def cache_path(record: ScanRecord, cache_dir: str | os.PathLike, slice_size: int) -> Path:
    return Path(cache_dir) / f"{record.scan_id}_s{slice_size}.h5"


def _source_signature(record: ScanRecord, root: str | os.PathLike, slice_size: int) -> dict[str, object]:
    """What a cache was built from; any difference means the cache is stale."""
    sig: dict[str, object] = {"cache_version": CACHE_VERSION, "slice_size": int(slice_size), "source": record.source}
    for name, path, sha in zip(("image", "seg"), scan_paths(record, root),
                               (record.sha256_image, record.sha256_seg), strict=True):
        if not path.is_file():
            raise FileNotFoundError(f"{name} file not found: {path}")
        st = path.stat()
        sig[f"{name}_path"] = str(path.resolve())
        sig[f"{name}_size"] = int(st.st_size)
        sig[f"{name}_mtime_ns"] = int(st.st_mtime_ns)
        sig[f"{name}_sha256"] = sha
    return sig


def _cache_matches(path: Path, signature: dict[str, object], tissues: tuple[str, ...]) -> bool:
    if not path.is_file():
        return False
    try:
        with h5py.File(path, "r") as f:
            # the masks' channels must be the tissues the scan's format labels, in order: a vocabulary or
            # label map that changed rebuilds the cache instead of handing a net another tissue's mask
            return ("image" in f and "masks" in f
                    and all(_attr(f.attrs.get(k)) == v for k, v in signature.items())
                    and [_attr(t) for t in f.attrs.get("tissues", [])] == list(tissues))
    except OSError:  # a damaged cache is rebuilt, not trusted
        return False


def _attr(value: object) -> object:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


def build_slice_cache(record: ScanRecord, root: str | os.PathLike, cache_dir: str | os.PathLike,
                      slice_size: int) -> Path:
    """Write (once) the slice-major, preprocessed copy of one scan and return its path.

    The file ``{cache_dir}/{scan_id}_s{slice_size}.h5`` holds:

    - ``image``: float32 (D, S, S), z-scored with the whole volume's own mean and std
      (computed once, at full resolution), then resampled in-plane to S = ``slice_size``.
    - ``masks``: uint8 (D, T, S, S), 0/1 masks of the T tissues the scan's format labels
      (:func:`cache_tissues`; ``CACHE_TISSUES`` for IWOAI), in vocabulary order.
    - attrs: ``mean``, ``std``, ``shape`` (original (H, W, D)), ``scan_id``, ``tissues``, and
      the source signature (paths, sizes, mtimes, manifest sha256 values, ``slice_size``,
      ``cache_version``). A cache whose signature matches is reused; otherwise it is rebuilt.

    Building reads and validates both source files (values, shape match, sha256 where the
    record has one). The write is atomic, so a killed build never leaves a half cache.
    """
    if slice_size < 1:
        raise ValueError(f"slice_size must be >= 1, got {slice_size}")
    path = cache_path(record, cache_dir, slice_size)
    signature = _source_signature(record, root, slice_size)
    tissues = scan_tissues(record, root)
    if _cache_matches(path, signature, tissues):
        return path
    image, masks, stats = _read_scan(record, root, check_sha256=True, tissues=tissues)
    image_slices = _volume_to_slices(zscore(image, stats), slice_size).squeeze(1)
    del image
    mask_slices = _tissues_to_slices(masks, slice_size)
    shape = next(iter(masks.values())).shape
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        # Contiguous layout, slice axis first: slice k is one sequential read.
        f.create_dataset("image", data=image_slices.numpy())
        # Masks are mostly zeros: one LZF chunk per (slice, tissue) keeps the paper-scale cache
        # at about the size of its images (16.6 GB, not 29 GB) for ~1 ms of decompression per read.
        f.create_dataset("masks", data=mask_slices.numpy(), chunks=(1, 1, slice_size, slice_size),
                         compression="lzf")
        f.attrs.update(signature)
        f.attrs.update({"mean": stats[0], "std": stats[1], "shape": np.asarray(shape, dtype=np.int64),
                        "scan_id": record.scan_id, "tissues": list(cache_tissues(masks))})
    return path


def build_slice_caches(records: Sequence[ScanRecord], root: str | os.PathLike, cache_dir: str | os.PathLike,
                       slice_size: int, workers: int | None = None) -> list[Path]:
    """:func:`build_slice_cache` of every record; return their paths in ``records`` order.

    Caches that are missing or stale are built in ``workers`` processes (default: the CPU count,
    at most 4; each holds about 1 GB at 384 x 384 x 160) when there are at least two of them and
    ``POOL_MIN_VOXELS`` voxels in all, else in this process. The files do not depend on ``workers``.
    """
    if workers is None:
        workers = max(1, min(4, os.cpu_count() or 1))
    if isinstance(workers, bool) or not isinstance(workers, numbers.Integral) or workers < 1:
        raise ValueError(f"workers={workers!r} must be an int >= 1 or None")
    root, cache_dir = Path(root), Path(cache_dir)
    stale = [r for r in records
             if not _cache_matches(cache_path(r, cache_dir, slice_size), _source_signature(r, root, slice_size),
                                   scan_tissues(r, root))]
    voxels = sum(math.prod(formats.image_shape(r, root)) for r in stale)
    if workers > 1 and len(stale) > 1 and voxels >= POOL_MIN_VOXELS:
        n = min(int(workers), len(stale))
        # spawn, not fork: a forked child of a process that has used torch's thread pool can hang.
        with ProcessPoolExecutor(max_workers=n, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=torch.set_num_threads,
                                 initargs=(max(1, torch.get_num_threads() // n),)) as pool:
            list(pool.map(build_slice_cache, stale, repeat(root), repeat(cache_dir), repeat(slice_size)))
    else:
        for r in stale:
            build_slice_cache(r, root, cache_dir, slice_size)
    return [cache_path(r, cache_dir, slice_size) for r in records]


def _read_scan(record: ScanRecord, root: str | os.PathLike, check_sha256: bool,
               tissues: Sequence[str] | None = None) -> tuple[np.ndarray, dict[str, np.ndarray], tuple[float, float]]:
    """Validated image (H, W, D) float32, the masks of ``tissues`` (None: all the format labels) and the
    image's (mean, std)."""
    formats.validate_scan(record, root, check_values=False, check_sha256=check_sha256)
    image = formats.read_image(record, root)
    masks = formats.read_tissue_masks(record, root, tissues)
    return image, masks, zscore_stats(image)


# ------------------------------------------------------------------------- the dataset


class SliceDataset(torch.utils.data.Dataset):
    """2D sagittal slices of several scans with the mask of one tissue.

    Item ``i`` is slice ``k`` of scan ``scan_id`` where ``(scan_id, k) = dataset.index[i]``;
    scans follow ``records`` order and slices ascend within a scan.

    Args:
        records: scans to use (at least one).
        root: data root (any format of :mod:`kneelib.data.formats`; the records say which).
        tissue: a tissue name the data labels (``CACHE_TISSUES`` for IWOAI; DataError for one it does not).
        slice_size: in-plane size S the slices are resampled to.
        cache_dir: where the slice caches live (built on first use, see :func:`build_slice_cache`).
        preload: hold every slice in memory (``.images`` float32 (N, 1, S, S), ``.masks`` uint8
            (N, 1, S, S)) so a training loop can index batches without a DataLoader. For small
            profiles only; by default slices are read lazily from the caches, one contiguous
            read each, through HDF5 handles opened per process (they do not survive fork).

    ``dataset[i]`` returns ``(image, mask)``: float32 tensors (1, S, S); the image is z-scored,
    the mask is 0/1.
    """

    def __init__(self, records: Sequence[ScanRecord], root: str | os.PathLike, tissue: str,
                 slice_size: int, cache_dir: str | os.PathLike, preload: bool = False) -> None:
        if tissue not in CACHE_TISSUES:
            raise ValueError(f"tissue {tissue!r} is not one of the tissues the slice cache holds, {CACHE_TISSUES}")
        if isinstance(slice_size, bool) or not isinstance(slice_size, numbers.Integral) or slice_size < 1:
            raise ValueError(f"slice_size must be an integer >= 1, got {slice_size!r}")
        if len(records) == 0:
            raise ValueError("SliceDataset needs at least one record, got none")
        self.tissue = tissue
        self.slice_size = int(slice_size)
        self.preload = preload
        self.scan_ids = tuple(r.scan_id for r in records)
        self.paths = [build_slice_cache(r, root, cache_dir, self.slice_size) for r in records]
        self.channel = _channel(self.paths[0], tissue)
        for path in self.paths[1:]:
            if _channel(path, tissue) != self.channel:
                raise DataError(f"{path}: its cache holds other tissues than {self.paths[0]}; scans of one "
                                "data set must share their labels")
        self.depths = [_cache_depth(p) for p in self.paths]
        self.index = [(sid, k) for sid, d in zip(self.scan_ids, self.depths, strict=True) for k in range(d)]
        self._scan_of = np.repeat(np.arange(len(self.paths)), self.depths)
        self._slice_of = np.concatenate([np.arange(d) for d in self.depths])
        self._pid = os.getpid()
        self._handles: dict[int, tuple[h5py.File, h5py.Dataset, h5py.Dataset]] = {}
        self._images: torch.Tensor | None = None
        self._masks: torch.Tensor | None = None
        if preload:
            self._images, self._masks = self._load_all()

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self.raw_item(i)
        # uint8 -> float32 in numpy: torch's threaded cast of one slice costs ~100x more on a busy CPU.
        return image, torch.from_numpy(mask.numpy().astype(np.float32))

    def raw_item(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``dataset[i]`` with the mask as stored: image float32 (1, S, S), mask uint8 (1, S, S).

        A DataLoader's workers send a quarter of the mask bytes this way, and skip one cast per slice.
        """
        i = self._check_index(i)
        if self._images is not None:
            return self._images[i], self._masks[i]
        _, image, masks = self._handle(int(self._scan_of[i]))
        k = int(self._slice_of[i])
        return torch.from_numpy(image[k])[None], torch.from_numpy(masks[k, self.channel])[None]

    @property
    def images(self) -> torch.Tensor:
        """float32 (N, 1, S, S) z-scored slices; only with ``preload=True``."""
        if self._images is None:
            raise RuntimeError("SliceDataset.images exists only with preload=True")
        return self._images

    @property
    def masks(self) -> torch.Tensor:
        """uint8 (N, 1, S, S) 0/1 masks of ``tissue``; only with ``preload=True``."""
        if self._masks is None:
            raise RuntimeError("SliceDataset.masks exists only with preload=True")
        return self._masks

    def locate(self, i: int) -> tuple[str, int]:
        """(scan_id, slice k) of item ``i``."""
        return self.index[self._check_index(i)]

    def close(self) -> None:
        for f, _, _ in self._handles.values():
            f.close()
        self._handles = {}

    def __getstate__(self) -> dict[str, object]:
        # h5py handles cannot be pickled (spawned DataLoader workers); each process reopens its own.
        state = self.__dict__.copy()
        state["_handles"] = {}
        return state

    def _check_index(self, i: int) -> int:
        n = len(self.index)
        if not -n <= i < n:
            raise IndexError(f"index {i} out of range for {n} slices")
        return i % n

    def _handle(self, j: int) -> tuple[h5py.File, h5py.Dataset, h5py.Dataset]:
        if os.getpid() != self._pid:
            # Forked worker: handles inherited from the parent are unusable here; open fresh ones.
            self._handles = {}
            self._pid = os.getpid()
        if j not in self._handles:
            # No HDF5 chunk cache: every read is one (slice, tissue) chunk, never read twice in a row, and
            # the default cache (1 MiB per dataset) made each open scan cost ~5 MB per process: 176 scans,
            # 2 workers, ~2 GB (benchmarks/data_path.py).
            f = h5py.File(self.paths[j], "r", rdcc_nbytes=0)
            self._handles[j] = (f, f["image"], f["masks"])
        return self._handles[j]

    def _load_all(self) -> tuple[torch.Tensor, torch.Tensor]:
        images, masks = [], []
        for path in self.paths:
            with h5py.File(path, "r") as f:
                images.append(torch.from_numpy(f["image"][()]))
                masks.append(torch.from_numpy(f["masks"][:, self.channel]))
        return torch.cat(images)[:, None], torch.cat(masks)[:, None]


def _channel(path: Path, tissue: str) -> int:
    """The mask channel of ``tissue`` in the cache ``path``; DataError when its data does not label it."""
    with h5py.File(path, "r") as f:
        tissues = [_attr(t) for t in f.attrs["tissues"]]
    if tissue not in tissues:
        raise DataError(f"scan {path.stem.rsplit('_s', 1)[0]}: its data labels {tissues}, not {tissue!r}; "
                        "study only the tissues the data has (Profile.tissues)")
    return tissues.index(tissue)


def _cache_depth(path: Path) -> int:
    with h5py.File(path, "r") as f:
        return int(f["image"].shape[0])


# -------------------------------------------------------------------------- evaluation


def load_eval_volume(record: ScanRecord, root: str | os.PathLike, slice_size: int,
                     cache_dir: str | os.PathLike | None = None
                     ) -> tuple[torch.Tensor, dict[str, np.ndarray]]:
    """One scan for evaluation: network inputs plus full-resolution reference masks.

    Args:
        record: the scan.
        root: data root.
        slice_size: in-plane size S the network takes.
        cache_dir: if given, the slices come from (and build) the slice cache; else they are
            computed from the image directly, identically.

    Returns:
        ``slices``: float32 tensor (D, 1, S, S), z-scored by the volume's own statistics and
        resampled; ``masks``: ``{tissue: bool array (H, W, D)}`` at the original resolution,
        so predictions are compared in the scan's own voxel grid.
    """
    if slice_size < 1:
        raise ValueError(f"slice_size must be >= 1, got {slice_size}")
    if cache_dir is not None:
        path = build_slice_cache(record, root, cache_dir, slice_size)
        with h5py.File(path, "r") as f:
            slices = torch.from_numpy(f["image"][()])[:, None]
        return slices, formats.read_tissue_masks(record, root)
    image, masks, stats = _read_scan(record, root, check_sha256=False)
    return _volume_to_slices(zscore(image, stats), slice_size), masks
