"""Parallel training in worker processes gives the same nets as training them one by one."""

from __future__ import annotations

import multiprocessing
import os

import pytest
import torch

from kneelib.core import paths
from kneelib.core.profiles import get_profile
from kneelib.data import context
from kneelib.nets import run, workers
from kneelib.study import nine_nets

F, T = "femoral_cartilage", "tibial_cartilage"
SPECS = [run.NetSpec(F), run.NetSpec(T), run.NetSpec(T, F)]


def test_waves_put_bases_before_fine_tuned_nets():
    jobs = [workers.TrainJob(run.NetSpec(T, F)), workers.TrainJob(run.NetSpec(T))]
    first, second = workers._waves(jobs)
    assert [j.spec.name for j in first] == ["T(s)", "F(s)"]  # F(s) added: T|F(s) needs it
    assert [j.spec.name for j in second] == ["T|F(s)"]


@pytest.mark.slow
def test_parallel_nets_match_sequential_training_bitwise(tmp_path, monkeypatch):
    monkeypatch.setenv(paths.OUTPUTS_ENV, str(tmp_path / "parallel"))
    profile = get_profile("tiny", parallel_nets=2)
    ctx = context.prepare_data(profile)
    parallel = nine_nets.train_nets(profile, ctx, SPECS, progress=False)
    assert all(r.reused for r in parallel.values())  # the parent loaded what the workers wrote
    assert len(list((tmp_path / "parallel").rglob("best.pt"))) == 3
    # Finished nets are loaded here; no worker is started for them.
    monkeypatch.setattr(workers, "_run_wave", lambda *a: pytest.fail("started workers for finished nets"))
    assert all(r.reused for r in nine_nets.train_nets(profile, ctx, SPECS, progress=False).values())

    # The same nets, one after the other in this process, with the threads a worker had.
    monkeypatch.setenv(paths.OUTPUTS_ENV, str(tmp_path / "sequential"))
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, threads // 2))
    try:
        sequential_profile = profile.replace(parallel_nets=1)
        sequential = nine_nets.train_nets(sequential_profile, context.prepare_data(sequential_profile), SPECS,
                                      progress=False)
    finally:
        torch.set_num_threads(threads)
    for spec in SPECS:
        a, b = parallel[spec].state, sequential[spec].state
        assert not sequential[spec].reused
        assert all(torch.equal(a[k], b[k]) for k in a), spec.name
        assert parallel[spec].history[-1]["val_loss"] == sequential[spec].history[-1]["val_loss"]


@pytest.mark.slow
def test_worker_failure_names_the_net(tmp_path, monkeypatch):
    monkeypatch.setenv(paths.OUTPUTS_ENV, str(tmp_path))
    profile = get_profile("tiny", parallel_nets=2)
    ctx = context.prepare_data(profile)
    bad = workers.TrainJob(run.NetSpec(T), overrides=(("lr", float("nan")),))
    queued = [workers.TrainJob(run.NetSpec(F), run_dir=tmp_path / f"queued{i}") for i in range(4)]
    with pytest.raises(RuntimeError, match=r"T\(s\).*worker.*learning rate: nan"):
        workers.train_jobs(profile, ctx, [bad, workers.TrainJob(run.NetSpec(F))] + queued, progress=False)
    # The pool stops at the first failure: queued nets are cancelled, not trained first. (Two workers
    # and the executor's one call in flight can have started at most two of them.)
    started = [j for j in queued if (j.run_dir / "last.pt").exists() or (j.run_dir / "best.pt").exists()]
    assert len(started) <= 2, started


def test_local_gpus_per_net_must_exist_on_this_machine(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    with pytest.raises(ValueError, match="gpus_per_net=1, but this machine shows 0 GPUs"):
        workers.check_executor(get_profile("tiny", gpus_per_net=1))
    workers.check_executor(get_profile("tiny", gpus_per_net=0))


def test_visible_gpus_follow_cuda_visible_devices(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    assert workers.visible_gpus() == ["3", "5"]
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert workers.visible_gpus() == ["0", "1"]


def _device_of_worker(barrier) -> tuple[int, str]:
    barrier.wait(timeout=120)  # both tasks at once: each on its own worker
    return os.getpid(), os.environ["CUDA_VISIBLE_DEVICES"]


@pytest.mark.slow
def test_each_pool_worker_is_pinned_to_its_own_gpu():
    with multiprocessing.get_context("spawn").Manager() as manager:
        barrier = manager.Barrier(2)
        pool = workers.make_pool(2, 1, ["3", "5"])
        try:
            seen = [f.result(timeout=180) for f in [pool.submit(_device_of_worker, barrier) for _ in range(2)]]
        finally:
            pool.shutdown()
    assert len({pid for pid, _ in seen}) == 2
    assert sorted(device for _, device in seen) == ["3", "5"]
