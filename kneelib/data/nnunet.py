"""nnU-Net raw folders (OAIZIB-CM, or anyone's own nnU-Net data set): a validated reader.

Layout (nnU-Net v1 and v2 alike)::

    dataset.json                      labels (names and integer values), file_ending, channels
    imagesTr/<case>_0000.nii.gz       training images, one file per case and channel
    labelsTr/<case>.nii.gz            their integer label maps
    imagesTs/<case>_0000.nii.gz       the test split
    labelsTs/<case>.nii.gz

``dataset.json`` ``labels`` maps names to values in nnU-Net v2 (``{"background": 0, "femoral cartilage":
2}``) and values to names in v1 (``{"0": "background", "2": "femoral cartilage"}``); both are read. Each
label name is matched to the tissue vocabulary (``kneelib.names.ALL_TISSUES``) after normalizing case,
spaces, underscores and hyphens ("Femoral_Cartilage" is femoral cartilage). Bones and background are
known non-tissues: ignored, and listed in :class:`LabelMap`. Any other name is refused, never guessed: the
``label_map`` option names it (``{"osteophyte": "ignore", "7": "patellar_cartilage"}``). A whole tissue
is the union of its parts where the data labels both (tibial cartilage = medial | lateral tibial
cartilage, meniscus = medial | lateral meniscus: ``kneelib.names.TISSUE_PARTS``).

Orientation: NIfTI files may store their voxels in any order; the affine says which. Every image and
label map is reoriented (``nibabel.orientations``) to the axes of the IWOAI files and the phantoms,
whatever the storage order:

- axis 0 towards inferior (row 0 is the most superior), axis 1 towards posterior (column 0 is anterior),
- axis 2 the left-right, sagittal slice axis, towards the patient's left.

For a right knee axis 2 runs lateral to medial, as in the phantoms; for a left knee medial to lateral
(the masks need no flip: medial and lateral are anatomical labels). ``spacing_mm`` follows the
returned axes. Oblique scans take the nearest axes (no resampling).

Splits: ``imagesTs``/``labelsTs`` are the test split. A fixed, seeded share of the ``imagesTr`` *subjects*
(options ``valid_fraction=0.2``, ``split_seed=0``) is the validation split, the rest is training, so no
subject is in two splits. Default subject rule: a case id ending in an OAI visit code (``_V00``,
``_V01``, ...) is that subject's scan at that timepoint (``9001104_V01`` is subject ``9001104``, timepoint
``V01``); any other case id is a subject of its own with timepoint ``""``. The options ``subject`` (a
regular expression matched against the whole case id: its group ``subject``, or else its first group,
is the subject; a group ``timepoint`` the timepoint) or ``subject_of`` (a function case id -> subject)
replace the rule.

One image channel: the suite reads ``_0000``. A data set with a second channel (``_0001`` files, or two
``channel_names``) is refused unless the option ``extra_channels="ignore"``, which reads ``_0000`` and
ignores the others.

Every problem raises :class:`~kneelib.data.iwoai.DataError` naming the file and the value. Options
(``**options`` of every function here, the same set for all; an unknown one is a TypeError):
``label_map``, ``valid_fraction``, ``split_seed``, ``subject``, ``subject_of``, ``extra_channels``,
``affine_tol_mm``, ``check_values`` (see :class:`NnunetOptions`).
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.filebasedimages import ImageFileError
from nibabel.orientations import apply_orientation, axcodes2ornt, inv_ornt_aff, io_orientation, ornt_transform

from kneelib.data.iwoai import DataError
from kneelib.data.manifest import ScanRecord
from kneelib.names import ALL_TISSUES, NNUNET, SPLITS, TISSUE_PARTS, tissue_name

FORMAT = NNUNET
DATASET_JSON = "dataset.json"
# images folder -> labels folder -> split ("Tr" is split into train and valid by subject).
FOLDERS = {"imagesTr": "labelsTr", "imagesTs": "labelsTs"}
DEFAULT_FILE_ENDING = ".nii.gz"
NIFTI_ENDINGS = (".nii.gz", ".nii")
# Where the returned arrays' axes point (nibabel axis codes): inferior, posterior, left.
TARGET_AXCODES = ("I", "P", "L")
# A case id ending in an OAI visit code is one subject's scan at that visit.
DEFAULT_SUBJECT = r"(?P<subject>.+?)(?:_(?P<timepoint>V\d\d))?"
IGNORE = "ignore"

# Label names (normalized: lower case, single spaces) that are tissues of the vocabulary.
KNOWN_TISSUES = {t.replace("_", " "): t for t in ALL_TISSUES} | {
    "femur cartilage": "femoral_cartilage",
    "tibia cartilage": "tibial_cartilage",
    "medial tibia cartilage": "medial_tibial_cartilage",
    "lateral tibia cartilage": "lateral_tibial_cartilage",
    "patella cartilage": "patellar_cartilage",
    "menisci": "meniscus",
}
# Label names that are known not to be tissues of the vocabulary: ignored (and listed).
KNOWN_NON_TISSUES = frozenset({
    "background", "bone", "femur", "tibia", "patella", "fibula",
    "femoral bone", "tibial bone", "patellar bone",
})


@dataclass(frozen=True)
class NnunetOptions:
    """The reader's options, shared by every function of this module."""

    label_map: Mapping[str, str] | None = None  # label name or value -> tissue name/code or "ignore"
    valid_fraction: float = 0.2  # share of the imagesTr subjects held out as the validation split
    split_seed: int = 0  # seed of that draw: the split is fixed for a given seed and set of subjects
    subject: str | None = None  # regex on the case id: group "subject" (else group 1), optional "timepoint"
    subject_of: Callable[[str], str] | None = None  # case id -> subject (timepoint ""); instead of `subject`
    extra_channels: str = "refuse"  # "refuse" a second image channel (_0001), or "ignore" it
    affine_tol_mm: float = 0.01  # largest difference between image and label affines (mm)
    check_values: bool = True  # validate_scan also reads the arrays (finite image, known label values)


