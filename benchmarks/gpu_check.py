"""The suite's CUDA path, measured: one command for a lent GPU, and its tiny CPU twin (``--small``).

Run from the repository root (no installation needed; the script puts the repository on
``sys.path``)::

    python3 benchmarks/gpu_check.py --out DIR                 # on a CUDA machine: paper shape, ~5 min
    python3 benchmarks/gpu_check.py --small --out DIR         # the same code path on the CPU, tiny sizes
    python3 benchmarks/gpu_check.py --parts step --variants plain,suite --out DIR   # one part, two loops

Parts (``--parts``, default all, in this order; each runs on its own):

1. ``env``: device, driver, torch, CUDA and cuDNN versions, precision flags, and the dense matmul
   rate measured here: bf16 on CUDA (the peak every other figure is compared with), fp32 on the CPU.
2. ``step``: the paper-shape training step (depth 6, 32 filters, 384 x 384, batch 24) on inputs
   already on the device: a plain fp32 loop, each speed-up alone on top of it, and the suite's own
   step (:func:`kneelib.nets.train.train_epoch`, as ``fit`` runs it). Slices/s, FLOP/s counted with
   ``torch.utils.flop_counter`` and their fraction of the measured peak, peak device memory.
3. ``train``: a short real training of one paper-shape net on full-size phantom volumes read through
   the lazy slice cache and a DataLoader with workers and pinned memory (the suite's
   ``iterate_batches``), then the same net on preloaded tensors: the loss per epoch, and the step
   time with the loader vs on preloaded tensors.
4. ``infer``: inference slices/s at the paper shape, and the time of
   :func:`kneelib.nets.evaluate.predict_volume` on one 160-slice volume.
5. ``compile``: ``torch.compile`` of the suite's step, and CUDA graphs (``mode="reduce-overhead"``);
   last, because compiling takes the longest; skipped on the CPU unless named in ``--variants``,
   and skipped when fewer than 150 s of ``--budget-s`` (default 480) are left.

Every result is printed and written atomically, after each part, to ``--out``: ``gpu_check.json``
(all parts so far), ``<part>.json`` and ``summary.txt`` (the printed lines). Only torch, numpy,
h5py, scipy, pandas and tqdm are imported (no plotly, medpy, papermill...), so the check runs on a
machine that has PyTorch and nothing of the suite's other dependencies. The figures are explained in
``benchmarks/README.md``, section "GPU check".
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
for _folder in (REPO_ROOT, REPO_ROOT / "benchmarks"):  # kneelib and training_loops, from a plain copy of the repo
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))

import kneelib  # noqa: E402  (sets OMP_WAIT_POLICY before torch is imported)

# isort: split
import torch  # noqa: E402
from training_loops import (  # noqa: E402
    TISSUE,
    Preloaded,
    grad_scaler,
    phantom_like,
    plain_loop,
    step_config,
    step_flops,
    suite_loop,
)

from kneelib.core.atomic import write_json, write_text  # noqa: E402
from kneelib.nets import train  # noqa: E402
from kneelib.nets.train import TrainConfig  # noqa: E402
from kneelib.nets.unet import UNet2D  # noqa: E402

PARTS = ("env", "step", "train", "infer", "compile")
# Packages the suite depends on that a lent GPU machine lacks; none may be imported here.
NOT_ON_DEVICE = ("medpy", "plotly", "kaleido", "papermill", "ipywidgets", "anywidget", "ipykernel",
                 "nbconvert", "nbformat", "jupytext")

# Loops of the step and compile parts: a base and modifiers joined by '+', e.g. "plain+bf16".
MODIFIERS = {
    "no_tf32": "fp32 convolutions without TF32 (PyTorch's default lets cuDNN use TF32)",
    "bf16": "bf16 autocast",
    "channels_last": "model and inputs in channels_last",
    "fused_adam": "Adam(fused=True)",
    "benchmark": "torch.backends.cudnn.benchmark = True",
    "fp32": "the suite's step without autocast (precision fp32)",
    "compile": "torch.compile(model)",
    "cudagraphs": "torch.compile(model, mode='reduce-overhead'): CUDA graphs",
}
CUDA_ONLY = {"no_tf32", "benchmark", "cudagraphs"}
COMPILING = {"compile", "cudagraphs"}
PLAIN_ONLY = {"bf16", "channels_last", "fused_adam"}  # the suite's step has them already
SUITE_ONLY = {"fp32"}
STEP_VARIANTS = ("plain", "plain+no_tf32", "plain+bf16", "plain+channels_last", "plain+fused_adam",
                 "plain+benchmark", "suite", "suite+benchmark")
COMPILE_VARIANTS = ("suite+compile", "suite+cudagraphs")
COMPILE_RESERVE_S = 150  # a compile loop starts only with this much of --budget-s left


@dataclasses.dataclass
class Sizes:
    """Everything that differs between the paper-shape check and ``--small``."""

    depth: int
    filters: int
    size: int
    batch: int
    warmup: int          # untimed repeats of each loop before timing (step, compile, infer)
    steps: int           # optimizer steps per timed repeat
    repeats: int         # timed repeats per loop (median reported)
    train_steps: int     # training steps through the DataLoader (train part)
    preloaded_epochs: int  # then epochs on preloaded tensors
    subjects: int        # phantom training subjects (2 scans each)
    volume: tuple[int, int, int]  # phantom (H, W, D)
    workers: int         # DataLoader workers
    infer_batch: int     # predict_volume batch (the paper profile's eval_batch_size)
    matmul_n: int        # matrix size of the peak measurement


def full_sizes() -> Sizes:
    return Sizes(depth=6, filters=32, size=384, batch=24, warmup=3, steps=8, repeats=3, train_steps=300,
                 preloaded_epochs=3, subjects=2, volume=(384, 384, 160),
                 workers=max(1, min(8, (os.cpu_count() or 2) // 2)), infer_batch=32, matmul_n=8192)


def small_sizes() -> Sizes:
    return Sizes(depth=3, filters=8, size=64, batch=4, warmup=1, steps=2, repeats=2, train_steps=40,
                 preloaded_epochs=2, subjects=1, volume=(64, 64, 16), workers=2, infer_batch=8, matmul_n=512)


# ----------------------------------------------------------------------------- output


class Report:
    """Collects the results and the printed lines; writes them atomically after every part."""

    def __init__(self, out: Path, meta: dict[str, Any]) -> None:
        self.out, self.meta = out, meta
        self.parts: dict[str, Any] = {}
        self.lines: list[str] = []
        self.start = time.perf_counter()

    def log(self, line: str = "") -> None:
        print(line, flush=True)
        self.lines.append(line)

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def save(self, part: str | None = None, result: dict[str, Any] | None = None) -> None:
        """Write ``part``'s result (if given), then gpu_check.json and summary.txt as they stand."""
        if part is not None:
            self.parts[part] = result
            write_json(self.out / f"{part}.json", result)
        self.meta["elapsed_s"] = round(self.elapsed(), 1)
        self.meta["imported"] = imported_modules()
        write_json(self.out / "gpu_check.json", {"meta": self.meta, "parts": self.parts})
        write_text(self.out / "summary.txt", "\n".join(self.lines) + "\n")


