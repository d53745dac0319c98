"""Check a data folder as it was downloaded: ``python -m kneelib data DIR`` (kneelib.report.runner).

Every scan is read in full (image values, labels, shapes), so a problem is found before anything trains; the
result is one row per scan with its voxel count per tissue, and a short summary.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from kneelib.core.atomic import write_text
from kneelib.data import formats


def scan_table(root: str | Path, data_format: str = formats.AUTO, skmtea_echo: str = "rss",
               label_map: Mapping[str, str] | None = None) -> tuple[str, pd.DataFrame]:
    """The format and one row per scan of the data folder ``root``: scan_id, split, subject, timepoint,
    shape ("HxWxD"), spacing_mm ("a x b x c"), and ``voxels_<tissue>`` for every tissue the data labels.

    Raises the readers' DataError (or FileNotFoundError, ManifestError) naming the first bad file and value.
    """
    root = Path(root)
    fmt, records = formats.read_dataset(root, data_format, skmtea_echo, label_map)
    tissues = formats.tissues_present(root, records)
    rows = []
    for r in records:
        shape = formats.validate_scan(r, root, check_values=True)
        masks = formats.read_tissue_masks(r, root, tissues)
        rows.append({"scan_id": r.scan_id, "split": r.split, "subject": r.subject, "timepoint": r.timepoint,
                     "shape": "x".join(str(n) for n in shape),
                     "spacing_mm": " x ".join(f"{s:.4g}" for s in r.spacing_mm),
                     **{f"voxels_{t}": int(m.sum()) for t, m in masks.items()}})
    return fmt, pd.DataFrame(rows)


def summary(fmt: str, table: pd.DataFrame) -> str:
    """A few lines: the format, scans and subjects per split, the shapes and spacings seen, the tissues."""
    splits = ", ".join(f"{s} {int((table.split == s).sum())} scans / {table[table.split == s].subject.nunique()} "
                       f"subjects" for s in ("train", "valid", "test"))
    tissues = [c.removeprefix("voxels_") for c in table if c.startswith("voxels_")]
    return "\n".join([f"format: {fmt}", f"scans: {len(table)} ({splits})",
                      f"shapes: {', '.join(sorted(table['shape'].unique()))}",
                      f"spacings (mm): {', '.join(sorted(table.spacing_mm.unique()))}",
                      f"tissues: {', '.join(tissues)}", "every scan is valid"])


def write_scan_table(table: pd.DataFrame, path: str | Path) -> Path:
    """``table`` as CSV at ``path``, written atomically."""
    write_text(path, table.to_csv(index=False))
    return Path(path)
