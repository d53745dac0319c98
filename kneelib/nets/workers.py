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

On a machine with several visible GPUs the pool has one worker per GPU, each pinned to its own
device (``CUDA_VISIBLE_DEVICES``). With ``Profile.executor == "submitit"`` every unfinished net is
a Slurm job instead (:mod:`kneelib.nets.slurm`), trained with ``slurm_cpus_per_net`` threads; a
fine-tuned net's job is submitted once its base's job has finished.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from kneelib.core import paths
from kneelib.core.profiles import Profile
from kneelib.data.context import DataContext, prepare_slice_caches
from kneelib.nets import slurm
from kneelib.nets.run import NetSpec, train_net
from kneelib.nets.train import TrainResult, resumable_epoch


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


def _init_worker(threads: int, devices: Any = None) -> None:
    """Set the worker's threads and, given a queue of GPU ids, pin it to the next one."""
    torch.set_num_threads(threads)
    if devices is not None:  # before anything in this process touches CUDA
        os.environ["CUDA_VISIBLE_DEVICES"] = devices.get_nowait()


def visible_gpus() -> list[str]:
    """The ids (as ``CUDA_VISIBLE_DEVICES`` names them) of the GPUs this process can use."""
    count = torch.cuda.device_count()
    listed = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    return listed[:count] if listed else [str(i) for i in range(count)]


def make_pool(workers: int, threads: int, gpus: list[str] | None = None) -> ProcessPoolExecutor:
    """Spawned worker processes with ``threads`` threads each; with ``gpus``, each worker on its own GPU."""
    context = multiprocessing.get_context("spawn")  # fork after OpenMP has started can hang
    devices = None
    if gpus:
        if len(gpus) < workers:
            raise ValueError(f"{workers} workers need as many GPUs, got {gpus}")
        devices = context.Queue()
        for gpu in gpus[:workers]:
            devices.put(gpu)
    return ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=(threads, devices))


def check_executor(profile: Profile) -> None:
    """Raise ValueError, naming the value, when the profile's nets cannot train where it says.

    Local: this machine must show ``gpus_per_net`` GPUs. submitit: Slurm must accept a job with the
    profile's parameters (:func:`kneelib.nets.slurm.check`).
    """
    if profile.executor == "submitit":
        slurm.check(profile)
    elif profile.gpus_per_net > len(visible_gpus()):
        raise ValueError(f"gpus_per_net={profile.gpus_per_net}, but this machine shows {len(visible_gpus())} GPUs "
                         "(torch.cuda.device_count()); use gpus_per_net=0 or a machine with a GPU")


def _worker(profile: Profile, ctx: DataContext, job: TrainJob, force: bool, progress: bool = False) -> dict[str, Any]:
    start = time.perf_counter()
    result = _train(profile, ctx, job, force, progress=progress)
    return {"epochs": len(result.history), "best_epoch": result.best_epoch, "best_val_loss": result.best_val_loss,
            "reused": result.reused, "seconds": time.perf_counter() - start}


def _waves(jobs: list[TrainJob]) -> list[list[TrainJob]]:
    """Scratch nets (and the bases fine-tuned nets need) first, then the fine-tuned nets."""
    bases = [TrainJob(j.spec.base) for j in jobs if j.spec.base is not None]
    first = list(dict.fromkeys([j for j in jobs if j.spec.base is None] + bases))
    return [w for w in (first, [j for j in jobs if j.spec.base is not None]) if w]