def _options(options: Mapping[str, object]) -> NnunetOptions:
    known = {f.name for f in fields(NnunetOptions)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(f"unknown nnU-Net reader option(s) {unknown}; known: {sorted(known)}")
    opts = NnunetOptions(**options)
    if not 0.0 < float(opts.valid_fraction) < 1.0:
        raise ValueError(f"valid_fraction={opts.valid_fraction!r} must be between 0 and 1 (exclusive)")
    if opts.extra_channels not in ("refuse", "ignore"):
        raise ValueError(f"extra_channels={opts.extra_channels!r} must be 'refuse' or 'ignore'")
    if opts.subject is not None and opts.subject_of is not None:
        raise ValueError("give at most one of the options subject (a regex) and subject_of (a function)")
    return opts


# ---------------------------------------------------------------------------- dataset.json


@dataclass(frozen=True)
class LabelMap:
    """What a data set's label values mean.

    Attributes:
        source: the ``dataset.json`` they come from.
        names: label value -> its name in ``dataset.json``.
        tissues: tissue of the vocabulary -> the label values whose union it is, in ``ALL_TISSUES`` order.
        ignored: name -> value of the labels that are no tissue (background, bones, ``"ignore"``).
    """

    source: Path
    names: dict[int, str]
    tissues: dict[str, tuple[int, ...]]
    ignored: dict[str, int]


@dataclass(frozen=True)
class DatasetInfo:
    """The parts of ``dataset.json`` the reader uses."""

    source: Path
    labels: dict[int, str]  # value -> name
    file_ending: str
    channels: dict[str, str]  # channel index -> name ({} when dataset.json gives none)
    num_training: int | None


def normalize_label_name(name: str) -> str:
    """``"Medial_Tibial-Cartilage "`` -> ``"medial tibial cartilage"``: lower case, runs of spaces,
    underscores and hyphens as one space."""
    return re.sub(r"[\s_\-]+", " ", name.strip().lower())


def read_dataset_json(root: Path) -> DatasetInfo:
    """Read and check ``root/dataset.json``.

    Raises:
        DataError naming the file: missing, not JSON, no ``labels``, labels in neither the v2 form
        (name -> value) nor the v1 form (value -> name), a value twice or negative, a ``file_ending``
        that is not NIfTI.
    """
    path = Path(root) / DATASET_JSON
    if not path.is_file():
        raise DataError(f"{path}: missing; an nnU-Net raw folder needs a dataset.json with its labels")
    try:
        meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise DataError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("labels"), dict) or not meta["labels"]:
        got = meta.get("labels") if isinstance(meta, dict) else meta
        raise DataError(f"{path}: needs a non-empty 'labels' object (name -> value), got {got!r}")
    ending = meta.get("file_ending", DEFAULT_FILE_ENDING)
    if ending not in NIFTI_ENDINGS:
        raise DataError(f"{path}: file_ending {ending!r} is not NIfTI; this reader reads {list(NIFTI_ENDINGS)}")
    channels = meta.get("channel_names", meta.get("modality", {}))
    if not isinstance(channels, dict):
        raise DataError(f"{path}: channel_names/modality must be an object, got {channels!r}")
    num_training = meta.get("numTraining")
    if num_training is not None and (not isinstance(num_training, int) or isinstance(num_training, bool)):
        raise DataError(f"{path}: numTraining must be an integer, got {num_training!r}")
    labels = _parse_labels(meta["labels"], path)
    return DatasetInfo(path, labels, ending, {str(k): str(v) for k, v in channels.items()}, num_training)


