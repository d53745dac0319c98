"""The synthetic knee phantoms (:mod:`kneelib.data.phantoms`) written as an nnU-Net v2 raw folder.

The same anatomy as :func:`kneelib.data.phantoms.make_scan` (same seed, same scan ids, same arrays),
laid out as OAIZIB-CM ships (:mod:`kneelib.data.nnunet`)::

    dataset.json                        nnU-Net v2: labels name -> value, one channel, numTraining
    imagesTr/train_001_V00_0000.nii.gz  the train and valid subjects (the reader draws its own valid split)
    labelsTr/train_001_V00.nii.gz
    imagesTs/test_001_V00_0000.nii.gz   the test subjects
    labelsTs/test_001_V00.nii.gz
    phantom_params.json                 what was written (a rerun with the same parameters reuses the folder)

Labels are OAIZIB-CM's values (``kneelib.names.OAIZIB_LABELS``): 0 background, 2 femoral cartilage,
4 medial tibial cartilage, 5 lateral tibial cartilage. The phantoms have no bone masks, so femur (1) and
tibia (3) are absent from the files and from ``dataset.json``; patellar cartilage and the menisci, which
OAIZIB-CM does not label, are background.

Storage order: the phantom arrays (rows towards inferior, columns towards posterior, slices towards the
patient's left: a right knee, lateral to medial) are stored transposed and flipped to RAS order (axis 0
left -> right, 1 posterior -> anterior, 2 inferior -> superior: the slice axis first), with the affine
that says so, so that reading them exercises the reader's reorientation.
"""

from __future__ import annotations

import gzip
import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.orientations import apply_orientation, axcodes2ornt, inv_ornt_aff, ornt_transform

from kneelib.core.atomic import atomic_path, write_json
from kneelib.data import phantoms
from kneelib.data.iwoai import seg_to_tissues
from kneelib.data.manifest import ScanRecord, iwoai_records
from kneelib.data.nnunet import DATASET_JSON, FOLDERS, KNOWN_TISSUES, TARGET_AXCODES
from kneelib.names import IWOAI, NNUNET, OAIZIB_LABELS, TIMEPOINTS, TISSUE_LABELS

# Bump whenever the files change for given parameters, so stored folders are rewritten.
WRITER_VERSION = 1
ENDING = ".nii.gz"
STORAGE_AXCODES = ("R", "A", "S")
# World direction (RAS+ mm) of each target axis code.
_DIRECTION = {"I": (0, 0, -1), "P": (0, -1, 0), "L": (-1, 0, 0)}
_CASE_FILE = re.compile(r"^(train|valid|test)_\d{3}_V0[01](_0000)?\.nii\.gz$")


def phantom_labels() -> dict[str, int]:
    """The OAIZIB-CM labels the phantoms can paint (name -> value): background and the tissues that both
    OAIZIB-CM and the phantoms' IWOAI channels have; no bones (the phantoms have no bone masks)."""
    return {name: value for name, value in OAIZIB_LABELS.items()
            if name == "background" or KNOWN_TISSUES.get(name) in TISSUE_LABELS[IWOAI]}


def to_oaizib_labels(seg: np.ndarray) -> np.ndarray:
    """IWOAI one-hot labels (H, W, D, 6) -> OAIZIB-CM integer labels, uint8 (H, W, D); tissues OAIZIB-CM
    does not label (patellar cartilage, menisci) become background."""
    labels = np.zeros(seg.shape[:3], dtype=np.uint8)
    for name, value in phantom_labels().items():
        if name != "background":
            tissue = KNOWN_TISSUES[name]
            labels[seg_to_tissues(seg, [tissue])[tissue]] = value
    return labels


def phantom_affine(shape: Sequence[int]) -> np.ndarray:
    """The (4, 4) affine of a phantom array in the reader's target orientation (``TARGET_AXCODES``),
    voxel spacing :func:`kneelib.data.phantoms.phantom_spacing_mm`, centred on the world origin."""
    spacing = phantoms.phantom_spacing_mm(shape)
    affine = np.eye(4)
    affine[:3, :3] = np.column_stack([np.array(_DIRECTION[c], float) * s for c, s in zip(TARGET_AXCODES, spacing)])
    affine[:3, 3] = -affine[:3, :3] @ ((np.asarray(shape, float) - 1) / 2)
    return affine


