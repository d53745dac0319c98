"""The study: which data a profile uses, the nine networks, and their evaluation.

Net names follow the paper: ``F(s)``, ``T(s)``, ``M(s)`` are the scratch nets for femoral
cartilage, tibial cartilage and meniscus; ``T|F(s)`` is the tibial-cartilage net fine-tuned
from ``F(s)``. Each net of each seed lives in ``outputs/<profile>/models/seed<k>/<folder>``.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from . import data, manifest, paths
from .distances import TISSUE_CODES
from .metrics import scan_metrics
from .profiles import Profile
from .train import TrainConfig, TrainResult, autocast, autocast_dtype, default_device, fit
from .unet import UNet2D

CODE_TISSUES = {code: tissue for tissue, code in TISSUE_CODES.items()}
# Datasets up to this many bytes of slices are held in memory; larger ones are read lazily.
PRELOAD_LIMIT_BYTES = 4 << 30


# ---------------------------------------------------------------- data

@dataclass(frozen=True)
class DataContext:
    """Where a run's scans are and what they are."""

    root: Path                      # data root holding train/, valid/, test/
    records: tuple[manifest.ScanRecord, ...]
    manifest_hash: str              # sha256 of the manifest: the data's identity in provenance
    source: str                     # "phantom" or "real"
    cache_dir: Path                 # slice-major caches (kneelib.data.build_slice_cache)

    def split(self, name: str) -> list[manifest.ScanRecord]:
        return manifest.split_records(list(self.records), name)


def prepare_data(profile: Profile, data_root: str | os.PathLike | None = None) -> DataContext:
    """Real data when ``data_root`` (or ``$KNEELIB_DATA_ROOT``) is given, else the profile's phantoms.

    Real data: the manifest is ``<root>/manifest.csv`` when present, else the committed IWOAI
    split (``data_manifest/iwoai_2019_split.csv``); every scan's files are checked (existence,
    HDF5 layout, shapes) before anything trains. Phantoms are generated once and reused.
    """
    root = paths.real_data_root(data_root)
    cache_dir = paths.profile_dir(profile.name) / "cache"
    if root is not None:
        if not root.is_dir():
            raise FileNotFoundError(f"data root {root} does not exist (data_root / ${paths.DATA_ROOT_ENV})")
        manifest_path = root / "manifest.csv" if (root / "manifest.csv").exists() else paths.IWOAI_MANIFEST
        records = manifest.read_manifest(manifest_path)
        data.validate_dataset(records, root)
        return DataContext(root, tuple(records), manifest.manifest_hash(records), "real", cache_dir / "real")
    from .phantoms import make_dataset

    root = paths.phantom_dir(profile.name)
    manifest_path = make_dataset(root, dict(profile.subjects), tuple(profile.volume_shape), seed=profile.data_seed)
    records = manifest.read_manifest(manifest_path)
    return DataContext(root, tuple(records), manifest.manifest_hash(records), "phantom", cache_dir / "phantom")


def subset_subjects(records: list[manifest.ScanRecord], fraction: float, seed: int) -> list[manifest.ScanRecord]:
    """The scans of a random ``fraction`` of the subjects (at least one), both timepoints kept."""
    if not 0 < fraction <= 1:
        raise ValueError(f"training fraction {fraction} must be in (0, 1]")
    subjects = sorted({r.subject for r in records})
    n = max(1, round(fraction * len(subjects)))
    keep = set(np.random.default_rng(seed).permutation(subjects)[:n].tolist()) if n < len(subjects) else set(subjects)
    return [r for r in records if r.subject in keep]


@lru_cache(maxsize=8)
def _slice_dataset(ctx: DataContext, split: str, tissue: str, slice_size: int,
                   scan_ids: tuple[str, ...] | None = None) -> data.SliceDataset:
    records = [r for r in ctx.split(split) if scan_ids is None or r.scan_id in scan_ids]
    total = sum(int(np.prod(data.image_shape(ctx.root / r.image))) for r in records)
    preload = total * 4 * (slice_size / 384) ** 2 < PRELOAD_LIMIT_BYTES
    return data.SliceDataset(records, ctx.root, tissue, slice_size, ctx.cache_dir, preload=preload)


# ---------------------------------------------------------------- nets