def _parse_labels(labels: dict, path: Path) -> dict[int, str]:
    """``labels`` of dataset.json as value -> name, from either nnU-Net version's form."""
    is_int = lambda v: isinstance(v, int) and not isinstance(v, bool)
    digits = lambda s: isinstance(s, str) and s.strip().isdigit()
    if all(is_int(v) for v in labels.values()):  # v2: name -> value
        pairs = [(v, k) for k, v in labels.items()]
    elif all(digits(k) and isinstance(v, str) and not digits(v) for k, v in labels.items()):  # v1
        pairs = [(int(k), v) for k, v in labels.items()]
    else:
        bad = {k: v for k, v in labels.items() if not (is_int(v) or (digits(k) and isinstance(v, str)))}
        raise DataError(f"{path}: labels must map names to integer values (nnU-Net v2) or values to "
                        f"names (v1); cannot read {bad or labels!r} (region-based labels are not supported)")
    out: dict[int, str] = {}
    for value, name in pairs:
        if value < 0:
            raise DataError(f"{path}: label {name!r} has a negative value {value}")
        if value in out:
            raise DataError(f"{path}: label value {value} is named twice ({out[value]!r} and {name!r})")
        out[value] = name
    return out


def dataset_labels(root: Path, **options) -> LabelMap:
    """The tissues a data set's labels provide, from its ``dataset.json`` and the ``label_map`` option.

    Each label is mapped by ``label_map`` (keyed by label name, normalized, or by value), else by its
    normalized name (:data:`KNOWN_TISSUES`; :data:`KNOWN_NON_TISSUES` are ignored). Whole tissues are
    added where both their parts are labelled (:data:`kneelib.names.TISSUE_PARTS`).

    Raises:
        DataError naming dataset.json and every label it cannot map (with its value), or when no label
        is a tissue of the vocabulary; ValueError for a ``label_map`` entry that names no label or
        maps to an unknown tissue.
    """
    opts = _options(options)
    info = read_dataset_json(root)
    overrides = _overrides(opts.label_map, info)
    atoms: dict[str, list[int]] = {}
    ignored: dict[str, int] = {}
    unknown: dict[str, int] = {}
    for value, name in sorted(info.labels.items()):
        target = overrides.get(value)
        if target is None:
            norm = normalize_label_name(name)
            target = KNOWN_TISSUES.get(norm, IGNORE if norm in KNOWN_NON_TISSUES else None)
        if target is None:
            unknown[name] = value
        elif target == IGNORE:
            ignored[name] = value
        else:
            atoms.setdefault(target, []).append(value)
    if unknown:
        raise DataError(f"{info.source}: label(s) {unknown} (name: value) are no tissue this reader knows; "
                        f"name them with the option label_map, e.g. label_map={{{next(iter(unknown))!r}: "
                        f"'femoral_cartilage'}} or 'ignore' (tissues: {list(ALL_TISSUES)})")
    tissues = _with_wholes(atoms)
    if not tissues:
        raise DataError(f"{info.source}: no label is a tissue of the vocabulary (labels {info.labels}); "
                        f"map one with the option label_map")
    return LabelMap(info.source, info.labels, tissues, ignored)


