"""``executor="submitit"`` against a real one-node Slurm cluster (tests/slurm/start.sh).

The nets come out bitwise as with ``executor="local"`` at the same thread count; a job cancelled
mid-training (as a preemption would end it) is resubmitted and resumes; bad Slurm parameters are
refused before anything trains. Where the cluster cannot be started (no root to install Debian's slurm
and munge, no apt-get) these tests skip with the reason; under ``KNEELIB_REQUIRE_ALL=1`` (CI) they fail.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
from pathlib import Path

import pytest
import torch
from machine import unavailable

from kneelib.core import paths
from kneelib.core.profiles import get_profile
from kneelib.data import context
from kneelib.nets import run, slurm, workers
from kneelib.report import runner
from kneelib.study import nine_nets

pytestmark = pytest.mark.slow

SCRIPTS = paths.REPO_ROOT / "tests" / "slurm"
F, T = "femoral_cartilage", "tibial_cartilage"
SPECS = [run.NetSpec(F), run.NetSpec(T), run.NetSpec(T, F)]


@pytest.fixture(scope="module")
def slurm_cluster():
    """The project's local Slurm, started for this module (and stopped after, unless it was already up)."""
    try:
        started = subprocess.run([str(SCRIPTS / "start.sh")], capture_output=True, text=True, timeout=900)
    except subprocess.TimeoutExpired:
        unavailable("tests/slurm/start.sh did not finish within 15 minutes")
    if started.returncode != 0:
        reason = (started.stderr or started.stdout).strip().splitlines() or ["no output"]
        unavailable(f"no local Slurm cluster (tests/slurm/start.sh, exit {started.returncode}): {reason[-1]}")
    conf = re.search(r"SLURM_CONF=(\S+)", started.stdout)
    assert conf, started.stdout
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SLURM_CONF", conf.group(1))
        yield
    if not started.stdout.startswith("already running"):
        subprocess.run([str(SCRIPTS / "stop.sh")], capture_output=True, timeout=120)


def _job_ids(folder: Path) -> list[str]:
    return sorted({p.name.split("_")[0] for p in folder.glob("*_submitted.pkl")}, key=int)


def _local_nets(tmp_path: Path, monkeypatch, profile, specs):
    """The same nets with executor=local, in this process, with the one thread a job has."""
    monkeypatch.setenv(paths.OUTPUTS_ENV, str(tmp_path / "local"))
    local = profile.replace(executor="local")
    threads = torch.get_num_threads()
    torch.set_num_threads(profile.slurm_cpus_per_net)
    try:
        return nine_nets.train_nets(local, context.prepare_data(local), specs, progress=False)
    finally:
        torch.set_num_threads(threads)


def test_submitit_nets_match_local_nets_bitwise(slurm_cluster, tmp_path, monkeypatch):
    monkeypatch.setenv(paths.OUTPUTS_ENV, str(tmp_path / "slurm"))
    profile = get_profile("tiny", executor="submitit", slurm_cpus_per_net=1, slurm_mem_gb=2.0)
    on_slurm = nine_nets.train_nets(profile, context.prepare_data(profile), SPECS, progress=False)
    jobs = tmp_path / "slurm" / "tiny" / "jobs"
    for spec in SPECS:
        (job_id,) = _job_ids(jobs / spec.folder)  # one job per net, its logs under jobs/<net folder>/
        assert (jobs / spec.folder / f"{job_id}_0_log.out").read_text().count(": epoch ") == 2
    # T|F(s) was submitted only after F(s)'s job had returned (and its best.pt existed).
    base, tuned = jobs / SPECS[0].folder, jobs / SPECS[2].folder
    assert (base / f"{_job_ids(base)[0]}_0_result.pkl").stat().st_mtime <= \
        (tuned / f"{_job_ids(tuned)[0]}_submitted.pkl").stat().st_mtime
    local = _local_nets(tmp_path, monkeypatch, profile, SPECS)
    for spec in SPECS:
        a, b = on_slurm[spec].state, local[spec].state
        assert not local[spec].reused
        assert all(torch.equal(a[k], b[k]) for k in a), spec.name
        assert [(h["train_loss"], h["val_loss"]) for h in on_slurm[spec].history] == \
            [(h["train_loss"], h["val_loss"]) for h in local[spec].history]


