"""The three data formats the suite reads, behind one set of functions: IWOAI 2019 (HDF5 pairs), SKM-TEA
v1.0.0 (one HDF5 file per scan with the annotation JSONs) and nnU-Net raw folders (NIfTI, e.g. OAIZIB-CM).

Every reader hands the rest of the suite the same thing: per scan a :class:`~kneelib.data.manifest.ScanRecord`
(split, subject, timepoint, voxel spacing, the files relative to the data root), a float32 image (H, W, D)
whose axis 2 is the sagittal (left-right) slice axis, and a bool mask (H, W, D) per tissue of the vocabulary
(:data:`kneelib.names.ALL_TISSUES`) the data labels.

A record remembers how it is read: its ``source`` field holds the format and the reader's options as JSON
(empty for IWOAI, so an IWOAI manifest and its hash are what they always were). The slice cache and every
other reader of a scan go through :func:`read_image` / :func:`read_tissue_masks`, which dispatch on it.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from kneelib.core import paths
from kneelib.data import iwoai, manifest, nnunet, skmtea
from kneelib.data.iwoai import DataError
from kneelib.data.manifest import ScanRecord
from kneelib.names import IWOAI, TISSUE_LABELS

AUTO = "auto"
FORMATS = (IWOAI, skmtea.FORMAT, nnunet.FORMAT)
MANIFEST_FILE = "manifest.csv"


@dataclass(frozen=True)
class Source:
    """A data format and its reader's options (JSON-able values only)."""

    format: str
    options: tuple[tuple[str, Any], ...] = ()

    def encode(self) -> str:
        """The ``ScanRecord.source`` text: "" for IWOAI without options, else JSON."""
        if self.format == IWOAI and not self.options:
            return ""
        return json.dumps({"format": self.format, "options": dict(self.options)}, sort_keys=True)

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.options)


def source_of(record: ScanRecord) -> Source:
    """How ``record`` is read (IWOAI when its ``source`` is empty)."""
    if not record.source:
        return Source(IWOAI)
    spec = json.loads(record.source)
    return Source(spec["format"], tuple(sorted(spec.get("options", {}).items())))


# ------------------------------------------------------------------------------- IWOAI

def _iwoai_looks_like(root: Path) -> bool:
    """A manifest.csv, or train/ valid/ test/ folders holding ``.im`` files."""
    return (root / MANIFEST_FILE).is_file() or any((root / s).is_dir() and any((root / s).glob("*.im"))
                                                    for s in ("train", "valid", "test"))


def _iwoai_records(root: Path) -> list[ScanRecord]:
    """``<root>/manifest.csv`` when present, else the committed IWOAI 2019 split."""
    path = root / MANIFEST_FILE if (root / MANIFEST_FILE).exists() else paths.IWOAI_MANIFEST
    return manifest.read_manifest(path)


def _reader(source: Source) -> ModuleType | None:
    return {skmtea.FORMAT: skmtea, nnunet.FORMAT: nnunet}.get(source.format)


# ------------------------------------------------------------------------------- detection and records

def detect(root: str | Path) -> str:
    """The format of the data folder ``root`` from its layout alone; DataError naming the folder when none
    (or more than one) fits."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data folder {root} does not exist")
    found = [f for f, looks in ((skmtea.FORMAT, skmtea.looks_like), (nnunet.FORMAT, nnunet.looks_like),
                                (IWOAI, _iwoai_looks_like)) if looks(root)]
    if len(found) != 1:
        what = "none of" if not found else f"more than one of ({', '.join(found)})"
        raise DataError(f"{root}: its layout fits {what} the formats {list(FORMATS)} (IWOAI: manifest.csv or "
                        "train/*.im; SKM-TEA: image_files/ and annotations/; nnU-Net: dataset.json and "
                        "imagesTr/); name one with data_format / --format")
    return found[0]


def reader_options(data_format: str, skmtea_echo: str = "rss",
                   label_map: Mapping[str, str] | None = None) -> tuple[tuple[str, Any], ...]:
    """The options of ``data_format``'s reader from the suite's parameters (``Profile.skmtea_echo``,
    ``Profile.label_map``): SKM-TEA takes the echo, nnU-Net the label map; IWOAI none."""
    if data_format == skmtea.FORMAT:
        return (("echo", skmtea_echo),)
    if data_format == nnunet.FORMAT and label_map:
        return (("label_map", dict(sorted(label_map.items()))),)
    return ()


def read_dataset(root: str | Path, data_format: str = AUTO, skmtea_echo: str = "rss",
                 label_map: Mapping[str, str] | None = None) -> tuple[str, list[ScanRecord]]:
    """The format (detected when ``data_format`` is "auto") and every scan's record of the data folder
    ``root``, each record carrying its ``source``. Raises DataError (or ManifestError) naming the file and
    value for a malformed layout, and ValueError for an unknown format."""
    root = Path(root)
    if data_format not in (AUTO, *FORMATS):
        raise ValueError(f"data_format={data_format!r}: use one of {[AUTO, *FORMATS]}")
    fmt = detect(root) if data_format == AUTO else data_format
    source = Source(fmt, reader_options(fmt, skmtea_echo, label_map))
    reader = _reader(source)
    records = _iwoai_records(root) if reader is None else reader.read_records(root, **source.kwargs)
    return fmt, [dataclasses.replace(r, source=source.encode()) for r in records]


def tissues_present(root: str | Path, records: Sequence[ScanRecord]) -> tuple[str, ...]:
    """The vocabulary tissues the data set of ``records`` labels."""
    source = source_of(records[0])
    reader = _reader(source)
    return tuple(TISSUE_LABELS[IWOAI]) if reader is None else reader.tissues_present(Path(root), **source.kwargs)


# ------------------------------------------------------------------------------- one scan

def read_image(record: ScanRecord, root: str | Path) -> np.ndarray:
    """The scan's image, float32 (H, W, D), D the slice axis."""
    source = source_of(record)
    reader = _reader(source)
    if reader is None:
        return iwoai.read_image(Path(root) / record.image)
    return reader.read_image(record, Path(root), **source.kwargs)


def read_tissue_masks(record: ScanRecord, root: str | Path, tissues: Sequence[str] | None = None
                      ) -> dict[str, np.ndarray]:
    """tissue name -> bool (H, W, D) for ``tissues`` (None: every tissue the format labels)."""
    source = source_of(record)
    reader = _reader(source)
    if reader is None:
        return iwoai.read_tissue_masks(Path(root) / record.seg, tissues)
    return reader.read_tissue_masks(record, Path(root), tissues, **source.kwargs)


def validate_scan(record: ScanRecord, root: str | Path, check_values: bool = True,
                  check_sha256: bool = True) -> tuple[int, int, int]:
    """The scan's (H, W, D) after checking its files (``check_values``: read the arrays too); DataError or
    FileNotFoundError naming the file otherwise."""
    source = source_of(record)
    reader = _reader(source)
    if reader is None:
        return iwoai.validate_scan(record, root, check_sha256=check_sha256, check_values=check_values)
    if reader is skmtea:
        return skmtea.validate_scan(record, Path(root), check_values=check_values, **source.kwargs)
    return nnunet.validate_scan(record, Path(root), **(source.kwargs | {"check_values": check_values}))


def image_shape(record: ScanRecord, root: str | Path) -> tuple[int, int, int]:
    """(H, W, D) from the files' headers (no voxel is read where the format allows)."""
    if source_of(record).format == IWOAI:
        return iwoai.image_shape(Path(root) / record.image)
    return validate_scan(record, root, check_values=False)