def _overrides(label_map: Mapping[str, str] | None, info: DatasetInfo) -> dict[int, str]:
    """``label_map`` as label value -> tissue name or IGNORE; ValueError naming a bad entry."""
    by_name = {normalize_label_name(n): v for v, n in info.labels.items()}
    out: dict[int, str] = {}
    for key, target in (label_map or {}).items():
        if isinstance(key, int) or (isinstance(key, str) and key.strip().isdigit()):
            value = int(key)
        else:
            value = by_name.get(normalize_label_name(str(key)), -1)
        if value not in info.labels:
            raise ValueError(f"label_map key {key!r} names no label of {info.source} (labels {info.labels})")
        out[value] = IGNORE if str(target).lower() == IGNORE else tissue_name(str(target))
    return out


def _with_wholes(atoms: dict[str, list[int]]) -> dict[str, tuple[int, ...]]:
    """Tissue -> sorted label values, adding each whole tissue whose parts are both labelled."""
    tissues = {t: set(v) for t, v in atoms.items()}
    for whole, parts in TISSUE_PARTS.items():
        if all(p in tissues for p in parts):
            tissues[whole] = tissues.get(whole, set()).union(*(tissues[p] for p in parts))
    return {t: tuple(sorted(tissues[t])) for t in ALL_TISSUES if t in tissues}


def tissues_present(root: Path, **options) -> tuple[str, ...]:
    """The vocabulary tissues this data set can give, in ``ALL_TISSUES`` order (from ``dataset.json``):
    ``("femoral_cartilage", "tibial_cartilage", "medial_tibial_cartilage", "lateral_tibial_cartilage")``
    for OAIZIB-CM."""
    return tuple(dataset_labels(root, **options).tissues)


def looks_like(root: Path) -> bool:
    """Whether ``root`` has an nnU-Net raw folder's layout: a ``dataset.json`` and an ``imagesTr/`` folder."""
    root = Path(root)
    return (root / DATASET_JSON).is_file() and (root / "imagesTr").is_dir()


# ---------------------------------------------------------------------------- the records


@dataclass(frozen=True)
class _Case:
    case: str
    folder: str  # "imagesTr" or "imagesTs"
    image: Path
    label: Path


def _list_cases(root: Path, folder: str, info: DatasetInfo, opts: NnunetOptions) -> list[_Case]:
    """The cases of one images folder, each with its channel-0 image and its label file, sorted by id."""
    images, labels = root / folder, root / FOLDERS[folder]
    if not images.is_dir():
        return []
    pattern = re.compile(rf"(?P<case>.+)_(?P<channel>\d{{4}}){re.escape(info.file_ending)}")
    found: dict[str, Path] = {}  # case -> its channel-0 image
    others: dict[str, Path] = {}  # case -> its first image of another channel
    for f in sorted(images.iterdir()):
        if f.name.startswith(".") or not f.name.endswith(info.file_ending):
            continue  # hidden (an interrupted atomic write) or not an image of this data set
        m = pattern.fullmatch(f.name)
        if m is None:
            raise DataError(f"{f}: an image name must be <case>_<4-digit channel>{info.file_ending}, "
                            f"e.g. case_0000{info.file_ending}; got {f.name!r}")
        if m["channel"] == "0000":
            found[m["case"]] = f
        elif opts.extra_channels == "refuse":
            raise DataError(f"{f}: image channel {m['channel']} of case {m['case']!r}: the suite reads one "
                            "channel (_0000); pass extra_channels='ignore' to read _0000 and ignore the rest")
        else:
            others.setdefault(m["case"], f)
    if no_channel0 := sorted(set(others) - set(found)):
        case = no_channel0[0]
        raise DataError(f"{others[case]}: case {case!r} has no channel-0 image {case}_0000{info.file_ending}")
    cases = [_Case(c, folder, f, labels / f"{c}{info.file_ending}") for c, f in sorted(found.items())]
    for c in cases:
        if not c.label.is_file():
            raise DataError(f"{c.label}: missing; it is the label file of case {c.case!r} ({c.image.name})")
    _check_orphans(labels, set(found), info.file_ending)
    return cases