@dataclass(frozen=True)
class NetSpec:
    """One network: its tissue, the tissue of the scratch net it was fine-tuned from, its seed."""

    tissue: str
    base_tissue: str | None = None
    seed: int = 0

    @property
    def name(self) -> str:
        code = TISSUE_CODES[self.tissue]
        return f"{code}(s)" if self.base_tissue is None else f"{code}|{TISSUE_CODES[self.base_tissue]}(s)"

    @property
    def folder(self) -> str:
        kind = "scratch" if self.base_tissue is None else f"from_{self.base_tissue}"
        return f"seed{self.seed}/{self.tissue}__{kind}"

    @property
    def run_seed(self) -> int:
        """The seed of this net's He init and shuffling: distinct for every net of a seed, so the three
        scratch nets start from independent draws (the paper's scratch-to-scratch distance, 6.45e-2, is the
        size expected between independent He inits, facts.md section 6)."""
        tissues = list(TISSUE_CODES)
        base = 0 if self.base_tissue is None else 1 + tissues.index(self.base_tissue)
        return 1000 * self.seed + 10 * tissues.index(self.tissue) + base

    @property
    def base(self) -> NetSpec | None:
        return None if self.base_tissue is None else NetSpec(self.base_tissue, None, self.seed)


def scratch_specs(seed: int = 0) -> list[NetSpec]:
    return [NetSpec(t, None, seed) for t in data.TISSUES]


def finetune_specs(seed: int = 0) -> list[NetSpec]:
    return [NetSpec(t, b, seed) for b in data.TISSUES for t in data.TISSUES if t != b]


def all_specs(seed: int = 0) -> list[NetSpec]:
    return scratch_specs(seed) + finetune_specs(seed)


def train_config(profile: Profile, spec: NetSpec, **overrides) -> TrainConfig:
    """The profile's recipe for one net (fine-tuned nets use ``finetune_lr``)."""
    p = profile
    cfg = TrainConfig(
        tissue=spec.tissue, base_net=None if spec.base is None else spec.base.name, depth=p.depth,
        base_filters=p.base_filters, slice_size=p.slice_size, batch_size=p.batch_size,
        max_epochs=p.max_epochs if spec.base is None or p.finetune_max_epochs is None else p.finetune_max_epochs,
        patience=p.patience, min_delta=p.min_delta, lr=p.lr if spec.base is None else p.finetune_lr,
        lr_decay=p.lr_decay, lr_decay_every=p.lr_decay_every, lr_floor=p.lr_floor,
        steps_per_epoch=p.steps_per_epoch, seed=spec.run_seed, precision=p.precision,
        loss_reduction=p.loss_reduction, head_bias=p.head_bias)
    return dataclasses.replace(cfg, **overrides)


def train_net(profile: Profile, ctx: DataContext, spec: NetSpec, force: bool = False, progress: bool = True,
              run_dir: Path | None = None, train_scans: tuple[str, ...] | None = None, reuse_only: bool = False,
              **overrides) -> TrainResult | None:
    """Train (or reuse) one net. A fine-tuned net first makes sure its base scratch net exists.
    ``reuse_only``: return the finished net or None (nothing is trained)."""
    base_state = None
    if spec.base is not None:
        base = train_net(profile, ctx, spec.base, progress=progress, reuse_only=reuse_only)
        if base is None:
            return None
        base_state = base.state
    cfg = train_config(profile, spec, **overrides)
    train_ds = _slice_dataset(ctx, "train", spec.tissue, profile.slice_size, train_scans)
    val_ds = _slice_dataset(ctx, "valid", spec.tissue, profile.slice_size)
    run_dir = run_dir or paths.models_dir(profile.name) / spec.folder
    return fit(cfg, train_ds, val_ds, run_dir, ctx.manifest_hash, base_state=base_state, force=force,
               num_workers=profile.num_workers, progress=progress, reuse_only=reuse_only)


def train_nets(profile: Profile, ctx: DataContext, specs: list[NetSpec], force: bool = False,
               progress: bool = True) -> dict[NetSpec, TrainResult]:
    """Train (or reuse) several nets; ``profile.parallel_nets`` > 1 trains independent ones at once."""
    from .workers import TrainJob, train_jobs

    results = train_jobs(profile, ctx, [TrainJob(spec) for spec in specs], force=force, progress=progress)
    return dict(zip(specs, results))