def imported_modules() -> dict[str, list[str]]:
    """kneelib modules loaded so far, and any of the packages a lent GPU lacks (should be none)."""
    loaded = set(sys.modules)
    return {"kneelib": sorted(m for m in loaded if m == "kneelib" or m.startswith("kneelib.")),
            "not_on_device": sorted(m for m in NOT_ON_DEVICE if m in loaded)}


def rate(flops_per_s: float) -> str:
    return f"{flops_per_s / 1e12:.3g} TFLOP/s" if flops_per_s >= 1e12 else f"{flops_per_s / 1e9:.3g} GFLOP/s"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device) -> float:
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def reset_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mb(device: torch.device) -> float | None:
    return round(torch.cuda.max_memory_allocated(device) / 2**20, 1) if device.type == "cuda" else None


# ----------------------------------------------------------------------------- 1. env


def precision_flags() -> dict[str, Any]:
    """TF32 and cuDNN settings in force (new fp32_precision API where torch has it: reading the
    legacy ``allow_tf32`` flags after the new API was used raises)."""
    flags: dict[str, Any] = {"cudnn.benchmark": torch.backends.cudnn.benchmark,
                             "float32_matmul_precision": torch.get_float32_matmul_precision()}
    conv = getattr(torch.backends.cudnn, "conv", None)
    if conv is not None and hasattr(conv, "fp32_precision"):
        flags["cudnn.conv.fp32_precision"] = conv.fp32_precision
        flags["cuda.matmul.fp32_precision"] = torch.backends.cuda.matmul.fp32_precision
    else:
        flags["cudnn.allow_tf32"] = torch.backends.cudnn.allow_tf32
        flags["cuda.matmul.allow_tf32"] = torch.backends.cuda.matmul.allow_tf32
    return flags


def driver_version() -> str:
    try:
        run = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
        return run.stdout.strip().splitlines()[0] if run.returncode == 0 and run.stdout.strip() else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def shm_free_gb() -> float | None:
    try:
        return round(shutil.disk_usage("/dev/shm").free / 2**30, 2)
    except OSError:
        return None


def matmul_flops(device: torch.device, dtype: torch.dtype, n: int) -> float:
    """Dense n x n matmul FLOP/s (2 n^3 per product), the best of 3 timed runs."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    timed(lambda: a @ b, device)  # warm-up: library handles, clocks
    once = timed(lambda: a @ b, device)
    reps = max(1, min(500, int(0.2 / max(once, 1e-6))))

    def run() -> None:
        for _ in range(reps):
            torch.mm(a, b)

    best = min(timed(run, device) for _ in range(3))
    return 2 * n**3 * reps / best


def peak(device: torch.device, n: int) -> tuple[float, str]:
    """The reference rate: bf16 matmul on CUDA, fp32 matmul on the CPU (emulated bf16 is no peak)."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    return matmul_flops(device, dtype, n), str(dtype).removeprefix("torch.")


