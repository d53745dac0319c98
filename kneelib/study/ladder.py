"""Training the known-relatedness ladder (:data:`kneelib.study.relatedness.RUNGS`) and measuring each rung's
fine-tune against its base net (09_relatedness).

The base nets are the study's scratch nets (``models/<profile>/seed<k>/<tissue>__scratch``: F(s) reused when
02 trained it, TL(s) trained when missing). A rung's net lives in ``models/<profile>/relatedness/seed<k>/<rung>``
and trains through :func:`kneelib.nets.train.fit` with the profile's fine-tune recipe, so it is reused while its
inputs are unchanged and resumes when killed, like every other net. Rungs 0 and 1 fine-tune a net on its own
tissue, which :class:`kneelib.nets.run.NetSpec` refuses; their recipe is built by :func:`rung_config` with the
seed formula of ``NetSpec.run_seed`` (so both start from the same shuffle and differ only in their masks).
"""

from __future__ import annotations

import hashlib
import time
from concurrent.futures import as_completed
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from kneelib.compare.alignment import align
from kneelib.compare.distances import NETWORK, kernel_distances
from kneelib.compare.similarity import cka_from_grams
from kneelib.core import paths
from kneelib.core.fingerprint import source_fingerprint
from kneelib.core.profiles import Profile
from kneelib.data import mask_dilation
from kneelib.data.context import DataContext, cka_images, prepare_slice_caches, slice_dataset
from kneelib.names import tissue_index
from kneelib.nets import workers
from kneelib.nets.run import NetSpec, train_config, train_net
from kneelib.nets.train import (
    TrainConfig,
    TrainResult,
    autocast_dtype,
    build_model,
    calibrate_head_bias,
    calibration_images,
    default_device,
    fit,
    validation_loss,
)
from kneelib.nets.unet import layer_groups, model_from_state
from kneelib.nets.workers import TrainJob, make_pool, train_jobs
from kneelib.study.controls import gram_matrices
from kneelib.study.relatedness import LONG_COLUMNS, RUNGS, Rung


def base_spec(rung: Rung, seed: int) -> NetSpec:
    """The scratch net a rung fine-tunes."""
    return NetSpec(rung.base, None, seed)


def rung_config(profile: Profile, rung: Rung, seed: int) -> TrainConfig:
    """The profile's fine-tune recipe for ``rung`` at ``seed``: ``train_config`` of the fine-tuned net when base
    and target differ; for a net fine-tuned on its own tissue the same recipe by hand, with the seed
    ``NetSpec.run_seed`` would give it (1000 seed + 10 i + 1 + i, i the tissue's index)."""
    if rung.base != rung.target:
        return train_config(profile, NetSpec(rung.target, rung.base, seed))
    base = base_spec(rung, seed)
    return TrainConfig.from_profile(profile, rung.target, base_net=base.name,
                                    seed=base.run_seed + 1 + tissue_index(rung.base))


def rung_dir(profile: Profile, rung: Rung, seed: int) -> Path:
    """``models/<profile>/relatedness/seed<k>/<rung name>``."""
    return paths.models_dir(profile.name) / "relatedness" / f"seed{seed}" / rung.name


def rung_data_hash(ctx: DataContext, rung: Rung) -> str:
    """The identity of the rung's data in its run key: the manifest hash, and for a dilated rung the
    transform and the code of its module as well (so a change of the dilation retrains that net)."""
    if not rung.dilate:
        return ctx.manifest_hash
    transform = f"{mask_dilation.NAME}:{source_fingerprint(mask_dilation.__name__)}"
    return hashlib.sha256(f"{ctx.manifest_hash}|{transform}".encode()).hexdigest()


def rung_datasets(profile: Profile, ctx: DataContext, rung: Rung) -> tuple[Dataset, Dataset]:
    """The rung's training and validation slices, with the target's masks (dilated on the dilated rung)."""
    train, val = (slice_dataset(ctx, split, rung.target, profile.slice_size, None, profile.lazy_slices)
                  for split in ("train", "valid"))
    if rung.dilate:
        return mask_dilation.DilatedMasks(train), mask_dilation.DilatedMasks(val)
    return train, val


