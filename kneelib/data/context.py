"""Where a run's scans come from and what the nets read of them: the data context of a profile
(real IWOAI data or generated phantoms), subject subsets, the slice datasets, and the few slices the
analyses look at (activation maps, CKA).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from kneelib.core import paths
from kneelib.core.profiles import Profile
from kneelib.data import formats, manifest
from kneelib.data.phantoms import best_intensity_dice, make_dataset
from kneelib.data.slices import SliceDataset, build_slice_caches, load_eval_volume
from kneelib.names import IWOAI, PAPER_TISSUES

# Datasets up to this many bytes of slices are held in memory; larger ones are read lazily.
PRELOAD_LIMIT_BYTES = 4 << 30


@dataclass(frozen=True)
class DataContext:
    """Where a run's scans are and what they are."""

    root: Path                      # data root holding train/, valid/, test/
    records: tuple[manifest.ScanRecord, ...]
    manifest_hash: str              # sha256 of the manifest: the data's identity in provenance
    source: str                     # "phantom" or "real"
    cache_dir: Path                 # slice-major caches (kneelib.data.slices.build_slice_cache)
    data_format: str = "iwoai"      # kneelib.data.formats.FORMATS
    tissues: tuple[str, ...] = ()   # the vocabulary tissues the data labels (real data; phantoms: all)
    in_plane: tuple[int, int] | None = None  # the scans' in-plane size when they share one (real data)

    def split(self, name: str) -> list[manifest.ScanRecord]:
        return manifest.split_records(list(self.records), name)


def prepare_data(profile: Profile, data_root: str | os.PathLike | None = None) -> DataContext:
    """Real data when ``data_root`` (or ``$KNEELIB_DATA_ROOT``) is given, else the profile's phantoms.

    Real data: in the profile's ``data_format`` (``auto``: detected from the folder's layout; IWOAI,
    SKM-TEA or an nnU-Net raw folder, :mod:`kneelib.data.formats`); for IWOAI the manifest is
    ``<root>/manifest.csv`` when present, else the committed IWOAI split
    (``data_manifest/iwoai_2019_split.csv``). The study's tissues must be among those the data labels, and
    every scan's files are checked (existence,
    HDF5 layout, shapes) before anything trains. Phantoms are generated once and reused.
    """
    root = paths.real_data_root(data_root)
    cache_dir = paths.profile_dir(profile.name) / "cache"
    if root is not None:
        if not root.is_dir():
            raise FileNotFoundError(f"data root {root} does not exist (data_root / ${paths.DATA_ROOT_ENV})")
        fmt, records = formats.read_dataset(root, profile.data_format, profile.skmtea_echo, profile.label_map)
        shapes = {r.scan_id: formats.validate_scan(r, root, check_values=False, check_sha256=False) for r in records}
        _check_shapes(profile, shapes, root, fmt)
        in_plane = {tuple(s[:2]) for s in shapes.values()}
        return DataContext(root, tuple(records), manifest.manifest_hash(records), "real", cache_dir / "real", fmt,
                           formats.tissues_present(root, records), next(iter(in_plane)) if len(in_plane) == 1 else None)
    root = paths.phantom_dir(profile.name)
    manifest_path = make_dataset(root, dict(profile.subjects), tuple(profile.volume_shape), seed=profile.data_seed)
    records = manifest.read_manifest(manifest_path)
    return DataContext(root, tuple(records), manifest.manifest_hash(records), "phantom", cache_dir / "phantom")


