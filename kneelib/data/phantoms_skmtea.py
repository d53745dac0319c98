"""The synthetic knee phantoms of :mod:`kneelib.data.phantoms` written as a SKM-TEA v1.0.0 folder.

The anatomy and the image are exactly those :func:`kneelib.data.phantoms.make_scan` renders for the IWOAI
layout; only the files differ (:mod:`kneelib.data.skmtea` documents the format):

- ``image_files/MTR_NNN.h5``: ``echo1`` and ``echo2`` int16 (H, W, D), ``seg`` uint8 (H, W, D, 6) in SKM-TEA's
  channel order (0 patellar, 1 femoral, 2 medial tibial, 3 lateral tibial cartilage, 4 medial, 5 lateral
  meniscus), and ``stats/{echo1,echo2,rss}/{mean,std,min,max}`` as the real files have.
- ``annotations/v1.0.0/{train,val,test}.json`` with the real files' top-level keys and per-scan fields;
  ``categories``, ``tissues`` and ``annotations`` (pathology boxes) are empty lists.
- ``phantom_params.json``: the parameters, so a rerun with the same ones reuses the folder.

Scans: both timepoints of every phantom subject, as two scan ids of one ``subject_id`` (timepoint 0 and 1),
numbered ``MTR_001``, ``MTR_002``, ... through train, valid, test. Real SKM-TEA has one scan per subject; keeping
both timepoints gives scan for scan the same data as the IWOAI phantoms (the same study can run on either
folder, and every scan's voxel counts can be compared), and it tests that the reader groups scans by
``subject_id``, not by scan, which one scan per subject would leave untested.

Echoes: each voxel's image value x is split as echo1 = x cos(a), echo2 = x sin(a) with
tan(a) = 0.2 + 0.6 x / max(x), so sqrt(echo1^2 + echo2^2) = x: the second qDESS echo keeps long-T2 fluid (the
brightest voxels) bright and darkens the rest more. Both are scaled so that the brightest voxel of the scan
is ``INT16_PEAK`` and rounded to int16; the root-sum-of-squares then equals the phantom image times that scale
to within sqrt(2)/2 (the rounding of the two echoes). The suite z-scores each volume, so the scale is immaterial.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import h5py
import numpy as np

from kneelib.core.atomic import atomic_path, write_json
from kneelib.data import skmtea
from kneelib.data.phantoms import (
    PARAMS_FILE,
    PHANTOM_VERSION,
    _check_seed,
    _check_shape,
    _check_subjects,
    _stored_params,
    make_scan,
    phantom_spacing_mm,
)
from kneelib.names import IWOAI_SUBJECTS, SEG_CHANNEL_NAMES, SKMTEA_SEG_CHANNEL_NAMES, SPLITS, TIMEPOINTS

# Bump when the files written for given parameters change (layout, echo split, JSON fields).
SKMTEA_WRITER_VERSION = 1
INT16_PEAK = 30000  # the brightest voxel of each scan, in int16 units (int16 holds up to 32767)
ECHO2_RATIO = (0.2, 0.8)  # echo2 / echo1 at the darkest and at the brightest voxel
# SKM-TEA channel c is IWOAI channel _TO_SKMTEA[c] (patellar, femoral, medial tibial, lateral tibial, ...).
_TO_SKMTEA = [SEG_CHANNEL_NAMES.index(name) for name in SKMTEA_SEG_CHANNEL_NAMES]
ORIENTATION = ["SI", "AP", "LR"]


@dataclasses.dataclass(frozen=True)
class PhantomScan:
    """One phantom scan in the SKM-TEA folder and the IWOAI phantom scan it is (``make_scan`` arguments)."""

    split: str          # train | valid | test
    index: int          # the subject's number in its split (IWOAI phantom ``{split}_{index:03d}``)
    timepoint: int      # 0 (V00) or 1 (V01)
    scan_id: str        # MTR_NNN
    subject_id: int     # numbered through all splits from 1


def phantom_scans(subjects: Mapping[str, int]) -> list[PhantomScan]:
    """The scans of a phantom SKM-TEA folder with ``subjects[split]`` subjects, two timepoints each."""
    subjects = _check_subjects(subjects)
    if len(subjects) != len(SPLITS):
        # SKM-TEA always has its three annotation files, and the reader refuses a split without scans.
        raise ValueError(f"subjects={dict(subjects)!r} must give every split {SPLITS} at least one subject")
    scans, subject_id = [], 0
    for split, n in subjects.items():
        for index in range(1, n + 1):
            subject_id += 1
            for timepoint in range(len(TIMEPOINTS)):
                scans.append(PhantomScan(split, index, timepoint, f"MTR_{len(scans) + 1:03d}", subject_id))
    return scans


def split_echoes(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two int16 echoes whose root-sum-of-squares is ``image`` scaled to peak ``INT16_PEAK``.

    Args:
        image: float (H, W, D), non-negative, not all zero (a phantom image).

    Returns:
        (echo1, echo2), int16 (H, W, D); sqrt(echo1^2 + echo2^2) = image * INT16_PEAK / image.max() to within
        sqrt(2)/2.
    """
    x = image.astype(np.float64)
    peak = float(x.max())
    if not peak > 0 or not math.isfinite(peak) or x.min() < 0:
        raise ValueError(f"image must be finite, non-negative and not all zero (min {x.min()}, max {peak})")
    lo, hi = ECHO2_RATIO
    angle = np.arctan(lo + (hi - lo) * x / peak)
    scaled = x * (INT16_PEAK / peak)
    return (np.rint(scaled * np.cos(angle)).astype(np.int16), np.rint(scaled * np.sin(angle)).astype(np.int16))