def test_cancelled_job_is_resubmitted_and_resumes_to_the_same_net(slurm_cluster, tmp_path, monkeypatch):
    monkeypatch.setenv(paths.OUTPUTS_ENV, str(tmp_path / "slurm"))
    # submitit ignores the SIGTERM of a cancel, and Slurm's SIGKILL can come several seconds later:
    # a tiny epoch takes ~0.1 s, so the run must be long enough not to finish in that time.
    epochs = 300
    profile = get_profile("tiny", executor="submitit", max_epochs=epochs, patience=epochs, slurm_mem_gb=2.0)
    spec = run.NetSpec(F)
    run_dir = tmp_path / "slurm" / "tiny" / "models" / spec.folder
    jobs = tmp_path / "slurm" / "tiny" / "jobs" / spec.folder
    cancelled: dict[str, object] = {}

    def cancel_once_training() -> None:  # scancel the job after its first epoch, as a preemption would
        deadline = time.time() + 300
        while time.time() < deadline and not cancelled:
            ids = _job_ids(jobs) if jobs.exists() else []
            if ids and (run_dir / "last.pt").exists() and not (run_dir / "best.pt").exists():
                epoch = torch.load(run_dir / "last.pt", weights_only=True)["epoch"]
                # early in the run, so the job cannot finish before the cancel's SIGKILL lands
                if epoch <= 10 and slurm.queue_states(ids[:1]).get(ids[0], "") == "RUNNING":
                    subprocess.run(["scancel", ids[0]], check=True)
                    cancelled.update(job=ids[0], epoch=epoch)
            time.sleep(0.1)

    watcher = threading.Thread(target=cancel_once_training, daemon=True)
    watcher.start()
    (on_slurm,) = nine_nets.train_nets(profile, context.prepare_data(profile), [spec], progress=False).values()
    watcher.join(timeout=5)
    assert cancelled, "the job finished before it could be cancelled"
    ids = _job_ids(jobs)
    assert ids[0] == cancelled["job"] and len(ids) == 2, ids  # cancelled, then one resubmission
    assert cancelled["epoch"] <= 10
    resumed = re.search(r"last.pt holds epoch (\d+): resuming", (jobs / f"{ids[1]}_0_log.out").read_text())
    assert resumed and int(resumed.group(1)) >= cancelled["epoch"], "the resubmitted job started over"
    assert len(on_slurm.history) == epochs
    (local,) = _local_nets(tmp_path, monkeypatch, profile, [spec]).values()
    assert all(torch.equal(on_slurm.state[k], local.state[k]) for k in local.state)
    assert [h["val_loss"] for h in on_slurm.history] == [h["val_loss"] for h in local.history]


def test_a_net_failing_in_its_job_stops_the_run_with_its_name_and_log(slurm_cluster, tmp_path, monkeypatch):
    monkeypatch.setenv(paths.OUTPUTS_ENV, str(tmp_path))
    profile = get_profile("tiny", executor="submitit", slurm_mem_gb=2.0)
    ctx = context.prepare_data(profile)
    bad = workers.TrainJob(run.NetSpec(T), overrides=(("lr", float("nan")),))
    expected = (r"T\(s\) \[seed0/tibial_cartilage__scratch\] failed in Slurm job \d+: "
                r"ValueError: Invalid learning rate: nan\nlog: .*/jobs/seed0/tibial_cartilage__scratch/\d+_0_log.err")
    with pytest.raises(slurm.JobFailed, match=expected):
        workers.train_jobs(profile, ctx, [bad], progress=False)
    assert not (tmp_path / "tiny" / "models" / run.NetSpec(T).folder / "best.pt").exists()


@pytest.mark.parametrize(("overrides", "message"), [
    ({"slurm_partition": "no_such_partition"}, r"slurm_partition='no_such_partition'.*invalid partition"),
    ({"gpus_per_net": 1}, r"gpus_per_net=1.*(gres|GPU|gpu)"),
    ({"slurm_mem_gb": 100000.0}, r"slurm_mem_gb=100000.0.*(memory|node configuration)"),
])
def test_slurm_refuses_parameters_before_anything_trains(slurm_cluster, tmp_path, monkeypatch, overrides, message):
    monkeypatch.setenv(paths.OUTPUTS_ENV, str(tmp_path))
    profile = get_profile("tiny", executor="submitit", **overrides)
    with pytest.raises(ValueError, match=message):
        workers.train_jobs(profile, context.prepare_data(profile), [workers.TrainJob(run.NetSpec(F))],
                           progress=False)
    assert not (tmp_path / "tiny" / "jobs").exists() and not (tmp_path / "tiny" / "models").exists()


def test_reproduce_refuses_bad_slurm_parameters_before_the_first_notebook(slurm_cluster, tmp_path, monkeypatch):
    monkeypatch.setenv(paths.OUTPUTS_ENV, str(tmp_path))
    with pytest.raises(ValueError, match="slurm_partition='gpu_nodes'.*invalid partition"):
        runner.reproduce("tiny", {"executor": "submitit", "slurm_partition": "gpu_nodes"}, only=["02"], report=False)
    assert not any(tmp_path.iterdir())


def test_submitit_refuses_unknown_parameters_of_the_config_file(slurm_cluster, tmp_path):
    config = tmp_path / "slurm.json"
    config.write_text(json.dumps({"slurm_acount": "lab"}))
    profile = get_profile("tiny", executor="submitit", slurm_config=str(config))
    with pytest.raises(ValueError, match=r"submitit rejects.*slurm_acount.*slurm_config="):
        slurm.check(profile)
    config.write_text(json.dumps({"slurm_account": "lab", "slurm_qos": "normal"}))
    params = slurm.slurm_parameters(profile)
    assert params["slurm_account"] == "lab" and params["cpus_per_task"] == 1
    assert os.environ["SLURM_CONF"].endswith("slurm.conf")
