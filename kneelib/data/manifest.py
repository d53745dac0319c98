"""The data manifest: one row per scan of the IWOAI 2019 / OAI iMorphics split.

Schema (CSV, one header row; documented for users in ``data_manifest/README.md``):

=============  ==========================================================
column         meaning
=============  ==========================================================
scan_id        ``{split}_{NNN}_V0{0,1}``, also the file stem
split          ``train`` | ``valid`` | ``test``
subject        ``{split}_{NNN}``; a subject lies in exactly one split
timepoint      ``V00`` | ``V01``
image          path of the ``.im`` file relative to the data root
seg            path of the ``.seg`` file relative to the data root
spacing_mm_0   voxel spacing along array axis 0 (mm)
spacing_mm_1   voxel spacing along array axis 1 (mm)
spacing_mm_2   voxel spacing along array axis 2, the slice axis (mm)
sha256_image   optional sha256 of the ``.im`` file (blank: not checked)
sha256_seg     optional sha256 of the ``.seg`` file (blank: not checked)
=============  ==========================================================
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
from dataclasses import dataclass
from pathlib import Path

from kneelib.core.atomic import write_text
from kneelib.names import IWOAI_SUBJECTS, OAI_DESS_SPACING_MM, SPLITS, TIMEPOINTS

COLUMNS = (
    "scan_id", "split", "subject", "timepoint", "image", "seg",
    "spacing_mm_0", "spacing_mm_1", "spacing_mm_2", "sha256_image", "sha256_seg",
)
# IWOAI scan ids name their split and timepoint; a manifest row must agree with its own id.
# Ids in another naming scheme (a user's own data) are not checked against it.
_IWOAI_SCAN_ID = re.compile(r"^(train|valid|test)_(\d{3})_(V00|V01)$")


class ManifestError(ValueError):
    """A manifest that is malformed or inconsistent; the message names the file and row."""


@dataclass(frozen=True)
class ScanRecord:
    """One scan: where its files are and its voxel spacing in mm (axis 0, 1, slice axis)."""

    scan_id: str
    split: str
    subject: str
    timepoint: str
    image: str
    seg: str
    spacing_mm: tuple[float, float, float]
    sha256_image: str = ""
    sha256_seg: str = ""
    # how the scan is read: "" for IWOAI, else the format and its reader's options as JSON
    # (kneelib.data.formats.Source); not a manifest column
    source: str = ""


def scan_record(split: str, index: int, timepoint: str,
                spacing_mm: tuple[float, float, float] = OAI_DESS_SPACING_MM) -> ScanRecord:
    """The record of scan ``{split}_{index:03d}_{timepoint}`` in the IWOAI layout."""
    subject = f"{split}_{index:03d}"
    scan_id = f"{subject}_{timepoint}"
    return ScanRecord(scan_id, split, subject, timepoint, f"{split}/{scan_id}.im",
                      f"{split}/{scan_id}.seg", tuple(float(s) for s in spacing_mm))


def iwoai_records(subjects: dict[str, int] | None = None,
                  spacing_mm: tuple[float, float, float] = OAI_DESS_SPACING_MM) -> list[ScanRecord]:
    """Records of an IWOAI-layout split: ``subjects[split]`` subjects x (V00, V01).

    The default gives the real 176-scan split (60/14/14 subjects, 120/28/28 scans).
    """
    subjects = IWOAI_SUBJECTS if subjects is None else subjects
    return [scan_record(split, i, tp, spacing_mm)
            for split in SPLITS for i in range(1, subjects.get(split, 0) + 1) for tp in TIMEPOINTS]


def to_csv(records: list[ScanRecord]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    for r in records:
        writer.writerow([r.scan_id, r.split, r.subject, r.timepoint, r.image, r.seg,
                         *(f"{s:.6g}" for s in r.spacing_mm), r.sha256_image, r.sha256_seg])
    return buf.getvalue()


def write_manifest(records: list[ScanRecord], path: str | os.PathLike) -> None:
    """Validate ``records`` and write them atomically as CSV."""
    validate_records(records, str(path))
    write_text(path, to_csv(records))


def read_manifest(path: str | os.PathLike) -> list[ScanRecord]:
    """Read and validate a manifest CSV; raise ManifestError naming the file and row."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data manifest not found: {path}")
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ManifestError(f"{path}: missing column(s) {missing}; expected {list(COLUMNS)}")
        records = [_parse_row(row, path, line) for line, row in enumerate(reader, start=2)]
    validate_records(records, str(path))
    return records


def _parse_row(row: dict[str, str], path: Path, line: int) -> ScanRecord:
    where = f"{path}, line {line}"
    try:
        spacing = tuple(float(row[f"spacing_mm_{i}"]) for i in range(3))
    except ValueError as e:
        raise ManifestError(f"{where}: voxel spacing is not a number ({e})") from None
    return ScanRecord(row["scan_id"].strip(), row["split"].strip(), row["subject"].strip(),
                      row["timepoint"].strip(), row["image"].strip(), row["seg"].strip(), spacing,
                      (row["sha256_image"] or "").strip(), (row["sha256_seg"] or "").strip())


def validate_records(records: list[ScanRecord], source: str = "manifest") -> None:
    """Check each row, then the split: no scan twice, no subject in two splits (leakage)."""
    seen: dict[str, int] = {}
    subject_split: dict[str, str] = {}
    for i, r in enumerate(records):
        where = f"{source}, scan {r.scan_id!r}"
        if r.split not in SPLITS:
            raise ManifestError(f"{where}: split {r.split!r} is not one of {SPLITS}")
        if r.timepoint not in TIMEPOINTS:
            raise ManifestError(f"{where}: timepoint {r.timepoint!r} is not one of {TIMEPOINTS}")
        if not all(s > 0 and s < float("inf") for s in r.spacing_mm):
            raise ManifestError(f"{where}: voxel spacing {r.spacing_mm} mm must be positive and finite")
        iwoai_id = _IWOAI_SCAN_ID.match(r.scan_id)
        if iwoai_id and (iwoai_id[1], f"{iwoai_id[1]}_{iwoai_id[2]}", iwoai_id[3]) != (r.split, r.subject, r.timepoint):
            raise ManifestError(f"{where}: the id names split {iwoai_id[1]!r}, subject {iwoai_id[1]}_{iwoai_id[2]!r} "
                                f"and timepoint {iwoai_id[3]!r}, but the row says {r.split!r}, {r.subject!r}, "
                                f"{r.timepoint!r}")
        if r.scan_id in seen:
            raise ManifestError(f"{where}: scan listed twice (rows {seen[r.scan_id] + 1} and {i + 1})")
        seen[r.scan_id] = i
        other = subject_split.setdefault(r.subject, r.split)
        if other != r.split:
            raise ManifestError(
                f"{where}: subject {r.subject!r} is in both {other!r} and {r.split!r} (data leakage)")


def split_records(records: list[ScanRecord], split: str) -> list[ScanRecord]:
    if split not in SPLITS:
        raise ValueError(f"split {split!r} is not one of {SPLITS}")
    return [r for r in records if r.split == split]


def manifest_hash(records: list[ScanRecord]) -> str:
    """sha256 of the manifest's canonical CSV text: the identity of a data set in provenance. Records read
    from another format (a non-empty ``source``) add their sources, so the same scans read another way
    (another SKM-TEA echo, another label map) are another data set; IWOAI manifests hash as they always did."""
    text = to_csv(records)
    sources = [r.source for r in records]
    if any(sources):
        text += "\n".join(sources)
    return hashlib.sha256(text.encode()).hexdigest()


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