def part_env(args: argparse.Namespace, sizes: Sizes, device: torch.device, report: Report) -> dict[str, Any]:
    import h5py
    import numpy as np

    info: dict[str, Any] = {
        "device": str(device), "torch": torch.__version__, "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "python": platform.python_version(), "numpy": np.__version__, "h5py": h5py.__version__,
        "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "precision_flags": precision_flags(), "suite_autocast": str(train.autocast_dtype("auto", device)),
        "dev_shm_free_gb": shm_free_gb(),  # DataLoader workers hand batches over through shared memory
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info |= {"device_name": props.name, "driver": driver_version(),
                 "capability": f"{props.major}.{props.minor}", "multiprocessors": props.multi_processor_count,
                 "memory_gb": round(props.total_memory / 2**30, 1), "bf16_supported": torch.cuda.is_bf16_supported()}
    else:
        info |= {"device_name": f"CPU {info['cpu']} ({os.cpu_count()} cores)", "driver": None,
                 "native_bf16": train._cpu_has_bf16()}
    flops, dtype = peak(device, sizes.matmul_n)
    matmul = {dtype: flops / 1e12}
    if device.type == "cuda":
        matmul["float32"] = matmul_flops(device, torch.float32, sizes.matmul_n) / 1e12
    info |= {"matmul_n": sizes.matmul_n, "matmul_tflops": matmul, "peak_tflops": flops / 1e12, "peak_dtype": dtype}
    args.peak = (flops, dtype)
    report.log(f"[env] {info['device_name']}: torch {info['torch']}, CUDA {info['cuda']}, cuDNN {info['cudnn']}, "
               f"driver {info['driver']}")
    report.log(f"[env] {info['threads']} CPU threads of {info['cpu_count']}; flags {info['precision_flags']}; "
               f"suite autocast {info['suite_autocast']}; /dev/shm {info['dev_shm_free_gb']} GB free")
    report.log("[env] dense matmul " + ", ".join(f"{k} {rate(v * 1e12)}" for k, v in matmul.items())
               + f" ({sizes.matmul_n} x {sizes.matmul_n}); peak = {dtype}")
    return info


def config(sizes: Sizes, precision: str = "auto") -> TrainConfig:
    """The suite's config for the check's net, slice size and batch (training_loops.step_config)."""
    return step_config(sizes.depth, sizes.filters, sizes.size, sizes.batch, precision)


def peak_flops(args: argparse.Namespace, sizes: Sizes, device: torch.device) -> tuple[float, str]:
    if getattr(args, "peak", None) is None:  # the env part did not run in this process
        args.peak = peak(device, sizes.matmul_n)
    return args.peak


# ----------------------------------------------------------------------------- 2. the step


def parse_variant(spec: str) -> tuple[str, set[str]]:
    base, *mods = spec.strip().split("+")
    unknown = [m for m in mods if m not in MODIFIERS]
    if base not in ("plain", "suite") or unknown:
        raise ValueError(f"variant {spec!r}: base must be plain or suite, modifiers some of {sorted(MODIFIERS)}")
    wrong = set(mods) & (SUITE_ONLY if base == "plain" else PLAIN_ONLY)
    if wrong:
        raise ValueError(f"variant {spec!r}: {sorted(wrong)} does not apply to the {base} loop")
    if len(set(mods) & COMPILING) > 1:
        raise ValueError(f"variant {spec!r}: compile and cudagraphs exclude each other")
    return base, set(mods)


def describe(spec: str) -> str:
    base, mods = parse_variant(spec)
    text = ("plain fp32 loop (NCHW, Adam, zero_grad())" if base == "plain" else
            "suite step (train_epoch: channels_last, autocast 'auto', fused per-level Adam)")
    return text + "".join(f" + {MODIFIERS[m]}" for m in sorted(mods))


@contextlib.contextmanager
def backend_flags(mods: set[str]) -> Iterator[None]:
    """cudnn.benchmark and TF32 off for one loop only; restored afterwards."""
    benchmark = torch.backends.cudnn.benchmark
    conv = getattr(torch.backends.cudnn, "conv", None)
    new_api = conv is not None and hasattr(conv, "fp32_precision")
    tf32 = conv.fp32_precision if new_api else torch.backends.cudnn.allow_tf32
    try:
        if "benchmark" in mods:
            torch.backends.cudnn.benchmark = True
        if "no_tf32" in mods:
            if new_api:
                conv.fp32_precision = "ieee"
            else:
                torch.backends.cudnn.allow_tf32 = False
        yield
    finally:
        torch.backends.cudnn.benchmark = benchmark
        if new_api:
            conv.fp32_precision = tf32
        else:
            torch.backends.cudnn.allow_tf32 = tf32


def maybe_compile(model: torch.nn.Module, mods: set[str]) -> torch.nn.Module:
    if "compile" in mods:
        return torch.compile(model)
    if "cudagraphs" in mods:
        return torch.compile(model, mode="reduce-overhead")
    return model


def make_loop(spec: str, sizes: Sizes, data: Preloaded, device: torch.device) -> Callable[[], None]:
    """The loop a variant names: training_loops' plain or suite loop with its modifiers."""
    base, mods = parse_variant(spec)
    cfg = config(sizes, "fp32" if "fp32" in mods else "auto")
    wrap = lambda model: maybe_compile(model, mods)  # noqa: E731
    if base == "suite":
        return suite_loop(cfg, data, device, wrap=wrap)
    return plain_loop(cfg, data, device, channels_last="channels_last" in mods,
                      dtype=torch.bfloat16 if "bf16" in mods else None, fused="fused_adam" in mods, wrap=wrap)


def skip_reason(spec: str, device: torch.device, forced: bool) -> str | None:
    _, mods = parse_variant(spec)
    if device.type != "cuda" and mods & CUDA_ONLY:
        return f"CUDA only ({', '.join(sorted(mods & CUDA_ONLY))})"
    if device.type != "cuda" and mods & COMPILING and not forced:
        return "torch.compile on the CPU takes minutes to compile; name it in --variants to run it"
    return None


def measure_loop(spec: str, sizes: Sizes, data: Preloaded, device: torch.device,
                 per_slice_flops: float, peak: float, report: Report, tag: str) -> dict[str, Any]:
    """Warm up, then ``repeats`` timed repeats of ``steps`` optimizer steps; median slices/s."""
    _, mods = parse_variant(spec)
    result: dict[str, Any] = {"variant": spec, "what": describe(spec)}
    reset_memory(device)
    try:
        with backend_flags(mods):
            run = make_loop(spec, sizes, data, device)
            warmup_s = sum(timed(run, device) for _ in range(sizes.warmup))
            times = [timed(run, device) for _ in range(sizes.repeats)]
    except Exception as e:  # one failing loop must not cost the others' figures
        result["error"] = f"{type(e).__name__}: {e}"
        report.log(f"[{tag}] {spec:<28} FAILED {result['error'][:300]}")
        report.log("".join(traceback.format_exc().splitlines(keepends=True)[-6:]).rstrip())
        if mods & COMPILING:
            torch._dynamo.reset()
        return result
    slices = len(data)
    rates = [slices / t for t in times]
    median = statistics.median(rates)
    achieved = median * per_slice_flops
    result |= {"slices_per_s": median, "rates": rates, "step_ms": 1e3 * sizes.batch / median,
               "warmup_s": warmup_s, "tflops": achieved / 1e12, "fraction_of_peak": achieved / peak,
               "peak_memory_mb": peak_memory_mb(device)}
    memory = f", peak memory {result['peak_memory_mb']:.0f} MB" if device.type == "cuda" else ""
    report.log(f"[{tag}] {spec:<28} {median:9.1f} slices/s  {result['step_ms']:8.1f} ms/step  {rate(achieved)} "
               f"({100 * achieved / peak:.1f} % of peak){memory}; warm-up {warmup_s:.1f} s")
    if mods & COMPILING:
        torch._dynamo.reset()
    return result


def run_loops(args: argparse.Namespace, sizes: Sizes, device: torch.device, report: Report,
              variants: list[str], tag: str, budget: bool) -> dict[str, Any]:
    data = phantom_like(sizes.batch * sizes.steps, sizes.size)
    data = Preloaded(data.images.to(device), data.masks.to(device))
    forward, flops = step_flops(config(sizes), device)
    per_slice = flops / sizes.batch
    peak, peak_dtype = peak_flops(args, sizes, device)
    report.log(f"[{tag}] UNet2D(depth={sizes.depth}, base_filters={sizes.filters}), {sizes.size} x {sizes.size}, "
               f"batch {sizes.batch}, inputs on {device}; {sizes.warmup} warm-up + {sizes.repeats} timed repeats "
               f"of {sizes.steps} steps per loop")
    report.log(f"[{tag}] counted {flops / 1e9:.1f} GFLOP per step ({per_slice / 1e9:.2f} per slice, forward "
               f"{forward / 1e9:.1f}); peak {rate(peak)} ({peak_dtype} matmul)")
    result: dict[str, Any] = {
        "depth": sizes.depth, "base_filters": sizes.filters, "size": sizes.size, "batch": sizes.batch,
        "steps_per_repeat": sizes.steps, "repeats": sizes.repeats, "warmup_repeats": sizes.warmup,
        "gflop_per_step": flops / 1e9, "gflop_per_slice": per_slice / 1e9, "gflop_forward_per_step": forward / 1e9,
        "peak_tflops": peak / 1e12, "peak_dtype": peak_dtype,
        "input_mb": round((data.images.nbytes + data.masks.nbytes) / 2**20, 1), "loops": {}, "skipped": {}}
    forced = args.variants is not None
    for spec in variants:
        reason = skip_reason(spec, device, forced)
        if reason is None and budget and args.budget_s - report.elapsed() < COMPILE_RESERVE_S:
            reason = f"time budget: {report.elapsed():.0f} s of --budget-s {args.budget_s:.0f} used"
        if reason is not None:
            result["skipped"][spec] = reason
            report.log(f"[{tag}] {spec:<28} skipped: {reason}")
            continue
        result["loops"][spec] = measure_loop(spec, sizes, data, device, per_slice, peak, report, tag)
        report.save(tag, result)  # a run cut short by its time limit keeps every loop measured so far
    return result


def speedups(loops: dict[str, Any], reference: dict[str, Any] | None, name: str) -> dict[str, float]:
    if not reference or "slices_per_s" not in reference:
        return {}
    return {spec: r["slices_per_s"] / reference["slices_per_s"] for spec, r in loops.items() if "slices_per_s" in r
            and spec != name}


def part_step(args: argparse.Namespace, sizes: Sizes, device: torch.device, report: Report) -> dict[str, Any]:
    variants = [v for v in (args.variants or STEP_VARIANTS) if not parse_variant(v)[1] & COMPILING]
    result = run_loops(args, sizes, device, report, variants, "step", budget=False)
    loops = result["loops"]
    result["speedup_vs_plain"] = speedups(loops, loops.get("plain"), "plain")
    if result["speedup_vs_plain"]:
        report.log("[step] speed-up over plain: " + ", ".join(f"{k} {v:.2f}x"
                                                            for k, v in result["speedup_vs_plain"].items()))
    return result


def part_compile(args: argparse.Namespace, sizes: Sizes, device: torch.device, report: Report) -> dict[str, Any]:
    variants = [v for v in (args.variants or COMPILE_VARIANTS) if parse_variant(v)[1] & COMPILING]
    if not variants:
        report.log("[compile] no compile or cudagraphs loop among --variants")
        return {"loops": {}, "skipped": {}, "note": "no compile or cudagraphs loop among --variants"}
    step = report.parts.get("step", {}).get("loops", {})
    if "suite" not in step and variants and any(skip_reason(v, device, args.variants is not None) is None
                                                for v in variants):
        variants = ["suite", *variants]  # the reference, when the step part did not measure it here
    result = run_loops(args, sizes, device, report, variants, "compile", budget=True)
    result["speedup_vs_suite"] = speedups(result["loops"], step.get("suite") or result["loops"].get("suite"), "suite")
    if result["speedup_vs_suite"]:
        report.log("[compile] speed-up over suite: " + ", ".join(f"{k} {v:.2f}x"
                                                               for k, v in result["speedup_vs_suite"].items()))
    return result


# ----------------------------------------------------------------------------- 3. a real training


def clocked(batches, waits: list[float], steps: list[float]) -> Iterator:
    """Pass ``batches`` through, recording how long each batch took to arrive (``waits``) and the
    time from its arrival to the next request (``steps``: the training step; train_epoch reads
    ``loss.item()`` every step, so that interval ends with the device idle)."""
    it, arrived = iter(batches), None
    while True:
        asked = time.perf_counter()
        if arrived is not None:
            steps.append(asked - arrived)
        try:
            batch = next(it)
        except StopIteration:
            return
        arrived = time.perf_counter()
        waits.append(arrived - asked)
        yield batch


def train_epochs(model, opt, sched, ds, n_epochs: int, first_epoch: int, sizes: Sizes, cfg, device, dtype,
                 scaler, workers: int, label: str, report: Report) -> list[dict[str, Any]]:
    rows = []
    n = len(ds) // sizes.batch * sizes.batch  # whole batches only: every step has the same shape
    for epoch in range(first_epoch, first_epoch + n_epochs):
        order = train.epoch_order(len(ds), cfg.seed, epoch)[:n]
        waits: list[float] = []
        steps: list[float] = []
        batches = clocked(train.iterate_batches(ds, order, sizes.batch, workers), waits, steps)
        start = time.perf_counter()
        loss = train.train_epoch(model, opt, batches, device, dtype, scaler, loss_reduction=cfg.loss_reduction)
        sync(device)
        wall = time.perf_counter() - start
        sched.step()
        steady = [w + s for w, s in zip(waits[1:], steps[1:])]
        row = {"epoch": epoch + 1, "data": label, "train_loss": loss, "steps": len(steps), "wall_s": wall,
               "slices_per_s": n / wall, "first_batch_s": waits[0],
               "step_s": statistics.median(steady) if steady else steps[0],
               "loader_wait_fraction": sum(waits[1:]) / max(sum(steady), 1e-12) if steady else 0.0}
        rows.append(row)
        report.log(f"[train] epoch {epoch + 1:3d} {label:<9} loss {loss:.4f}  {row['slices_per_s']:8.1f} slices/s  "
                   f"step {1e3 * row['step_s']:7.1f} ms  first batch {1e3 * row['first_batch_s']:7.1f} ms  "
                   f"waiting {100 * row['loader_wait_fraction']:4.1f} %")
    return rows


def loader_alone(ds, sizes: Sizes, workers: int, epoch: int) -> float:
    """Slices/s of the data path alone: one epoch through iterate_batches, nothing trained."""
    order = train.epoch_order(len(ds), 0, epoch)
    start, count = time.perf_counter(), 0
    for x, _ in train.iterate_batches(ds, order, sizes.batch, workers):
        count += len(x)
    return count / (time.perf_counter() - start)


def part_train(args: argparse.Namespace, sizes: Sizes, device: torch.device, report: Report) -> dict[str, Any]:
    from kneelib.data.manifest import read_manifest
    from kneelib.data.phantoms import make_dataset
    from kneelib.data.slices import SliceDataset

    work = args.work_dir / "train"
    start = time.perf_counter()
    manifest = make_dataset(work / "data", {"train": sizes.subjects}, shape=sizes.volume, seed=2020,
                            workers=max(1, min(8, os.cpu_count() or 1)))
    records = read_manifest(manifest)
    phantoms_s = time.perf_counter() - start
    start = time.perf_counter()
    lazy = SliceDataset(records, work / "data", TISSUE, sizes.size, work / "cache")
    cache_s = time.perf_counter() - start
    report.log(f"[train] {len(records)} phantom scans of {' x '.join(map(str, sizes.volume))} in {phantoms_s:.1f} s, "
               f"slice caches in {cache_s:.1f} s: {len(lazy)} slices of {sizes.size} x {sizes.size}")

    cfg = config(sizes)  # the paper recipe at the check's sizes
    model = train.build_model(cfg, None).to(device).to(memory_format=torch.channels_last)
    opt, dtype = train.make_optimizer(model, cfg), train.autocast_dtype(cfg.precision, device)
    sched = train.make_scheduler(opt, cfg)
    scaler = grad_scaler(dtype, device)
    steps_per_epoch = len(lazy) // sizes.batch
    if steps_per_epoch < 1:
        raise ValueError(f"{len(lazy)} slices make no batch of {sizes.batch}")
    loader_epochs = max(2, math.ceil(sizes.train_steps / steps_per_epoch))
    report.log(f"[train] UNet2D(depth={sizes.depth}, base_filters={sizes.filters}), {dtype or 'fp32'}, batch "
               f"{sizes.batch}: {loader_epochs} epochs x {steps_per_epoch} steps through a DataLoader with "
               f"{sizes.workers} workers (pin_memory={torch.cuda.is_available()}), then {sizes.preloaded_epochs} "
               f"epochs on preloaded tensors")
    reset_memory(device)
    rows = train_epochs(model, opt, sched, lazy, loader_epochs, 0, sizes, cfg, device, dtype, scaler,
                        sizes.workers, "loader", report)
    pre = SliceDataset(records, work / "data", TISSUE, sizes.size, work / "cache", preload=True)
    rows += train_epochs(model, opt, sched, pre, sizes.preloaded_epochs, loader_epochs, sizes, cfg, device, dtype,
                         scaler, 0, "preloaded", report)
    alone = {f"{w}_workers": loader_alone(lazy, sizes, w, 1000 + w) for w in sorted({0, sizes.workers})}
    alone["preloaded"] = loader_alone(pre, sizes, 0, 999)
    lazy.close()

    loader_rows = [r for r in rows if r["data"] == "loader"][1:]  # the first epoch warms up
    pre_rows = [r for r in rows if r["data"] == "preloaded"]
    loader_step = statistics.median(r["step_s"] for r in loader_rows)
    pre_step = statistics.median(r["step_s"] for r in pre_rows)
    losses = [r["train_loss"] for r in rows]
    result = {
        "scans": len(records), "volume": list(sizes.volume), "slices": len(lazy), "phantoms_s": phantoms_s,
        "cache_s": cache_s, "depth": sizes.depth, "base_filters": sizes.filters, "size": sizes.size,
        "batch": sizes.batch, "autocast": str(dtype), "workers": sizes.workers, "pin_memory": torch.cuda.is_available(),
        "steps": sum(r["steps"] for r in rows), "epochs": rows,
        "loss_first_epoch": losses[0], "loss_last_epoch": losses[-1], "loss_fell": losses[-1] < losses[0],
        "loader_step_s": loader_step, "preloaded_step_s": pre_step, "loader_over_preloaded": loader_step / pre_step,
        "loader_steady_slices_per_s": sizes.batch / loader_step,
        "preloaded_steady_slices_per_s": sizes.batch / pre_step,
        "loader_slices_per_s": statistics.median(r["slices_per_s"] for r in loader_rows),
        "preloaded_slices_per_s": statistics.median(r["slices_per_s"] for r in pre_rows),
        "loader_first_batch_s": statistics.median(r["first_batch_s"] for r in loader_rows),
        "data_path_alone_slices_per_s": alone, "peak_memory_mb": peak_memory_mb(device),
    }
    report.log(f"[train] loss {losses[0]:.4f} (epoch 1) -> {losses[-1]:.4f} (epoch {len(rows)}): "
               f"{'falls' if result['loss_fell'] else 'DOES NOT FALL'}")
    report.log(f"[train] steady step with the loader {1e3 * loader_step:.1f} ms, on preloaded tensors "
               f"{1e3 * pre_step:.1f} ms (ratio {loader_step / pre_step:.2f}); epoch throughput "
               f"{result['loader_slices_per_s']:.1f} vs {result['preloaded_slices_per_s']:.1f} slices/s; "
               f"a loader epoch's first batch {1e3 * result['loader_first_batch_s']:.0f} ms")
    report.log("[train] data path alone: " + ", ".join(f"{k} {v:.0f} slices/s" for k, v in alone.items()))
    return result


# ----------------------------------------------------------------------------- 4. inference


def part_infer(args: argparse.Namespace, sizes: Sizes, device: torch.device, report: Report) -> dict[str, Any]:
    from kneelib.nets.evaluate import predict_volume

    depth_slices = sizes.volume[2]
    model = UNet2D(sizes.depth, sizes.filters, seed=0).to(device).to(memory_format=torch.channels_last).eval()
    dtype = train.autocast_dtype("auto", device)
    batch = phantom_like(sizes.infer_batch, sizes.size, seed=1).images.to(device)
    batch = batch.contiguous(memory_format=torch.channels_last)

    @torch.no_grad()
    def forward() -> None:
        for _ in range(sizes.steps):
            with train.autocast(device, dtype):
                model(batch)

    reset_memory(device)
    for _ in range(sizes.warmup):
        timed(forward, device)
    times = [timed(forward, device) for _ in range(sizes.repeats)]
    forward_rate = statistics.median(sizes.infer_batch * sizes.steps / t for t in times)

    volume = phantom_like(depth_slices, sizes.size, seed=2).images  # (D, 1, S, S) on the CPU, as evaluate_nets
    shape = (sizes.volume[0], sizes.volume[1])
    predict = lambda: predict_volume(model, volume, shape, sizes.infer_batch, "auto")  # noqa: E731
    predict()
    volume_times = [timed(predict, device) for _ in range(max(2, sizes.repeats))]
    pred = predict()
    result = {"depth": sizes.depth, "base_filters": sizes.filters, "size": sizes.size, "batch": sizes.infer_batch,
              "autocast": str(dtype), "slices_per_s": forward_rate, "volume_slices": depth_slices,
              "volume_shape": list(pred.shape), "volume_s": statistics.median(volume_times),
              "volume_slices_per_s": depth_slices / statistics.median(volume_times),
              "peak_memory_mb": peak_memory_mb(device)}
    report.log(f"[infer] forward, batch {sizes.infer_batch} on {device}, autocast {dtype}: {forward_rate:.1f} slices/s")
    report.log(f"[infer] predict_volume, {depth_slices} slices from the CPU to a bool {tuple(pred.shape)} volume: "
               f"{result['volume_s']:.2f} s ({result['volume_slices_per_s']:.1f} slices/s)")
    return result


# ----------------------------------------------------------------------------- main


def goals(parts: dict[str, Any]) -> dict[str, Any]:
    """The targets this check tests, set for one H100: the suite's step >= 1,000 slices/s and >= 2x the plain fp32
    loop; the loader never the bottleneck (steady step with it within 5 % of the step on preloaded tensors)."""
    loops = {**parts.get("step", {}).get("loops", {}), **parts.get("compile", {}).get("loops", {})}
    rates = {k: v["slices_per_s"] for k, v in loops.items() if "slices_per_s" in v}
    out: dict[str, Any] = {}
    suites = {k: v for k, v in rates.items() if k.startswith("suite")}
    if "suite" in rates:
        out["suite_slices_per_s"] = rates["suite"]
        out["suite_at_least_1000_slices_per_s"] = rates["suite"] >= 1000
    if suites:
        best = max(suites, key=suites.get)
        out |= {"best_suite_variant": best, "best_suite_slices_per_s": suites[best]}
    if "plain" in rates and "suite" in rates:
        out["suite_over_plain"] = rates["suite"] / rates["plain"]
        out["suite_at_least_2x_plain"] = out["suite_over_plain"] >= 2
        if suites:
            out["best_suite_over_plain"] = suites[best] / rates["plain"]
    train_part = parts.get("train", {})
    if "loader_over_preloaded" in train_part:
        out["loader_over_preloaded"] = train_part["loader_over_preloaded"]
        out["loader_keeps_up"] = train_part["loader_over_preloaded"] <= 1.05
        out["loss_fell"] = train_part["loss_fell"]
    return out


def final_table(report: Report) -> None:
    """A short table last: the tool that runs this on a lent GPU returns the end of the output."""
    parts, log = report.parts, report.log
    log("")
    log("=" * 30 + " summary " + "=" * 30)
    env = parts.get("env", {})
    if "device_name" in env:
        log(f"{env['device_name']}, driver {env['driver']}, torch {env['torch']}, CUDA {env['cuda']}, "
            f"cuDNN {env['cudnn']}; peak {rate(env['peak_tflops'] * 1e12)} ({env['peak_dtype']} matmul)")
    for name in ("step", "compile"):
        for spec, r in parts.get(name, {}).get("loops", {}).items():
            if "slices_per_s" in r:
                memory = f"{r['peak_memory_mb']:8.0f} MB" if r.get("peak_memory_mb") is not None else ""
                log(f"{spec:<28} {r['slices_per_s']:9.1f} slices/s {r['step_ms']:8.1f} ms/step "
                    f"{rate(r['tflops'] * 1e12):>16} {100 * r['fraction_of_peak']:5.1f} % of peak {memory}")
            else:
                log(f"{spec:<28} {r.get('error', '')[:80]}")
    t = parts.get("train", {})
    if "loss_first_epoch" in t:
        log(f"train: loss {t['loss_first_epoch']:.4f} -> {t['loss_last_epoch']:.4f} in {t['steps']} steps; step "
            f"{1e3 * t['loader_step_s']:.1f} ms with the loader, {1e3 * t['preloaded_step_s']:.1f} ms preloaded "
            f"(x{t['loader_over_preloaded']:.2f}); data path alone "
            + ", ".join(f"{k} {v:.0f}" for k, v in t["data_path_alone_slices_per_s"].items()) + " slices/s")
    i = parts.get("infer", {})
    if "slices_per_s" in i:
        log(f"infer: {i['slices_per_s']:.1f} slices/s; predict_volume of {i['volume_slices']} slices "
            f"{i['volume_s']:.2f} s")
    for k, v in report.meta.get("goals", {}).items():
        log(f"goal {k}: {v:.3g}" if isinstance(v, float) else f"goal {k}: {v}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="folder for gpu_check.json, <part>.json, summary.txt")
    p.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, some of {','.join(PARTS)}")
    p.add_argument("--small", action="store_true", help="tiny sizes on the CPU: the same code path in seconds")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available; cpu with --small)")
    p.add_argument("--variants", default=None,
                   help="comma-separated loops of the step and compile parts, e.g. plain,plain+bf16,suite+compile "
                        f"(modifiers: {', '.join(MODIFIERS)}); default: {','.join(STEP_VARIANTS + COMPILE_VARIANTS)}")
    for name in ("depth", "filters", "size", "batch", "warmup", "steps", "repeats", "train-steps", "subjects",
                 "workers"):
        p.add_argument(f"--{name}", type=int, default=None, help="override the size (see Sizes)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    p.add_argument("--budget-s", type=float, default=480.0,
                   help=f"compile loops start only with {COMPILE_RESERVE_S} s of this budget left (default 480)")
    p.add_argument("--work", type=Path, default=None, help="scratch folder for phantoms (default: a temp dir, removed)")
    args = p.parse_args(argv)
    args.parts = [s.strip() for s in args.parts.split(",") if s.strip()]
    unknown = [s for s in args.parts if s not in PARTS]
    if unknown:
        p.error(f"unknown part(s) {unknown}; choose from {','.join(PARTS)}")
    if args.variants is not None:
        args.variants = [s.strip() for s in args.variants.split(",") if s.strip()]
        try:
            for spec in args.variants:
                parse_variant(spec)
        except ValueError as e:
            p.error(str(e))
    return args


def make_sizes(args: argparse.Namespace) -> Sizes:
    sizes = small_sizes() if args.small else full_sizes()
    for field in ("depth", "filters", "size", "batch", "warmup", "steps", "repeats", "train_steps", "subjects",
                  "workers"):
        if getattr(args, field) is not None:
            setattr(sizes, field, getattr(args, field))
    if sizes.size % 2 ** (sizes.depth - 1):
        raise SystemExit(f"--size {sizes.size} must be divisible by 2**(depth-1) = {2 ** (sizes.depth - 1)}")
    if sizes.size != sizes.volume[0]:
        sizes.volume = (sizes.size, sizes.size, sizes.volume[2])  # phantoms at the nets' input size
    return sizes


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device or ("cpu" if args.small else train.default_device().type))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda, but torch sees no CUDA device")
    sizes = make_sizes(args)
    args.peak = None
    torch.manual_seed(0)
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {"command": " ".join([Path(sys.argv[0]).name, *(sys.argv[1:] if argv is None else argv)]),
            "device": str(device), "small": args.small, "sizes": dataclasses.asdict(sizes),
            "parts_requested": args.parts,
            "torch": torch.__version__, "kneelib": str(Path(kneelib.__file__).parent),
            "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    if device.type == "cuda":
        meta["device_name"] = torch.cuda.get_device_name(device)
    report = Report(args.out, meta)
    report.log(f"gpu_check on {device}{' (' + meta['device_name'] + ')' if 'device_name' in meta else ''}, "
               f"torch {torch.__version__}, parts {','.join(args.parts)}{', --small' if args.small else ''}")
    scratch = args.work is None
    args.work_dir = Path(tempfile.mkdtemp(prefix="gpu_check_")) if scratch else args.work
    failed = []
    runners = {"env": part_env, "step": part_step, "train": part_train, "infer": part_infer, "compile": part_compile}
    try:
        for part in [p for p in PARTS if p in args.parts]:
            start = time.perf_counter()
            try:
                result = runners[part](args, sizes, device, report)
            except Exception as e:  # record it, go on with the next part
                failed.append(part)
                result = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}
                report.log(f"[{part}] FAILED: {result['error']}")
                report.log(traceback.format_exc().rstrip())
            result["part_s"] = time.perf_counter() - start
            report.log(f"[{part}] done in {result['part_s']:.1f} s ({report.elapsed():.0f} s in all)")
            report.save(part, result)
    finally:
        if scratch:
            shutil.rmtree(args.work_dir, ignore_errors=True)
    report.meta["failed_parts"] = failed
    if device.type == "cuda":  # the goals are set for one H100; on the CPU they mean nothing
        report.meta["goals"] = goals(report.parts)
    final_table(report)
    report.log(f"gpu_check: {len(args.parts) - len(failed)} of {len(args.parts)} parts passed in "
               f"{report.elapsed():.0f} s; results in {args.out}")
    report.save()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
