"""Train independent networks side by side in worker processes (``Profile.parallel_nets``).

On the 2-core demo machine a small U-Net does not keep two threads busy: two single-thread
processes each training its own net get 1.6x the slices/s of one process with two threads at the
demo's size, 1.3x with 16 filters at 128 x 128 (``benchmarks/train_step.py --parallel 2``). The nets
of one wave are independent (the three scratch nets; then the six nets fine-tuned from them; the
policy runs), so they can train at once.

Every worker runs :func:`kneelib.nets.run.train_net` exactly as the sequential path does and writes the
same checkpoints; the parent then loads the finished nets from their ``best.pt`` (the reuse path),
so a killed parallel run resumes like a sequential one. A worker trains with
``cores // parallel_nets`` threads; its weights are reproducible for that setting (float sums
over a different number of threads round differently, so they can differ in the last bits from a
run with another ``parallel_nets``; the run key ignores it, so either run's nets are reused).
"""

from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from kneelib.core.profiles import Profile
from kneelib.data.context import DataContext, prepare_slice_caches
from kneelib.nets.run import NetSpec, train_net
from kneelib.nets.train import TrainResult


@dataclass(frozen=True)
class TrainJob:
    """One call of :func:`kneelib.nets.run.train_net`: a net and its non-default inputs."""

    spec: NetSpec
    run_dir: Path | None = None              # None: the net's own folder under models/
    train_scans: tuple[str, ...] | None = None  # None: every training scan
    overrides: tuple[tuple[str, Any], ...] = ()  # (TrainConfig field, value) pairs; part of the job's identity


def _train(profile: Profile, ctx: DataContext, job: TrainJob, force: bool, progress: bool,
           reuse_only: bool = False) -> TrainResult | None:
    return train_net(profile, ctx, job.spec, force=force, progress=progress, run_dir=job.run_dir,
                     train_scans=job.train_scans, reuse_only=reuse_only, **dict(job.overrides))


def _finished(profile: Profile, ctx: DataContext, job: TrainJob) -> bool:
    return _train(profile, ctx, job, force=False, progress=False, reuse_only=True) is not None


def _init_worker(threads: int) -> None:
    torch.set_num_threads(threads)


def _worker(profile: Profile, ctx: DataContext, job: TrainJob, force: bool) -> dict[str, Any]:
    start = time.perf_counter()
    result = _train(profile, ctx, job, force, progress=False)
    return {"epochs": len(result.history), "best_epoch": result.best_epoch, "best_val_loss": result.best_val_loss,
            "reused": result.reused, "seconds": time.perf_counter() - start}


def _waves(jobs: list[TrainJob]) -> list[list[TrainJob]]:
    """Scratch nets (and the bases fine-tuned nets need) first, then the fine-tuned nets."""
    bases = [TrainJob(j.spec.base) for j in jobs if j.spec.base is not None]
    first = list(dict.fromkeys([j for j in jobs if j.spec.base is None] + bases))
    return [w for w in (first, [j for j in jobs if j.spec.base is not None]) if w]


def _run_wave(profile: Profile, ctx: DataContext, wave: list[TrainJob], force: set[TrainJob],
              progress: bool) -> None:
    workers = min(profile.parallel_nets, len(wave))
    # Threads follow parallel_nets, not the wave's size, so a net's arithmetic does not depend on
    # how many other nets happened to train beside it.
    threads = max(1, torch.get_num_threads() // profile.parallel_nets)
    context = multiprocessing.get_context("spawn")  # fork after OpenMP has started can hang
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=(threads,))
    try:
        futures = {pool.submit(_worker, profile, ctx, job, job in force): job for job in wave}
        for future in as_completed(futures):
            job = futures[future]
            where = job.run_dir or job.spec.folder
            try:
                info = future.result()
            except Exception as err:
                raise RuntimeError(f"training {job.spec.name} ({where}) failed in a worker process: {err}") from err
            if progress:
                state = "reused" if info["reused"] else f"{info['epochs']} epochs, {info['seconds']:.0f} s"
                print(f"{job.spec.name} [{where}]: {state}, best val {info['best_val_loss']:.4f} "
                      f"(epoch {info['best_epoch']})", flush=True)
    except BaseException:
        _abort(pool)
        raise
    pool.shutdown()


def _abort(pool: ProcessPoolExecutor) -> None:
    """Stop a wave at once: drop the queued nets and end the running workers.

    A net stopped mid-training keeps its last complete checkpoint (written atomically) and resumes
    from it on the next run; nothing half-written is taken for a finished net.
    """
    processes = list((pool._processes or {}).values())  # the executor has no public way to end its workers
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.terminate()
    for process in processes:
        process.join()


def train_jobs(profile: Profile, ctx: DataContext, jobs: list[TrainJob], force: bool = False,
               progress: bool = True) -> list[TrainResult]:
    """Train (or reuse) every job and return their results in order.

    With ``profile.parallel_nets`` > 1 the unfinished jobs of each wave train in that many spawned
    worker processes (even a single job, so that its thread count, and so its bits, do not depend on
    what else was pending); otherwise one after the other in this process. ``force`` retrains the listed jobs,
    not the bases they depend on (as :func:`kneelib.nets.run.train_net`).
    """
    if profile.parallel_nets > 1:
        forced = set(jobs) if force else set()
        waves = [[j for j in wave if j in forced or not _finished(profile, ctx, j)] for wave in _waves(jobs)]
        if any(waves):
            prepare_slice_caches(profile, ctx)  # built once here, not raced by the workers
        for wave in waves:
            if wave:
                _run_wave(profile, ctx, wave, forced, progress)
        force = False  # every job is now finished: the calls below load them
    return [_train(profile, ctx, job, force, progress) for job in jobs]
