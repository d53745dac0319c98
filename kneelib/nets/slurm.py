"""Independent tasks as Slurm jobs through submitit (``Profile.executor == "submitit"``).

Each task (for the suite: one net, :mod:`kneelib.nets.workers`) is one job submitted with
``submitit.AutoExecutor``; its sbatch script, pickles and logs lie in the task's own folder
(``outputs/<profile>/jobs/<net folder>/<job id>_0_log.{out,err}``). This process stays the
scheduler:

- a task is submitted only once the tasks it depends on are finished (a fine-tuned net after its
  base's ``best.pt`` exists);
- a job that ends without a result (cancelled, preempted, timed out, node failure) is submitted
  again, up to ``Profile.slurm_max_resubmits`` times, and resumes from its last checkpoint; a job
  preempted with a requeue signal is requeued by submitit itself (the call is ``Checkpointable``);
- a job that fails for a real reason (an exception in the call, the job failed or ran out of
  memory) stops the run: the remaining jobs are cancelled and the error names the task and the
  job's log;
- a task counts as done only when its own check (for a net: a finished ``best.pt`` with the run's
  key) passes here, never on the job's word alone.

Job states come from ``squeue`` (clusters without accounting have no ``sacct``, which submitit's
own state tracking needs).
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kneelib.core.paths import REPO_ROOT
from kneelib.core.profiles import Profile

# squeue states of a job that may still produce a result.
ACTIVE_STATES = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD",
                 "RESIZING", "SUSPENDED", "SIGNALING", "STAGE_OUT", "STOPPED", "RESV_DEL_HOLD", "SPECIAL_EXIT"}
# States of a job that ended for a reason of its own, not the cluster's: resubmitting would not help.
FAILED_STATES = {"FAILED", "OUT_OF_MEMORY"}
RESULT_GRACE_S = 5.0  # after a job leaves the queue, how long its result file may take to appear


class JobFailed(RuntimeError):
    """A task's job failed for a real reason; the message names the task and the job's log."""


@dataclass(frozen=True)
class SlurmTask:
    """One job's worth of work."""

    name: str                          # shown in progress lines and errors, e.g. "T|F(s) [seed0/...]"
    folder: Path                       # submitit's folder for this task's jobs (logs, pickles, script)
    call: Callable[[], Any]            # picklable; runs inside the job; must resume where a killed one stopped
    finished: Callable[[], bool]       # checked here: is the task's output complete?
    after: tuple[int, ...] = ()        # indices of the tasks that must be finished first
    job_name: str = "kneelib"          # the Slurm job name (squeue's NAME column)


def slurm_parameters(profile: Profile) -> dict[str, Any]:
    """``AutoExecutor.update_parameters`` arguments from the profile's fields and its ``slurm_config`` file."""
    params: dict[str, Any] = {
        "timeout_min": profile.slurm_time_min, "mem_gb": profile.slurm_mem_gb,
        "cpus_per_task": profile.slurm_cpus_per_net, "nodes": 1, "tasks_per_node": 1,
        # The job imports the same kneelib as this process, whatever its working directory.
        "slurm_setup": [f"export PYTHONPATH={shlex.quote(str(REPO_ROOT))}${{PYTHONPATH:+:$PYTHONPATH}}"],
    }
    if profile.gpus_per_net:
        params["gpus_per_node"] = profile.gpus_per_net
    if profile.slurm_partition:
        params["slurm_partition"] = profile.slurm_partition
    if profile.slurm_config:
        params.update(_read_config(Path(profile.slurm_config).expanduser()))
    return params


def _read_config(path: Path) -> dict[str, Any]:
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"slurm_config={str(path)!r}: no such file") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"slurm_config={str(path)!r} is not valid JSON: {err}") from None
    if not isinstance(config, dict):
        raise ValueError(f"slurm_config={str(path)!r} must hold a JSON object of submitit parameters")
    return config