def iwoai_to_skmtea_seg(seg: np.ndarray) -> np.ndarray:
    """(..., 6) labels in IWOAI channel order -> the same labels in SKM-TEA channel order."""
    return np.ascontiguousarray(seg[..., _TO_SKMTEA])


def _stats(arrays: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    return {k: {"mean": float(a.mean(dtype=np.float64)), "std": float(a.std(dtype=np.float64)),
                "min": float(a.min()), "max": float(a.max())} for k, a in arrays.items()}


def _write_scan(path: Path, image: np.ndarray, seg: np.ndarray) -> None:
    """Write one ``MTR_NNN.h5`` atomically: echoes, labels in SKM-TEA order, stats."""
    echo1, echo2 = split_echoes(image)
    rss = np.sqrt(echo1.astype(np.float64) ** 2 + echo2.astype(np.float64) ** 2)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("echo1", data=echo1)
        f.create_dataset("echo2", data=echo2)
        f.create_dataset(skmtea.SEG_KEY, data=iwoai_to_skmtea_seg(seg))
        for kind, values in _stats({"echo1": echo1, "echo2": echo2, "rss": rss}).items():
            for name, value in values.items():
                f.create_dataset(f"stats/{kind}/{name}", data=value)


def _image_entry(i: int, scan: PhantomScan, shape: tuple[int, int, int]) -> dict:
    msp_id = f"{scan.subject_id:07d}_V{scan.timepoint:02d}"
    return {"id": i, "file_name": f"{scan.scan_id}.h5", "msp_id": msp_id, "msp_file_name": f"{msp_id}.h5",
            "scan_id": scan.scan_id, "subject_id": scan.subject_id, "timepoint": scan.timepoint,
            "voxel_spacing": list(phantom_spacing_mm(shape)), "matrix_shape": list(shape),
            "orientation": list(ORIENTATION), "num_echoes": 2, "inspected": True}


def _annotation(split_file: str, scans: list[PhantomScan], shape: tuple[int, int, int]) -> dict:
    return {"info": {"contributor": "kneelib synthetic phantoms", "description": f"SKM-TEA-format phantoms - "
                     f"{split_file}", "version": "v1.0.0"},
            "categories": [], "tissues": [],
            "images": [_image_entry(i, s, shape) for i, s in enumerate(scans, start=1)],
            "annotations": []}


def _annotation_files(out_dir: Path) -> list[Path]:
    return [skmtea.annotation_path(out_dir, stem) for stem in skmtea.SPLIT_FILES]


def _scan_files(out_dir: Path) -> list[Path]:
    folder = out_dir / skmtea.IMAGE_DIR
    return sorted(folder.glob("MTR_*.h5")) if folder.is_dir() else []


def _complete(out_dir: Path, scans: list[PhantomScan]) -> bool:
    """Whether ``out_dir`` reads as a SKM-TEA folder with exactly ``scans``."""
    try:
        records = skmtea.read_records(out_dir)
    except (OSError, ValueError):
        return False
    return [r.scan_id for r in records] == [s.scan_id for s in scans]


def _prepare(out_dir: Path, params: dict) -> bool:
    """Make ``out_dir`` ready to (re)write; return whether finished scan files may be kept.

    The annotation JSONs mark a complete folder, so they are removed first. Matching stored parameters mean
    an interrupted run of the same folder (scans are written atomically: a present one is finished); other
    parameters mean the old scans go. Scans or annotations without a parameters file may be real data: refused.
    """
    stored = _stored_params(out_dir / PARAMS_FILE)
    if stored is None and (_scan_files(out_dir) or any(p.exists() for p in _annotation_files(out_dir))):
        raise FileExistsError(f"{out_dir} holds SKM-TEA scans or annotations but no {PARAMS_FILE}: not a phantom "
                              "folder, refusing to overwrite it")
    for p in _annotation_files(out_dir):
        p.unlink(missing_ok=True)
    if stored == params:
        return True
    for f in _scan_files(out_dir):
        f.unlink()
    write_json(out_dir / PARAMS_FILE, params)
    return False


def write_skmtea_dataset(out_dir: str | os.PathLike, subjects: Mapping[str, int] | None = None,
                         shape: Sequence[int] = (512, 512, 160), seed: int = 2020) -> Path:
    """Write the phantoms of :func:`kneelib.data.phantoms.make_dataset` as a SKM-TEA v1.0.0 folder.

    Args:
        out_dir: the folder to write (created if needed).
        subjects: ``{split: count}`` for all three splits (default 60/14/14, as the IWOAI phantoms); each
            subject has two scans.
        shape: (H, W, D) voxels; spacing 140/H, 140/W, 112/D mm, written as each scan's ``voxel_spacing``.
        seed: the phantoms' seed: scan ``MTR_NNN`` holds the anatomy and image of the IWOAI phantom scan of the
            same split, subject and timepoint of ``make_dataset(..., seed=seed)``.

    Returns:
        ``out_dir``, the data root :func:`kneelib.data.skmtea.read_records` reads.

    A complete folder with the same parameters is reused untouched; an interrupted one is completed; one with
    other parameters is replaced. Scans are written atomically and the annotation JSONs last.
    """
    subjects = _check_subjects(IWOAI_SUBJECTS if subjects is None else subjects)
    shape, seed, out_dir = _check_shape(shape), _check_seed(seed), Path(out_dir)
    params = {"format": skmtea.FORMAT, "phantom_version": PHANTOM_VERSION, "writer_version": SKMTEA_WRITER_VERSION,
              "subjects": subjects, "shape": list(shape), "seed": seed}
    scans = phantom_scans(subjects)  # checks that every split has subjects before anything is written
    if _stored_params(out_dir / PARAMS_FILE) == params and _complete(out_dir, scans):
        return out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    keep = _prepare(out_dir, params)
    for scan in scans:
        path = out_dir / skmtea.IMAGE_DIR / f"{scan.scan_id}.h5"
        if not (keep and path.is_file()):
            _write_scan(path, *make_scan(shape, seed, scan.split, scan.index, scan.timepoint))
    for stem, split in skmtea.SPLIT_FILES.items():
        write_json(skmtea.annotation_path(out_dir, stem), _annotation(stem, [s for s in scans if s.split == split],
                                                                       shape))
    return out_dir