def fit_to_data(profile: Profile, ctx: DataContext, overrides: Mapping[str, Any]) -> Profile:
    """``profile`` as it runs on ``ctx``'s data, before anything trains.

    - Tissues: a study of real data whose ``tissues`` were not set keeps those of its tissues the data labels
      (an OAIZIB-CM folder: femoral and tibial cartilage of the paper's three); tissues set explicitly must all
      be labelled. Fewer than two left: ValueError naming what the data has.
    - Slice size: a profile that trains at its volumes' full in-plane size (``slice_size`` equal to
      ``volume_shape``'s in-plane size: ``paper``, ``demo``) trains real data at the data's own in-plane size
      (SKM-TEA: 512) unless ``slice_size`` was set, provided the U-Net's depth divides it.
    """
    if ctx.source != "real":
        return profile
    changes: dict[str, Any] = {}
    if "tissues" not in overrides:
        kept = tuple(t for t in profile.tissues if t in ctx.tissues)
        if len(kept) < 2:
            raise ValueError(f"data root {ctx.root} ({ctx.data_format}) labels {list(ctx.tissues)}: fewer than two of "
                             f"the profile's tissues {list(profile.tissues)}; choose some with --set "
                             f"'tissues={json.dumps(list(ctx.tissues[:2]))}'")
        if kept != tuple(profile.tissues):
            changes["tissues"] = kept
    missing = [t for t in changes.get("tissues", profile.tissues) if t not in ctx.tissues]
    if missing:
        raise ValueError(f"data root {ctx.root} ({ctx.data_format}) labels {list(ctx.tissues)}, not {missing}; "
                         f"study the tissues it has, e.g. --set 'tissues={json.dumps(list(ctx.tissues[:2]))}'")
    full_size = profile.slice_size == profile.volume_shape[0] == profile.volume_shape[1]
    if ("slice_size" not in overrides and full_size and ctx.in_plane is not None and ctx.in_plane[0] == ctx.in_plane[1]
            and ctx.in_plane[0] % 2 ** (profile.depth - 1) == 0 and ctx.in_plane[0] != profile.slice_size):
        changes["slice_size"] = ctx.in_plane[0]
    return profile.replace(**changes) if changes else profile


def _check_shapes(profile: Profile, shapes: dict[str, tuple[int, int, int]], root: Path, fmt: str) -> None:
    """IWOAI scans must have the profile's ``volume_shape``: a profile is sized for one shape of scan
    (slice size, batch size, memory), so other scans call for another profile or an override. SKM-TEA and
    nnU-Net scans may differ in depth (the slice cache takes any), but not in-plane: every slice is
    resampled to ``slice_size`` from one in-plane size."""
    if fmt != IWOAI:
        in_plane = {tuple(s[:2]) for s in shapes.values()}
        if len(in_plane) > 1:
            raise ValueError(f"data root {root} ({fmt}): scans of several in-plane sizes {sorted(in_plane)}; "
                             "resample them to one first")
        return
    wrong = {scan: shape for scan, shape in shapes.items() if tuple(shape) != tuple(profile.volume_shape)}
    if wrong:
        scan, shape = next(iter(wrong.items()))
        raise ValueError(f"data root {root}: {len(wrong)} of {len(shapes)} scans do not have profile "
                         f"{profile.name!r} volume_shape={list(profile.volume_shape)} (scan {scan} is "
                         f"{list(shape)}); use a profile for this data or --set volume_shape={list(shape)}")


def subset_subjects(records: list[manifest.ScanRecord], fraction: float, seed: int) -> list[manifest.ScanRecord]:
    """The scans of a random ``fraction`` of the subjects (at least one), both timepoints kept."""
    if not 0 < fraction <= 1:
        raise ValueError(f"training fraction {fraction} must be in (0, 1]")
    subjects = sorted({r.subject for r in records})
    n = max(1, round(fraction * len(subjects)))
    keep = set(np.random.default_rng(seed).permutation(subjects)[:n].tolist()) if n < len(subjects) else set(subjects)
    return [r for r in records if r.subject in keep]


@lru_cache(maxsize=8)
def slice_dataset(ctx: DataContext, split: str, tissue: str, slice_size: int,
                   scan_ids: tuple[str, ...] | None = None, lazy: bool = False) -> SliceDataset:
    """The slices of ``split`` (or of its scans ``scan_ids``) with the masks of ``tissue`` (a tissue name).

    Held in memory when their images take less than ``PRELOAD_LIMIT_BYTES``, unless ``lazy``
    (``Profile.lazy_slices``): then read from the slice cache on demand, as at the paper's size.
    """
    records = [r for r in ctx.split(split) if scan_ids is None or r.scan_id in scan_ids]
    total = sum(int(np.prod(formats.image_shape(r, ctx.root))) for r in records)
    preload = not lazy and total * 4 * (slice_size / 384) ** 2 < PRELOAD_LIMIT_BYTES
    return SliceDataset(records, ctx.root, tissue, slice_size, ctx.cache_dir, preload=preload)