def make_executor(profile: Profile, folder: Path, **extra: Any):
    """A Slurm ``submitit.AutoExecutor`` writing to ``folder``, with the profile's parameters.

    Raises ValueError when Slurm's tools are missing or submitit rejects a parameter.
    """
    import submitit

    if shutil.which("sbatch") is None or shutil.which("squeue") is None:
        raise ValueError("executor='submitit' needs Slurm, and sbatch/squeue are not on PATH (on this machine: "
                         "tests/slurm/start.sh starts a one-node cluster; or use executor=local)")
    executor = submitit.AutoExecutor(folder=folder, cluster="slurm")
    params = slurm_parameters(profile) | extra
    try:
        executor.update_parameters(**params)
    except (AssertionError, NameError, ValueError, TypeError) as err:
        source = f" (with slurm_config={profile.slurm_config!r})" if profile.slurm_config else ""
        raise ValueError(f"submitit rejects the Slurm parameters {params}{source}: {err}") from None
    return executor


def check(profile: Profile) -> None:
    """Fail now, before anything trains, when Slurm would not run a job with the profile's parameters.

    submitit checks the parameter names and types; ``sbatch --test-only`` checks the very script
    submitit would submit against the cluster (partition, GPUs, CPUs, memory, time limit).
    """
    with tempfile.TemporaryDirectory(prefix="kneelib-slurm-check-") as tmp:
        executor = make_executor(profile, Path(tmp))
        script = Path(tmp) / "check.sh"
        # submitit's own sbatch text for these parameters (the executor has no public way to show it).
        script.write_text(executor._executor._make_submission_file_text("true", "check"))
        done = subprocess.run(["sbatch", "--test-only", str(script)], capture_output=True, text=True)
    if done.returncode != 0:
        fields = {k: getattr(profile, k) for k in ("slurm_partition", "gpus_per_net", "slurm_cpus_per_net",
                                                   "slurm_mem_gb", "slurm_time_min", "slurm_config")}
        shown = ", ".join(f"{k}={v!r}" for k, v in fields.items())
        raise ValueError(f"Slurm does not accept the job of one net ({shown}): "
                         f"{(done.stderr or done.stdout).strip()}")


def queue_states(job_ids: list[str]) -> dict[str, str]:
    """``{job id: state}`` for the listed jobs that Slurm still knows (finished ones for ``MinJobAge``)."""
    if not job_ids:
        return {}
    done = subprocess.run(["squeue", "-h", "-t", "all", "-o", "%i %T", "-j", ",".join(job_ids)],
                          capture_output=True, text=True)
    if done.returncode != 0 and "Invalid job id" not in done.stderr:
        raise RuntimeError(f"squeue failed: {done.stderr.strip()}")
    states = dict(line.split(maxsplit=1) for line in done.stdout.splitlines() if line.strip())
    if done.returncode != 0 and len(job_ids) > 1:  # one unknown id fails the whole call: ask one by one
        for job_id in job_ids:
            states |= queue_states([job_id]) if job_id not in states else {}
    return states


@dataclass
class _Submission:
    job: Any                 # submitit.slurm.slurm.SlurmJob
    submitted_at: float      # time.time() at submission
    ended_at: float | None = None  # when the job was first seen out of the queue without a result


class _Resumable:
    """The job's callable: ``Checkpointable``, so submitit requeues it on a preemption signal."""

    def __init__(self, call: Callable[[], Any]) -> None:
        self.call = call

    def __call__(self) -> Any:
        return self.call()

    def checkpoint(self) -> Any:
        """Requeue the same call: it resumes from its own checkpoints."""
        import submitit

        return submitit.helpers.DelayedSubmission(self)