def _check_orphans(labels: Path, cases: set[str], ending: str) -> None:
    """A label file without its image means a broken download or copy: refuse it."""
    if not labels.is_dir():
        return
    for f in sorted(labels.iterdir()):
        if not f.name.startswith(".") and f.name.endswith(ending) and f.name[:-len(ending)] not in cases:
            raise DataError(f"{f}: label file of case {f.name[:-len(ending)]!r}, which has no image "
                            f"{f.name[:-len(ending)]}_0000{ending} in {labels.parent / _images_of(labels.name)}")


def _images_of(labels_folder: str) -> str:
    return {v: k for k, v in FOLDERS.items()}[labels_folder]


def _subject_rule(opts: NnunetOptions) -> Callable[[_Case], tuple[str, str]]:
    """case -> (subject, timepoint) by the options (module docstring: the default rule)."""
    if opts.subject_of is not None:
        return lambda c: (str(opts.subject_of(c.case)), "")
    try:
        regex = re.compile(opts.subject or DEFAULT_SUBJECT)
    except re.error as e:
        raise ValueError(f"subject={opts.subject!r} is not a regular expression ({e})") from None

    def rule(c: _Case) -> tuple[str, str]:
        m = regex.fullmatch(c.case)
        if m is None or not m.groups():
            raise DataError(f"{c.image}: case id {c.case!r} does not match the subject pattern {regex.pattern!r} "
                            "(it needs a group: 'subject' or the first)")
        groups = m.groupdict()
        subject = groups.get("subject") or m.group(1)
        return subject, groups.get("timepoint") or ""

    return rule


def read_records(root: Path, **options) -> list[ScanRecord]:
    """One record per scan of an nnU-Net raw folder, in split order (train, valid, test), then case id.

    Args:
        root: the folder holding ``dataset.json``, ``imagesTr/`` ... (``image`` and ``seg`` of the
            records are relative to it).
        **options: :class:`NnunetOptions` (``valid_fraction``, ``split_seed``, ``subject``, ...).

    Returns:
        Records with ``scan_id`` = the case id, the split, subject, timepoint, and ``spacing_mm`` along
        the returned arrays' axes (from the image header; axis 2 is the slice axis).

    Raises:
        DataError naming the file and value: see the module docstring; also a split with no scans,
        a subject in both imagesTr and imagesTs, numTraining that disagrees with imagesTr.
    """
    root, opts = Path(root), _options(options)
    info = read_dataset_json(root)
    dataset_labels(root, **options)  # unmappable labels fail before any scan is read
    _check_channels(info, opts)
    train, test = (_list_cases(root, f, info, opts) for f in FOLDERS)
    if info.num_training is not None and info.num_training != len(train):
        raise DataError(f"{info.source}: numTraining is {info.num_training} but {root / 'imagesTr'} holds "
                        f"{len(train)} case(s)")
    rule = _subject_rule(opts)
    who = {c.case: rule(c) for c in train + test}
    _check_no_shared_subject(train, test, who)
    valid = _valid_subjects(sorted({who[c.case][0] for c in train}), opts, root / "imagesTr")
    split_of = lambda c: "test" if c.folder == "imagesTs" else ("valid" if who[c.case][0] in valid else "train")
    records = [ScanRecord(c.case, split_of(c), *who[c.case], c.image.relative_to(root).as_posix(),
                          c.label.relative_to(root).as_posix(), _spacing(_load(c.image, "image"), c.image))
               for c in train + test]
    for split in SPLITS:
        if not any(r.split == split for r in records):
            where = root / ("imagesTs" if split == "test" else "imagesTr")
            raise DataError(f"{where}: split {split!r} has no scans (files named <case>_0000{info.file_ending})")
    return sorted(records, key=lambda r: (SPLITS.index(r.split), r.scan_id))


def _check_channels(info: DatasetInfo, opts: NnunetOptions) -> None:
    if len(info.channels) > 1 and opts.extra_channels == "refuse":
        raise DataError(f"{info.source}: {len(info.channels)} image channels {info.channels}: the suite reads "
                        "one (_0000); pass extra_channels='ignore' to read _0000 and ignore the rest")


def _check_no_shared_subject(train: list[_Case], test: list[_Case], who: dict[str, tuple[str, str]]) -> None:
    first_train = {}
    for c in train:
        first_train.setdefault(who[c.case][0], c)
    for c in test:
        other = first_train.get(who[c.case][0])
        if other is not None:
            raise DataError(f"{c.image}: subject {who[c.case][0]!r} is in the test split and also in imagesTr "
                            f"({other.image}): a subject may be in one split only (data leakage)")