def prepare_slice_caches(profile: Profile, ctx: DataContext) -> None:
    """Build the slice caches of every scan at the profile's slice size (a no-op once built).

    At full size the scans are cached in parallel processes (:func:`kneelib.data.slices.build_slice_caches`).
    """
    build_slice_caches(ctx.records, ctx.root, ctx.cache_dir, profile.slice_size)


def threshold_baseline(ctx: DataContext, n_scans: int = 2, tissues: Sequence[str] = PAPER_TISSUES) -> pd.DataFrame:
    """Dice of the best single intensity window per tissue of ``tissues`` on the first ``n_scans`` training
    scans; one row per (scan, tissue).

    A low value means a segmenter must use spatial context, not just intensity.
    """
    rows = []
    for r in ctx.split("train")[:n_scans]:
        image, masks = formats.read_image(r, ctx.root), formats.read_tissue_masks(r, ctx.root, tissues)
        rows += [{"scan_id": r.scan_id, "tissue": t, "best_window_dice": best_intensity_dice(image, m)}
                 for t, m in masks.items()]
    return pd.DataFrame(rows)


def activation_inputs(profile: Profile, ctx: DataContext, n_slices: int) -> tuple[torch.Tensor, dict, list[str]]:
    """Test slices for the activation maps, from every test subject (its first scan): ``n_slices`` in all
    (at least one per subject), shared out evenly, each subject's spread evenly over its slices that
    contain every tissue of ``profile.tissues`` (or any of them, if too few do). Slices of one scan only
    would make C7 a statement about one knee.

    Returns: images (N, 1, S, S) z-scored; truth masks tissue -> bool (N, S, S) at the network's
    resolution, in ``profile.tissues`` order; labels ``"<scan_id> slice <k>"``.
    """
    first_scans = list({r.subject: r for r in reversed(ctx.split("test"))}.values())[::-1]
    counts = [len(c) for c in np.array_split(np.arange(max(n_slices, len(first_scans))), len(first_scans))]
    images, truth, labels = [], {t: [] for t in profile.tissues}, []
    for record, n in zip(first_scans, counts):
        scan_images, scan_truth, pick = _scan_activation_slices(profile, ctx, record, n)
        images.append(scan_images)
        for t in profile.tissues:
            truth[t].append(scan_truth[t])
        labels += [f"{record.scan_id} slice {int(k)}" for k in pick]
    return torch.cat(images), {t: np.concatenate(m) for t, m in truth.items()}, labels


def _scan_activation_slices(profile: Profile, ctx: DataContext, record: manifest.ScanRecord, n_slices: int
                            ) -> tuple[torch.Tensor, dict, torch.Tensor]:
    """``n_slices`` slices of one scan spread evenly over those with every tissue (else any): images,
    masks per tissue and the slice indices."""
    images, _ = load_eval_volume(record, ctx.root, profile.slice_size, ctx.cache_dir)
    masks = {t: SliceDataset([record], ctx.root, t, profile.slice_size, ctx.cache_dir, preload=True).masks[:, 0]
             for t in profile.tissues}  # (D, S, S) each
    present = torch.stack([m.flatten(1).any(1) for m in masks.values()])  # (tissues, D)
    candidates = torch.nonzero(present.all(0)).flatten()
    if len(candidates) < n_slices:
        candidates = torch.nonzero(present.any(0)).flatten()
    pick = candidates[np.linspace(0, len(candidates) - 1, n_slices).round().astype(int)].unique()
    return images[pick], {t: m[pick].bool().numpy() for t, m in masks.items()}, pick


def cka_images(profile: Profile, ctx: DataContext, n: int, seed: int = 0) -> torch.Tensor:
    """``n`` test slices (N, 1, S, S), drawn without replacement with a fixed seed, for CKA (the images
    only: which tissue's masks the dataset carries does not matter)."""
    if n < 4:
        raise ValueError(f"debiased CKA needs at least 4 examples, got cka_slices={n}")
    ds = SliceDataset(ctx.split("test"), ctx.root, profile.tissues[0], profile.slice_size, ctx.cache_dir)
    idx = torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed))[:n].sort().values
    return torch.stack([ds[int(i)][0] for i in idx])