def run_tasks(profile: Profile, tasks: list[SlurmTask], progress: bool = True, poll_s: float = 1.0) -> list[Any]:
    """Run every task as a Slurm job, each once its ``after`` tasks are finished; return their results.

    Raises JobFailed (the others' jobs cancelled) when a job fails for a real reason or a task's
    jobs ended without a result more than ``profile.slurm_max_resubmits`` times.
    """
    check(profile)
    results: dict[int, Any] = {}
    waiting = list(range(len(tasks)))
    running: dict[int, _Submission] = {}
    resubmits = dict.fromkeys(range(len(tasks)), 0)
    try:
        while waiting or running:
            for i in [i for i in waiting if all(d in results for d in tasks[i].after)]:
                waiting.remove(i)
                running[i] = _submit(profile, tasks[i], progress)
            if waiting and not running:
                raise RuntimeError(f"tasks {[tasks[i].name for i in waiting]} wait on tasks that never run")
            states = queue_states([s.job.job_id for s in running.values()])
            for i, sub in list(running.items()):
                outcome = _outcome(tasks[i], sub, states.get(sub.job.job_id))
                if outcome is None:
                    continue
                del running[i]
                if outcome == "again":
                    resubmits[i] += 1
                    if resubmits[i] > profile.slurm_max_resubmits:
                        raise JobFailed(f"{tasks[i].name}: its Slurm jobs ended without a result "
                                        f"{resubmits[i]} times (slurm_max_resubmits={profile.slurm_max_resubmits}); "
                                        f"last job {sub.job.job_id}, log: {sub.job.paths.stderr}")
                    if progress:
                        print(f"{tasks[i].name}: Slurm job {sub.job.job_id} ended without a result "
                              f"({states.get(sub.job.job_id, 'gone')}); resubmitting, it resumes", flush=True)
                    running[i] = _submit(profile, tasks[i], progress)
                else:
                    results[i] = outcome[1]
                    if progress:
                        print(f"{tasks[i].name}: done in Slurm job {sub.job.job_id}", flush=True)
            if running:
                time.sleep(poll_s)
    except BaseException:
        for sub in running.values():
            subprocess.run(["scancel", sub.job.job_id], capture_output=True)
        raise
    return [results[i] for i in range(len(tasks))]


def _submit(profile: Profile, task: SlurmTask, progress: bool) -> _Submission:
    task.folder.mkdir(parents=True, exist_ok=True)
    executor = make_executor(profile, task.folder, name=task.job_name)
    submitted_at = time.time()
    job = executor.submit(_Resumable(task.call))
    if progress:
        print(f"{task.name}: Slurm job {job.job_id} (log: {job.paths.stderr})", flush=True)
    return _Submission(job, submitted_at)


def _outcome(task: SlurmTask, sub: _Submission, state: str | None) -> tuple[str, Any] | str | None:
    """None: still running; "again": ended without a result; ("done", value). Raises JobFailed."""
    import submitit

    result = sub.job.paths.result_pickle
    # A result file older than the submission is a stale one of an earlier cluster's job with this id.
    if result.exists() and result.stat().st_mtime >= sub.submitted_at - 1:
        kind, value = submitit.core.utils.pickle_load(result)
        if kind == "success":
            if not task.finished():
                raise JobFailed(f"{task.name}: Slurm job {sub.job.job_id} returned, but its output is not "
                                f"complete (log: {sub.job.paths.stderr})")
            return "done", value
        if "UncompletedJobError" in str(value):  # preempted and not requeued (submitit's word for it)
            return "again"
        last = str(value).strip().splitlines()[-1] if str(value).strip() else "no traceback"
        raise JobFailed(f"{task.name} failed in Slurm job {sub.job.job_id}: {last}\n"
                        f"log: {sub.job.paths.stderr}")
    if state is not None and state.split()[0] in ACTIVE_STATES:
        return None
    sub.ended_at = sub.ended_at or time.time()
    if time.time() - sub.ended_at < RESULT_GRACE_S:
        return None
    if state is not None and state.split()[0] in FAILED_STATES:
        raise JobFailed(f"{task.name}: Slurm job {sub.job.job_id} ended {state} without a result "
                        f"(log: {sub.job.paths.stderr})")
    return "again"