def train_rung(profile: Profile, ctx: DataContext, rung: Rung, seed: int, force: bool = False,
               progress: bool = True, reuse_only: bool = False) -> TrainResult | None:
    """Train (or reuse) one rung's fine-tuned net; its base scratch net is trained first when missing.
    ``reuse_only``: the finished net or None, nothing trained."""
    base = train_net(profile, ctx, base_spec(rung, seed), progress=progress, reuse_only=reuse_only)
    if base is None:
        return None
    train, val = rung_datasets(profile, ctx, rung)
    return fit(rung_config(profile, rung, seed), train, val, rung_dir(profile, rung, seed),
               rung_data_hash(ctx, rung), base_state=base.state, force=force, num_workers=profile.num_workers,
               progress=progress, reuse_only=reuse_only)


def _rung_worker(profile: Profile, ctx: DataContext, rung: Rung, seed: int, force: bool) -> dict[str, Any]:
    start = time.perf_counter()
    result = train_rung(profile, ctx, rung, seed, force=force, progress=False)
    return {"epochs": len(result.history), "best_val_loss": result.best_val_loss,
            "seconds": time.perf_counter() - start}


def _train_in_pool(profile: Profile, ctx: DataContext, pending: list[tuple[Rung, int]], force: bool,
                   progress: bool) -> None:
    """The pending rungs in ``profile.parallel_nets`` worker processes, with the thread count the study's
    waves use (``kneelib.nets.workers``), so a rung's bits do not depend on what else was pending."""
    prepare_slice_caches(profile, ctx)  # built once here, not raced by the workers
    threads = max(1, torch.get_num_threads() // profile.parallel_nets)
    pool = make_pool(min(profile.parallel_nets, len(pending)), threads)
    try:
        futures = {pool.submit(_rung_worker, profile, ctx, rung, seed, force): (rung, seed) for rung, seed in pending}
        for future in as_completed(futures):
            rung, seed = futures[future]
            try:
                info = future.result()
            except Exception as err:
                raise RuntimeError(f"training {rung.net} seed {seed} ({rung.name}) failed in a worker process: "
                                   f"{err}") from err
            if progress:
                print(f"{rung.net} seed {seed} [{rung.name}]: {info['epochs']} epochs, {info['seconds']:.0f} s, "
                      f"best val {info['best_val_loss']:.4f}", flush=True)
    except BaseException:
        workers._abort(pool)  # the waves' own stop: drops the queued rungs and ends the running workers
        raise
    pool.shutdown()


def train_ladder(profile: Profile, ctx: DataContext, force: bool = False,
                 progress: bool = True) -> dict[tuple[int, str], TrainResult]:
    """Train (or reuse) every rung of every seed of ``profile``: (seed, rung name) -> result.

    The base scratch nets first (``kneelib.nets.workers.train_jobs``, reused when present; ``force`` does not
    retrain them), then the rungs, side by side in worker processes when ``profile.parallel_nets`` > 1.
    ``force`` retrains the rungs.
    """
    bases = list(dict.fromkeys(base_spec(r, s) for s in profile.seeds for r in RUNGS))
    train_jobs(profile, ctx, [TrainJob(b) for b in bases], progress=progress)
    todo = [(r, s) for s in profile.seeds for r in RUNGS]
    if profile.parallel_nets > 1:
        pending = [(r, s) for r, s in todo if force or train_rung(profile, ctx, r, s, progress=False,
                                                                   reuse_only=True) is None]
        if pending:
            _train_in_pool(profile, ctx, pending, force, progress)
        force = False  # every rung is now trained: the calls below load them
    return {(s, r.name): train_rung(profile, ctx, r, s, force=force, progress=progress) for r, s in todo}


@torch.no_grad()
def start_val_loss(profile: Profile, ctx: DataContext, rung: Rung, seed: int,
                   base_state: dict[str, torch.Tensor]) -> float:
    """The validation loss of the rung's fine-tune before any step: the base net with the output bias
    :func:`kneelib.nets.train.fit` calibrates on the rung's first training slices, on the rung's validation set.

    ``tests/test_relatedness.py`` checks it against ``fit``'s first epoch with the steps left out, so the two
    start models cannot drift apart.
    """
    cfg = rung_config(profile, rung, seed)
    train, val = rung_datasets(profile, ctx, rung)
    device = default_device()
    model = build_model(cfg, base_state).to(device).to(memory_format=torch.channels_last)
    if cfg.head_bias:
        calibrate_head_bias(model, calibration_images(train).to(device), cfg.head_bias)
    return validation_loss(model, val, cfg.batch_size * 2, device, autocast_dtype(cfg.precision, device),
                           loss_reduction=cfg.loss_reduction)


def pair_measures(base: dict[str, torch.Tensor], tuned: dict[str, torch.Tensor], base_grams: dict[str, np.ndarray],
                  tuned_grams: dict[str, np.ndarray], seed: int) -> pd.DataFrame:
    """Every measure between a base net and its fine-tune, per layer group and for the whole net ("network").

    - ``kernel_distance``: :func:`kneelib.compare.distances.kernel_distances` (mean per-kernel L2 distance);
    - ``aligned_kernel_distance``: the same after permuting the fine-tune's hidden units to best match the
      base (:func:`kneelib.compare.alignment.align`, visiting order from ``seed``);
    - ``relative_displacement``: ||w - w_base|| / ||w_base|| over the group's convolution weights
      (``reduction="weight", scale="relative"``);
    - ``cka``: debiased linear CKA of the two nets' activations per group, from their Gram matrices on the
      same images (:func:`kneelib.study.controls.gram_matrices`); "network" is the mean over the groups.

    Returns a table (measure, group, value).
    """
    aligned = align(model_from_state(base), model_from_state(tuned), seed=seed).state_dict()
    values = {"kernel_distance": kernel_distances(base, tuned),
              "aligned_kernel_distance": kernel_distances(base, aligned),
              "relative_displacement": kernel_distances(base, tuned, reduction="weight", scale="relative")}
    cka = {g: cka_from_grams(base_grams[g], tuned_grams[g]) for g in base_grams}
    values["cka"] = cka | {NETWORK: float(np.mean(list(cka.values())))}
    groups = [*layer_groups(model_from_state(base).depth), NETWORK]  # depth order, as the figures draw them
    return pd.DataFrame([{"measure": m, "group": g, "value": values[m][g]} for m in values for g in groups
                         if g in values[m]])


def ladder_table(profile: Profile, ctx: DataContext, trained: dict[tuple[int, str], TrainResult]) -> pd.DataFrame:
    """The long table of the ladder (:data:`kneelib.study.relatedness.LONG_COLUMNS`): one row per seed, rung,
    measure (:func:`pair_measures`) and group, with the rung's starting validation loss (:func:`start_val_loss`),
    best epoch and epochs run. CKA on ``profile.cka_slices`` test slices (:func:`kneelib.data.context.cka_images`).

    ``trained``: :func:`train_ladder`'s results.
    """
    images = cka_images(profile, ctx, profile.cka_slices)
    frames = []
    for seed in profile.seeds:
        grams: dict[str, dict[str, np.ndarray]] = {}
        for rung in RUNGS:
            base = train_net(profile, ctx, base_spec(rung, seed), progress=False, reuse_only=True).state
            grams.setdefault(rung.base, gram_matrices(base, images))
            result = trained[(seed, rung.name)]
            measures = pair_measures(base, result.state, grams[rung.base], gram_matrices(result.state, images), seed)
            frames.append(measures.assign(
                seed=seed, rung=rung.index, rung_name=rung.name, pair=rung.pair, base_task=rung.base_task,
                target_task=rung.target_task, start_val_loss=start_val_loss(profile, ctx, rung, seed, base),
                best_epoch=result.best_epoch, epochs=len(result.history)))
    return pd.concat(frames, ignore_index=True)[LONG_COLUMNS]
