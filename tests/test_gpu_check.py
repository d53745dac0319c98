"""benchmarks/gpu_check.py: the GPU check's code path, run on the CPU at tiny size, so it cannot rot.

The ``--small`` run happens once (module fixture) in a subprocess started outside the repository
(the script must find kneelib by itself, as it does from a plain copy of the repository on a lent GPU)
and with every package a lent GPU machine lacks made unimportable: a folder first on PYTHONPATH
holds ``medpy``, ``plotly``, ``papermill``... packages whose ``__init__`` raises ImportError. The
tests then check the JSON it wrote: every part present, the device recorded, the loss falling, the
rates positive. No timing is asserted.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_check.py"
PARTS = ("env", "step", "train", "infer", "compile")
# What a lent GPU machine lacks of the suite's dependencies (it has torch, numpy, h5py, scipy, pandas, tqdm).
MISSING_ON_DEVICE = ("medpy", "plotly", "kaleido", "papermill", "ipywidgets", "anywidget", "ipykernel",
                     "nbconvert", "nbformat", "jupytext")


@functools.cache
def gpu_check_module():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def blocking_env(root: Path) -> dict[str, str]:
    """An environment in which importing any of MISSING_ON_DEVICE raises ImportError."""
    blocked = root / "blocked"
    for name in MISSING_ON_DEVICE:
        (blocked / name).mkdir(parents=True)
        (blocked / name / "__init__.py").write_text(
            f"raise ImportError('{name} is blocked: the lent GPU machine has no {name} (tests/test_gpu_check.py)')\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(blocked), *filter(None, [env.get("PYTHONPATH")])])
    return env


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("gpu_check")
    env, out, cwd = blocking_env(root), root / "out", root / "elsewhere"
    cwd.mkdir()
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, str(SCRIPT), "--small", "--out", str(out)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - start
    results = json.loads((out / "gpu_check.json").read_text()) if (out / "gpu_check.json").exists() else None
    return {"proc": proc, "out": out, "env": env, "results": results, "seconds": seconds}


def _ok(run) -> dict:
    proc = run["proc"]
    assert proc.returncode == 0, f"gpu_check --small failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return run["results"]


# ------------------------------------------------------------------ fast, in-process


def test_variant_specs_are_checked():
    gc = gpu_check_module()
    assert gc.parse_variant("plain+bf16+channels_last") == ("plain", {"bf16", "channels_last"})
    assert gc.parse_variant("suite+benchmark+compile") == ("suite", {"benchmark", "compile"})
    for bad in ("fancy", "plain+turbo", "suite+bf16", "plain+fp32", "suite+compile+cudagraphs"):
        with pytest.raises(ValueError):
            gc.parse_variant(bad)
    with pytest.raises(SystemExit):
        gc.parse_args(["--out", "x", "--parts", "env,warp"])
    with pytest.raises(SystemExit):
        gc.parse_args(["--out", "x", "--variants", "plain+turbo"])


def test_cuda_only_loops_are_skipped_on_the_cpu():
    import torch

    gc = gpu_check_module()
    cpu = torch.device("cpu")
    assert gc.skip_reason("plain", cpu, forced=False) is None
    assert "CUDA only" in gc.skip_reason("plain+benchmark", cpu, forced=False)
    assert "CUDA only" in gc.skip_reason("suite+cudagraphs", cpu, forced=True)
    assert "minutes" in gc.skip_reason("suite+compile", cpu, forced=False)
    assert gc.skip_reason("suite+compile", cpu, forced=True) is None


def test_clocked_times_every_batch_and_step():
    gc = gpu_check_module()
    waits, steps = [], []
    seen = [b for b in gc.clocked(iter([1, 2, 3]), waits, steps)]
    assert seen == [1, 2, 3] and len(waits) == 3 and len(steps) == 3
    assert all(t >= 0 for t in waits + steps)


# ------------------------------------------------------------------ the --small run


def test_blocked_packages_really_fail_to_import(tmp_path):
    code = ("import importlib\n"
            f"for name in {MISSING_ON_DEVICE!r}:\n"
            "    try:\n        importlib.import_module(name)\n    except ImportError:\n        continue\n"
            "    raise SystemExit(name + ' imported')\n")
    proc = subprocess.run([sys.executable, "-c", code], env=blocking_env(tmp_path), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.slow
def test_small_runs_without_the_packages_a_gpu_machine_lacks(small_run):
    results = _ok(small_run)
    meta = results["meta"]
    assert meta["imported"]["not_on_device"] == []
    assert "kneelib.nets.evaluate" in meta["imported"]["kneelib"]  # predict_volume came from the suite
    assert "kneelib.nets.metrics" in meta["imported"]["kneelib"]  # ... and evaluate's medpy import is lazy
    assert Path(meta["kneelib"]) == REPO / "kneelib"  # found from outside the repository, no installation


@pytest.mark.slow
def test_small_writes_every_part(small_run):
    results = _ok(small_run)
    out = small_run["out"]
    assert results["meta"]["device"] == "cpu" and results["meta"]["small"] is True
    assert results["meta"]["failed_parts"] == []
    assert set(results["parts"]) == set(PARTS)
    for part in PARTS:
        assert "error" not in results["parts"][part], results["parts"][part]
        assert json.loads((out / f"{part}.json").read_text()) == results["parts"][part]
    summary = (out / "summary.txt").read_text()
    assert "summary" in summary and "5 of 5 parts passed" in summary


@pytest.mark.slow
def test_small_env_records_the_device_and_its_peak(small_run):
    env = _ok(small_run)["parts"]["env"]
    assert env["device"] == "cpu" and env["device_name"].startswith("CPU")
    assert env["torch"] and env["peak_dtype"] == "float32" and env["peak_tflops"] > 0
    assert env["matmul_tflops"]["float32"] > 0


@pytest.mark.slow
def test_small_step_measures_each_loop(small_run):
    step = _ok(small_run)["parts"]["step"]
    assert (step["depth"], step["base_filters"], step["size"], step["batch"]) == (3, 8, 64, 4)
    assert step["gflop_per_step"] > step["gflop_forward_per_step"] > 0
    measured = {"plain", "plain+bf16", "plain+channels_last", "plain+fused_adam", "suite"}
    assert set(step["loops"]) == measured
    for loop in step["loops"].values():
        assert loop["slices_per_s"] > 0 and loop["fraction_of_peak"] > 0 and len(loop["rates"]) == 2
        assert loop["peak_memory_mb"] is None  # device memory only on CUDA
    assert set(step["skipped"]) == {"plain+no_tf32", "plain+benchmark", "suite+benchmark"}
    assert all("CUDA only" in why for why in step["skipped"].values())
    assert set(step["speedup_vs_plain"]) == measured - {"plain"}


@pytest.mark.slow
def test_small_training_lowers_the_loss_through_the_loader(small_run):
    t = _ok(small_run)["parts"]["train"]
    assert t["scans"] == 2 and t["slices"] == 32 and t["workers"] == 2
    assert t["loss_last_epoch"] < t["loss_first_epoch"] and t["loss_fell"]
    assert t["steps"] >= 40
    assert {row["data"] for row in t["epochs"]} == {"loader", "preloaded"}
    assert t["loader_step_s"] > 0 and t["preloaded_step_s"] > 0
    assert set(t["data_path_alone_slices_per_s"]) == {"0_workers", "2_workers", "preloaded"}
    assert all(v > 0 for v in t["data_path_alone_slices_per_s"].values())


@pytest.mark.slow
def test_small_inference(small_run):
    i = _ok(small_run)["parts"]["infer"]
    assert i["slices_per_s"] > 0 and i["volume_s"] > 0
    assert i["volume_slices"] == 16 and i["volume_shape"] == [64, 64, 16]


@pytest.mark.slow
def test_small_compile_part_is_skipped_with_a_note(small_run):
    c = _ok(small_run)["parts"]["compile"]
    assert c["loops"] == {}
    assert set(c["skipped"]) == {"suite+compile", "suite+cudagraphs"}