def _valid_subjects(subjects: list[str], opts: NnunetOptions, where: Path) -> set[str]:
    """The seeded share ``valid_fraction`` of ``subjects`` (at least 1, leaving at least 1 to train)."""
    if len(subjects) < 2:
        raise DataError(f"{where}: {len(subjects)} subject(s); splitting train and valid needs at least 2")
    n_valid = min(len(subjects) - 1, max(1, round(opts.valid_fraction * len(subjects))))
    order = np.random.default_rng(opts.split_seed).permutation(len(subjects))
    return {subjects[i] for i in order[:n_valid]}


# ---------------------------------------------------------------------------- NIfTI files


def _load(path: Path, kind: str) -> nib.Nifti1Image:
    """The NIfTI image at ``path`` (header read, data left on disk), with errors naming the file."""
    if not path.is_file():
        raise DataError(f"{path}: {kind} file missing")
    try:
        img = nib.load(path)
    except (ImageFileError, OSError, EOFError, ValueError, zlib.error) as e:
        raise DataError(f"{path}: not a readable NIfTI {kind} file ({e})") from None
    if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
        raise DataError(f"{path}: a {type(img).__name__}, not a NIfTI {kind} file")
    shape = img.shape
    # A trailing axis of length 1 (X, Y, Z, 1) is still one 3-D volume.
    if len(shape) < 3 or any(n != 1 for n in shape[3:]) or min(shape[:3]) < 1:
        raise DataError(f"{path}: {kind} must be a 3-D volume, got shape {tuple(shape)}")
    return img


def _to_target(img: nib.Nifti1Image, path: Path) -> np.ndarray:
    """The nibabel orientation transform (3, 2) from the file's storage order to ``TARGET_AXCODES``."""
    start = io_orientation(img.affine)
    if np.isnan(start).any():
        raise DataError(f"{path}: the affine {img.affine.tolist()} gives no orientation to every axis")
    return ornt_transform(start, axcodes2ornt(TARGET_AXCODES))


def _spacing(img: nib.Nifti1Image, path: Path) -> tuple[float, float, float]:
    """Voxel spacing (mm) along the returned (reoriented) axes, from the affine's column lengths."""
    ornt = _to_target(img, path)
    affine = img.affine @ inv_ornt_aff(ornt, img.shape[:3])
    return tuple(float(s) for s in np.sqrt((affine[:3, :3] ** 2).sum(axis=0)))


def _target_shape(img: nib.Nifti1Image, path: Path) -> tuple[int, int, int]:
    ornt = _to_target(img, path)
    shape = [0, 0, 0]
    for axis, (to, _) in enumerate(ornt):
        shape[int(to)] = int(img.shape[axis])
    return tuple(shape)


def _reoriented(img: nib.Nifti1Image, array: np.ndarray, path: Path) -> np.ndarray:
    return np.ascontiguousarray(apply_orientation(array.reshape(img.shape[:3]), _to_target(img, path)))


def _data(img: nib.Nifti1Image, path: Path, dtype=None) -> np.ndarray:
    """The voxel array (scaled by the header's slope and intercept), with read errors naming the file."""
    try:
        return img.get_fdata(dtype=dtype) if dtype is not None else np.asanyarray(img.dataobj)
    except (OSError, EOFError, ValueError, zlib.error) as e:  # a truncated or corrupt file
        raise DataError(f"{path}: cannot read the voxel data ({e})") from None


def read_image(record: ScanRecord, root: Path, **options) -> np.ndarray:
    """The scan's image, float32 (H, W, D), reoriented (module docstring): D is the left-right slice axis.

    Raises DataError naming the file: unreadable, not 3-D, or NaN/inf values (counted).
    """
    _options(options)
    path = Path(root) / record.image
    img = _load(path, "image")
    image = _data(img, path, np.float32)
    finite = np.isfinite(image)
    if not finite.all():
        bad = image[~finite]
        raise DataError(f"{path}: image has {int(np.isnan(bad).sum())} NaN and {int(np.isinf(bad).sum())} inf "
                        f"value(s) out of {image.size}")
    return _reoriented(img, image, path)