def _run_wave(profile: Profile, ctx: DataContext, wave: list[TrainJob], force: set[TrainJob],
              progress: bool) -> None:
    gpus = visible_gpus()
    slots = len(gpus) if len(gpus) > 1 else profile.parallel_nets  # several GPUs: one net on each
    workers = min(slots, len(wave))
    # Threads follow the slots, not the wave's size, so a net's arithmetic does not depend on
    # how many other nets happened to train beside it.
    threads = max(1, torch.get_num_threads() // slots)
    pool = make_pool(workers, threads, gpus if len(gpus) > 1 else None)
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


def _slurm_job(profile: Profile, ctx: DataContext, job: TrainJob, outputs: str) -> dict[str, Any]:
    """The call inside a Slurm job: this run's outputs folder, the profile's thread count, then the net."""
    os.environ[paths.OUTPUTS_ENV] = outputs
    torch.set_num_threads(profile.slurm_cpus_per_net)
    epoch = resumable_epoch(_run_dir(job, profile))
    print(f"{job.spec.name} [{_run_dir(job, profile)}]: {torch.get_num_threads()} threads, "
          + (f"last.pt holds epoch {epoch}: resuming from it" if epoch else "starting"), flush=True)
    return _worker(profile, ctx, job, force=False, progress=True)  # epoch lines go to the job's log


def _run_dir(job: TrainJob, profile: Profile) -> Path:
    return job.run_dir or paths.models_dir(profile.name) / job.spec.folder


def _on_slurm(profile: Profile, ctx: DataContext, jobs: list[TrainJob], forced: set[TrainJob],
              progress: bool) -> None:
    """Every unfinished job (and the unfinished bases they need) as a Slurm job, bases first."""
    pending = [j for j in jobs if j in forced or not _finished(profile, ctx, j)]
    bases = [TrainJob(j.spec.base) for j in pending if j.spec.base is not None]
    pending = list(dict.fromkeys(pending + [b for b in bases if b not in pending and not _finished(profile, ctx, b)]))
    if not pending:
        return
    slurm.check(profile)  # before the caches are built and anything is submitted
    prepare_slice_caches(profile, ctx)  # built once here, not raced by the jobs
    models, outputs = paths.models_dir(profile.name), str(paths.outputs_root())
    tasks = []
    for job in pending:
        run_dir = _run_dir(job, profile)
        if job in forced:  # retrain: drop the old result, so that a resubmitted job resumes this run
            for name in ("best.pt", "last.pt"):
                (run_dir / name).unlink(missing_ok=True)
        rel = run_dir.relative_to(models) if run_dir.is_relative_to(models) else Path("other") / run_dir.name
        after = tuple(pending.index(b) for b in [TrainJob(job.spec.base)] if job.spec.base and b in pending)
        tasks.append(slurm.SlurmTask(
            name=f"{job.spec.name} [{rel}]", folder=paths.profile_dir(profile.name) / "jobs" / rel,
            call=functools.partial(_slurm_job, profile, ctx, job, outputs),
            finished=functools.partial(_finished, profile, ctx, job), after=after, job_name=f"{profile.name}:{rel}"))
    infos = slurm.run_tasks(profile, tasks, progress)
    if progress:
        for task, info in zip(tasks, infos):
            print(f"{task.name}: {info['epochs']} epochs, {info['seconds']:.0f} s in its last job, best val "
                  f"{info['best_val_loss']:.4f} (epoch {info['best_epoch']})", flush=True)


def train_jobs(profile: Profile, ctx: DataContext, jobs: list[TrainJob], force: bool = False,
               progress: bool = True) -> list[TrainResult]:
    """Train (or reuse) every job and return their results in order.

    ``executor="submitit"``: the unfinished jobs run as Slurm jobs (:func:`_on_slurm`). Otherwise,
    with ``profile.parallel_nets`` > 1 (or several visible GPUs) the unfinished jobs of each wave
    train in spawned worker processes (even a single job, so that its thread count, and so its bits,
    do not depend on what else was pending); else one after the other in this process. ``force``
    retrains the listed jobs, not the bases they depend on (as :func:`kneelib.nets.run.train_net`).
    """
    forced = set(jobs) if force else set()
    if profile.executor == "submitit":
        _on_slurm(profile, ctx, jobs, forced, progress)  # checks Slurm's parameters when a net needs training
        force = False  # every job is now finished: the calls below load them
        return [_train(profile, ctx, job, force, progress) for job in jobs]
    check_executor(profile)
    if profile.parallel_nets > 1 or len(visible_gpus()) > 1:
        waves = [[j for j in wave if j in forced or not _finished(profile, ctx, j)] for wave in _waves(jobs)]
        if any(waves):
            prepare_slice_caches(profile, ctx)  # built once here, not raced by the workers
        for wave in waves:
            if wave:
                _run_wave(profile, ctx, wave, forced, progress)
        force = False
    return [_train(profile, ctx, job, force, progress) for job in jobs]