def prepare_slice_caches(profile: Profile, ctx: DataContext) -> None:
    """Build the slice caches of every scan at the profile's slice size (a no-op once built)."""
    for record in ctx.records:
        data.build_slice_cache(record, ctx.root, ctx.cache_dir, profile.slice_size)


def load_model(profile: Profile, state: dict[str, torch.Tensor]) -> UNet2D:
    model = UNet2D(profile.depth, profile.base_filters)
    model.load_state_dict(state)
    return model.eval()


# ---------------------------------------------------------------- evaluation

@torch.no_grad()
def predict_volume(model: UNet2D, slices: torch.Tensor, out_shape: tuple[int, int], batch_size: int = 32,
                   precision: str = "auto") -> np.ndarray:
    """Segment a scan slice by slice and stack the result back into 3D.

    Args:
        model: a trained UNet2D.
        slices: (D, 1, S, S) z-scored network inputs.
        out_shape: (H, W) of the original scan; probabilities are resampled bilinearly to it.

    Returns: bool (H, W, D), sigmoid probability >= 0.5.
    """
    device = next(model.parameters()).device
    dtype = autocast_dtype(precision, device)
    model.eval()
    probs = []
    for start in range(0, len(slices), batch_size):
        x = slices[start:start + batch_size].to(device).contiguous(memory_format=torch.channels_last)
        with autocast(device, dtype):
            logits = model(x)
        probs.append(torch.sigmoid(logits.float()).cpu())
    p = torch.cat(probs)  # (D, 1, S, S)
    if tuple(p.shape[-2:]) != tuple(out_shape):
        p = torch.nn.functional.interpolate(p, size=out_shape, mode="bilinear", align_corners=False)
    return (p[:, 0] >= 0.5).permute(1, 2, 0).numpy()  # (H, W, D)


def evaluate_nets(profile: Profile, ctx: DataContext, states: dict[NetSpec, dict[str, torch.Tensor]],
                  split: str = "test") -> pd.DataFrame:
    """Dice, VOE, CV and ASSD (mm) of every net on every scan of ``split``, at the scans' own
    resolution; one row per (net, scan)."""
    device = default_device()
    models = {spec: load_model(profile, s).to(device) for spec, s in states.items()}
    rows = []
    for record in ctx.split(split):
        slices, masks = data.load_eval_volume(record, ctx.root, profile.slice_size, ctx.cache_dir)
        shape = next(iter(masks.values())).shape[:2]
        for spec, model in models.items():
            pred = predict_volume(model, slices, shape, profile.eval_batch_size, profile.precision)
            rows.append({"net": spec.name, "tissue": spec.tissue, "base_tissue": spec.base_tissue or "",
                         "kind": "scratch" if spec.base is None else "fine-tuned", "seed": spec.seed,
                         "scan_id": record.scan_id,
                         **scan_metrics(pred, masks[spec.tissue], record.spacing_mm)})
    return pd.DataFrame(rows)


def summarize_metrics(per_scan: pd.DataFrame) -> pd.DataFrame:
    """Mean and sd per net and metric (the Fig. 2 table)."""
    metrics = [c for c in ("dice", "voe", "cv", "assd_mm") if c in per_scan]
    grouped = per_scan.groupby(["net", "tissue", "kind", "seed"], sort=False)[metrics]
    table = grouped.agg(["mean", "std"])
    table.columns = [f"{m}_{s}" for m, s in table.columns]
    return table.reset_index()


def history_frame(results: dict[NetSpec, TrainResult]) -> pd.DataFrame:
    """Learning curves of several nets in one long table."""
    return pd.DataFrame([{"net": spec.name, "seed": spec.seed, "kind": "scratch" if spec.base is None else
                          "fine-tuned", "best_epoch": r.best_epoch, **row}
                         for spec, r in results.items() for row in r.history])


def threshold_baseline(ctx: DataContext, n_scans: int = 2) -> pd.DataFrame:
    """Dice of the best single intensity window per tissue on the first ``n_scans`` training scans.

    A low value means a segmenter must use spatial context, not just intensity.
    """
    from .phantoms import best_intensity_dice

    rows = []
    for r in ctx.split("train")[:n_scans]:
        image, masks = data.read_image(ctx.root / r.image), data.read_tissue_masks(ctx.root / r.seg)
        rows += [{"scan_id": r.scan_id, "tissue": t, "best_window_dice": best_intensity_dice(image, m)}
                 for t, m in masks.items()]
    return pd.DataFrame(rows)