def read_labels(record: ScanRecord, root: Path, **options) -> np.ndarray:
    """The scan's integer label map (H, W, D), reoriented like :func:`read_image`.

    Raises DataError naming the file: unreadable, not 3-D, values that are not integers or not labels
    of ``dataset.json`` (listed with their voxel counts).
    """
    _options(options)
    path = Path(root) / record.seg
    img = _load(path, "label")
    labels = _integer_labels(_data(img, path), path)
    _check_label_values(labels, read_dataset_json(root), path)
    return _reoriented(img, labels, path)


def _integer_labels(labels: np.ndarray, path: Path) -> np.ndarray:
    if np.issubdtype(labels.dtype, np.integer):
        return labels
    if not np.issubdtype(labels.dtype, np.floating):
        raise DataError(f"{path}: label dtype {labels.dtype} is not numeric")
    bad = ~np.isfinite(labels) | (labels != np.round(labels))
    if bad.any():
        raise DataError(f"{path}: {int(bad.sum())} label voxel(s) are not integers, e.g. "
                        f"{np.unique(labels[bad])[:5].tolist()}")
    return labels.astype(np.int64)


def _check_label_values(labels: np.ndarray, info: DatasetInfo, path: Path) -> None:
    """Every value of ``labels`` must be a label of dataset.json."""
    if labels.size and labels.min() >= 0 and labels.max() < 1 << 16:
        counts = np.bincount(labels.ravel())  # one pass, much cheaper than a sort
        values = np.flatnonzero(counts)
    else:
        values, counts = np.unique(labels, return_counts=True)
        counts = dict(zip(values.tolist(), counts.tolist()))
    unknown = {int(v): int(counts[v]) for v in values if int(v) not in info.labels}
    if unknown:
        raise DataError(f"{path}: label value(s) {sorted(unknown)} are not in {info.source} (labels "
                        f"{info.labels}); voxels per value: {unknown}")


def read_tissue_masks(record: ScanRecord, root: Path, tissues: Sequence[str] | None = None,
                      **options) -> dict[str, np.ndarray]:
    """The scan's tissue masks: ``{tissue name: bool (H, W, D)}``, reoriented like :func:`read_image`.

    Args:
        record, root: the scan and the data root.
        tissues: names or codes of vocabulary tissues; None: every tissue the data provides
            (:func:`tissues_present`). Each mask is the union of the tissue's label values
            (:func:`dataset_labels`; tibial cartilage = medial | lateral on OAIZIB-CM).

    Raises:
        DataError naming dataset.json for a tissue the data does not label, or the label file (see
        :func:`read_labels`).
    """
    mapping = dataset_labels(root, **options)
    names = list(mapping.tissues) if tissues is None else [tissue_name(t) for t in tissues]
    missing = [t for t in names if t not in mapping.tissues]
    if missing:
        raise DataError(f"{mapping.source}: the data set labels no {missing}; it provides {list(mapping.tissues)}")
    labels = read_labels(record, root, **options)
    return {t: np.isin(labels, mapping.tissues[t]) for t in names}


def validate_scan(record: ScanRecord, root: Path, **options) -> tuple[int, int, int]:
    """Check one scan's image and label files; return the reoriented shape (H, W, D).

    Checks: both files readable NIfTI, 3-D, of one shape, with affines that agree within
    ``affine_tol_mm``; with ``check_values`` (default) also a finite image and label values of
    dataset.json. Raises DataError naming the file and the value.
    """
    opts = _options(options)
    root = Path(root)
    image_path, label_path = root / record.image, root / record.seg
    image, label = _load(image_path, "image"), _load(label_path, "label")
    if image.shape[:3] != label.shape[:3]:
        raise DataError(f"{label_path}: label shape {tuple(label.shape)} does not match image {image_path.name} "
                        f"shape {tuple(image.shape)}")
    diff = float(np.abs(image.affine - label.affine).max())
    if diff > opts.affine_tol_mm:
        raise DataError(f"{label_path}: affine differs from image {image_path.name}'s by up to {diff:.4g} mm "
                        f"(tolerance {opts.affine_tol_mm} mm); label {label.affine.round(4).tolist()} vs image "
                        f"{image.affine.round(4).tolist()}")
    if opts.check_values:
        read_image(record, root, **options)
        read_labels(record, root, **options)
    return _target_shape(image, image_path)