def to_storage(array: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An array in the target orientation, with its affine -> the same voxels in ``STORAGE_AXCODES`` order
    and the affine that describes them."""
    ornt = ornt_transform(axcodes2ornt(TARGET_AXCODES), axcodes2ornt(STORAGE_AXCODES))
    stored = np.ascontiguousarray(apply_orientation(array, ornt))
    return stored, affine @ inv_ornt_aff(ornt, array.shape)


def _nifti_bytes(array: np.ndarray, affine: np.ndarray) -> bytes:
    """A gzipped NIfTI-1 file of ``array`` with ``affine`` as both qform and sform (scanner coordinates)."""
    img = nib.Nifti1Image(array, affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    # Level 1: the noisy float images hardly compress further; mtime 0 keeps files byte-identical.
    return gzip.compress(img.to_bytes(), compresslevel=1, mtime=0)


def _write_nifti(path: Path, array: np.ndarray, affine: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(_nifti_bytes(array, affine))


def case_files(record: ScanRecord) -> tuple[str, str]:
    """(image, label) paths, relative to the folder, of a phantom scan: test subjects in imagesTs."""
    images = "imagesTs" if record.split == "test" else "imagesTr"
    return f"{images}/{record.scan_id}_0000{ENDING}", f"{FOLDERS[images]}/{record.scan_id}{ENDING}"


def _write_case(job: tuple[str, ScanRecord, tuple[int, int, int], int]) -> str:
    """Render one scan and write its image and label files; job = (out_dir, record, shape, seed)."""
    out_dir, r, shape, seed = job
    image, seg = phantoms.make_scan(shape, seed, r.split, int(r.subject[-3:]), TIMEPOINTS.index(r.timepoint))
    affine = phantom_affine(shape)
    image_file, label_file = case_files(r)
    _write_nifti(Path(out_dir) / image_file, *to_storage(image, affine))
    _write_nifti(Path(out_dir) / label_file, *to_storage(to_oaizib_labels(seg), affine))
    return r.scan_id


def _dataset_json(records: list[ScanRecord]) -> dict:
    return {
        "name": "KneePhantoms",
        "description": "kneelib synthetic knee phantoms in OAIZIB-CM's nnU-Net v2 layout and labels",
        "channel_names": {"0": "DESS"},
        "labels": phantom_labels(),
        "numTraining": sum(r.split != "test" for r in records),
        "file_ending": ENDING,
    }


def _case_files_present(out_dir: Path) -> list[Path]:
    folders = [out_dir / f for pair in FOLDERS.items() for f in pair if (out_dir / f).is_dir()]
    return [f for d in folders for f in d.iterdir() if _CASE_FILE.match(f.name)]


def _prepare(out_dir: Path, params: dict) -> bool:
    """Make ``out_dir`` ready; return whether existing case files may be kept (same parameters).

    A folder with a dataset.json or case files but no phantom parameters is not ours (it may hold real
    data): refuse it. dataset.json marks a complete folder, so it goes first and is written last.
    """
    stored = phantoms._stored_params(out_dir / phantoms.PARAMS_FILE)
    if stored is None and (_case_files_present(out_dir) or (out_dir / DATASET_JSON).exists()):
        raise FileExistsError(f"{out_dir} holds nnU-Net files but no {phantoms.PARAMS_FILE}: not a phantom "
                              "folder, refusing to overwrite it")
    (out_dir / DATASET_JSON).unlink(missing_ok=True)
    if stored == params:
        return True
    for f in _case_files_present(out_dir):
        f.unlink()
    write_json(out_dir / phantoms.PARAMS_FILE, params)
    return False


def write_nnunet_dataset(out_dir: str | os.PathLike, subjects: Mapping[str, int] | None = None,
                         shape: Sequence[int] = (384, 384, 160), seed: int = 2020,
                         workers: int | None = None, progress: bool = False) -> Path:
    """Write the phantoms as an nnU-Net v2 raw folder under ``out_dir``; return ``out_dir``.

    Args:
        out_dir: the folder (created); afterwards the ``root`` of :func:`kneelib.data.nnunet.read_records`.
        subjects: ``{split: count}`` as :func:`kneelib.data.phantoms.make_dataset` (default 60/14/14),
            each subject with V00 and V01; train and valid go to imagesTr, test to imagesTs.
        shape: (H, W, D) voxels of the phantom arrays (as the reader returns them).
        seed: the data set's seed: scan ``train_001_V00`` is the same anatomy, image and masks as in
            the IWOAI-layout phantoms of that seed.
        workers, progress: as :func:`kneelib.data.phantoms.make_dataset` (the files do not depend on them).

    A complete folder with the same parameters is reused untouched; an interrupted one is completed;
    one with other parameters is replaced. Files are written atomically, dataset.json last.
    """
    subjects = phantoms._check_subjects(phantoms.IWOAI_SUBJECTS if subjects is None else subjects)
    shape, seed, out_dir = phantoms._check_shape(shape), phantoms._check_seed(seed), Path(out_dir)
    workers = phantoms._check_workers(workers)
    params = {"format": NNUNET, "phantom_version": phantoms.PHANTOM_VERSION, "writer_version": WRITER_VERSION,
              "subjects": subjects, "shape": list(shape), "seed": seed}
    records = iwoai_records(subjects, phantoms.phantom_spacing_mm(shape))
    files = [out_dir / f for r in records for f in case_files(r)]
    if (phantoms._stored_params(out_dir / phantoms.PARAMS_FILE) == params and (out_dir / DATASET_JSON).is_file()
            and all(f.is_file() for f in files)):
        return out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    keep = _prepare(out_dir, params)
    todo = [r for r in records if not (keep and all((out_dir / f).is_file() for f in case_files(r)))]
    jobs = [(str(out_dir), r, shape, seed) for r in todo]
    if len(jobs) * int(np.prod(shape)) < phantoms._POOL_MIN_VOXELS:
        workers = 1  # starting processes would cost more than it saves
    for _ in phantoms._progress(phantoms._run_jobs(jobs, workers, _write_case), len(jobs), progress):
        pass
    with atomic_path(out_dir / DATASET_JSON) as tmp:
        tmp.write_text(json.dumps(_dataset_json(records), indent=2) + "\n")
    return out_dir



