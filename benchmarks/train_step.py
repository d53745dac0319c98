"""Training-step throughput: a plain PyTorch loop vs the suite's own loop, plus the data path.

Run from the repository root::

    .venv/bin/python benchmarks/train_step.py                 # depth 6, 16 filters, 128 x 128, batch 16
    .venv/bin/python benchmarks/train_step.py --variants      # also channels_last alone, fused Adam, ...
    .venv/bin/python benchmarks/train_step.py --bf16          # also bf16 autocast (slow without native bf16)
    .venv/bin/python benchmarks/train_step.py --parallel 2    # also 2 nets side by side in 2 processes

Everything runs in one process on the same inputs (phantom-like disks on noise). Each loop is
warmed up, then timed over ``--repeats`` repeats of ``--steps`` optimizer steps; the repeats of the
different loops are interleaved so that load from other jobs on a shared machine hits all of
them alike. The figures printed are medians over the repeats.

What is compared:

1. plain: what a user would write: default (NCHW) memory format, fp32, ``opt.zero_grad()``,
   ``torch.optim.Adam``, :func:`kneelib.nets.losses.soft_dice_loss`, batches sliced from tensors.
2. suite: :func:`kneelib.nets.train.train_epoch` with the model in channels_last, the precision of
   ``autocast_dtype("auto")`` (bf16 only where the CPU has native bf16, else fp32), the
   per-level Adam of :func:`kneelib.nets.train.make_optimizer`, batches from
   :func:`kneelib.nets.train.iterate_batches` over preloaded tensors.
3. their ratio, and the achieved GFLOP/s (FLOPs of one forward + backward counted with
   ``torch.utils.flop_counter.FlopCounterMode``, times steps per second; optimizer FLOPs not counted).
4. the data path alone: a lazy :class:`kneelib.data.slices.SliceDataset` (slice cache of a small
   phantom or h5py-written IWOAI-format scan) through a DataLoader, and the preloaded one
   through ``iterate_batches``, in slices/s, to show the loader is never the bottleneck.

Both loops, their config and the FLOP count come from ``training_loops.py``, which ``gpu_check.py`` uses too: the
``paper`` profile's recipe (learning rate, Adam constants, loss reduction) at the net and slice size given here,
built by :func:`kneelib.nets.run.train_config` as the suite builds it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from training_loops import (
    RECIPE_PROFILE,
    TISSUE,
    Preloaded,
    phantom_like,
    plain_loop,
    step_config,
    step_flops,
    suite_loop,
)

from kneelib.nets import train
from kneelib.nets.train import TrainConfig

CPU = torch.device("cpu")


# ------------------------------------------------------------------ timing


class Loop:
    """One way of training: ``run()`` does ``steps`` optimizer steps over ``data`` (one 'epoch')."""

    def __init__(self, name: str, run: Callable[[], None], slices: int) -> None:
        self.name, self.run, self.slices = name, run, slices
        self.rates: list[float] = []

    def time_once(self) -> None:
        start = time.perf_counter()
        self.run()
        self.rates.append(self.slices / (time.perf_counter() - start))
        print(f"  {self.name}: {self.rates[-1]:.2f} slices/s", flush=True)

    @property
    def median(self) -> float:
        return statistics.median(self.rates)


def config(args: argparse.Namespace) -> TrainConfig:
    """The suite's config for the net, slice size and batch of the command line."""
    return step_config(args.depth, args.filters, args.size, args.batch)


def with_threads(run: Callable[[], None], threads: int) -> Callable[[], None]:
    def wrapped() -> None:
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            run()
        finally:
            torch.set_num_threads(before)

    return wrapped


def measure(loops: list[Loop], warmup: int, repeats: int) -> None:
    for loop in loops:
        for _ in range(warmup):
            loop.run()
    print(f"timing {len(loops)} loops x {repeats} repeats, interleaved:", flush=True)
    for _ in range(repeats):
        for loop in loops:  # interleaved: background load hits every loop alike
            loop.time_once()


# ------------------------------------------------------------------ nets side by side (kneelib.nets.workers)


def _parallel_worker(args: argparse.Namespace, threads: int, seed: int, barrier, results) -> None:
    torch.set_num_threads(threads)
    data = phantom_like(args.batch * args.steps, args.size, seed=seed)
    run = suite_loop(config(args), data, CPU)
    for _ in range(args.warmup):
        run()
    barrier.wait()  # every worker starts timing together
    start = time.perf_counter()
    for _ in range(args.repeats):
        run()
    results.put((len(data) * args.repeats, time.perf_counter() - start))


def side_by_side_rate(args: argparse.Namespace, workers: int) -> float:
    """Slices/s of ``workers`` processes, each training its own net with cores // workers threads
    (what ``Profile.parallel_nets`` does): all slices over the slowest worker's wall time."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(workers), context.Queue()
    threads = max(1, torch.get_num_threads() // workers)
    procs = [context.Process(target=_parallel_worker, args=(args, threads, seed, barrier, results))
             for seed in range(workers)]
    for proc in procs:
        proc.start()
    done = [results.get() for _ in procs]
    for proc in procs:
        proc.join()
    return sum(n for n, _ in done) / max(t for _, t in done)


def parallel_comparison(args: argparse.Namespace) -> None:
    workers = args.parallel
    print(f"\nnets side by side: 1 process x {torch.get_num_threads()} threads vs {workers} processes x "
          f"{max(1, torch.get_num_threads() // workers)} thread(s), suite loop, {args.rounds} rounds:", flush=True)
    one, many = [], []
    for _ in range(args.rounds):  # alternated, so background load hits both alike
        one.append(side_by_side_rate(args, 1))
        many.append(side_by_side_rate(args, workers))
        print(f"  1 process {one[-1]:.1f} slices/s, {workers} processes {many[-1]:.1f} slices/s", flush=True)
    print(f"median: 1 process {statistics.median(one):.1f}, {workers} processes {statistics.median(many):.1f} "
          f"slices/s; speed-up {statistics.median(many) / statistics.median(one):.2f}x")


# ------------------------------------------------------------------ the data path


def _write_iwoai_scan(root: Path, size: int, depth: int) -> list:
    """Fallback when kneelib.data.phantoms is absent: one IWOAI-format scan (.im/.seg HDF5 'data')."""
    import h5py
    import numpy as np

    from kneelib.data.manifest import scan_record

    record = scan_record("train", 1, "V00")
    rng = np.random.default_rng(0)
    ii, jj, kk = np.meshgrid(*(np.linspace(-1, 1, n) for n in (size, size, depth)), indexing="ij")
    dist = np.sqrt(ii**2 + jj**2 + 0.3 * kk**2)
    seg = np.zeros((size, size, depth, 6), np.uint8)
    seg[..., 0] = np.abs(dist - 0.5) < 0.04
    image = (1000 + 400 * seg[..., 0] + 60 * rng.standard_normal((size, size, depth))).astype(np.float32)
    for path, array in ((root / record.image, image), (root / record.seg, seg)):
        path.parent.mkdir(parents=True, exist_ok=True)
        with h5py.File(path, "w") as f:
            f.create_dataset("data", data=array)
    return [record]


def scan_records(root: Path, size: int, depth: int) -> tuple[list, str]:
    try:
        from kneelib.data.manifest import read_manifest
        from kneelib.data.phantoms import make_dataset
    except ImportError:
        return _write_iwoai_scan(root, size, depth), "h5py-written IWOAI-format scan"
    manifest = make_dataset(root, {"train": 1}, shape=(size, size, depth))
    return read_manifest(manifest), "kneelib.data.phantoms scans (1 subject x 2 timepoints)"


def _drain(batches: Iterator) -> int:
    n = 0
    for x, _ in batches:
        n += len(x)
    return n


def loader_rates(args: argparse.Namespace) -> None:
    from kneelib.data.slices import SliceDataset

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        records, source = scan_records(root / "data", args.size, args.loader_depth)
        lazy = SliceDataset(records, root / "data", TISSUE, args.size, root / "cache")
        pre = SliceDataset(records, root / "data", TISSUE, args.size, root / "cache", preload=True)
        n = len(lazy)
        print(f"\ndata path ({source}: {n} slices of {args.size}x{args.size}, batch {args.batch}), "
              f"median of {args.repeats}:")

        def lazy_run(workers: int) -> Callable[[], int]:
            def run() -> int:
                order = train.epoch_order(n, 0, 0).tolist()
                return _drain(DataLoader(lazy, batch_size=args.batch, sampler=order, num_workers=workers))
            return run

        def pre_run() -> int:
            return _drain(train.iterate_batches(pre, train.epoch_order(n, 0, 0), args.batch))

        cases = [("lazy SliceDataset + DataLoader, 0 workers", lazy_run(0)),
                 ("lazy SliceDataset + DataLoader, 2 workers", lazy_run(2)),
                 ("preloaded SliceDataset + iterate_batches", pre_run)]
        for name, run in cases:
            run()
            rates = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                count = run()
                rates.append(count / (time.perf_counter() - start))
            print(f"  {name:<44} {statistics.median(rates):>10.0f} slices/s")
        lazy.close()


# ------------------------------------------------------------------ main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--depth", type=int, default=6, help="U-Net levels (default 6)")
    p.add_argument("--filters", type=int, default=16, help="base filters (default 16)")
    p.add_argument("--size", type=int, default=128, help="slice size S (default 128)")
    p.add_argument("--batch", type=int, default=16, help="batch size (default 16)")
    p.add_argument("--steps", type=int, default=2, help="optimizer steps per timed repeat (default 2)")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats per loop (default 5)")
    p.add_argument("--warmup", type=int, default=1, help="untimed repeats per loop first (default 1)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--variants", action="store_true",
                   help="also time one technique at a time (channels_last, set_to_none, fused Adam, 1 thread)")
    p.add_argument("--bf16", action="store_true", help="also time channels_last + bf16 autocast")
    p.add_argument("--loader-depth", type=int, default=160, help="slices per scan of the loader test (default 160)")
    p.add_argument("--parallel", type=int, default=0, metavar="N",
                   help="also time N nets trained side by side in N processes (Profile.parallel_nets)")
    p.add_argument("--rounds", type=int, default=3, help="alternated rounds of the --parallel timing (default 3)")
    p.add_argument("--no-loader", action="store_true", help="skip the data-path measurement")
    p.add_argument("--loader-only", action="store_true", help="only the data-path measurement")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.size % 2 ** (args.depth - 1):
        raise SystemExit(f"--size must be divisible by 2**(depth-1) = {2 ** (args.depth - 1)}")
    cfg = config(args)
    auto = train.autocast_dtype(cfg.precision, CPU)
    native_bf16 = train._cpu_has_bf16()
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"CPU capability {torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads, "
          f"native bf16: {native_bf16}")
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    wait_policy = os.environ.get("OMP_WAIT_POLICY", "(unset)")
    print(f"load average {load} on {os.cpu_count()} CPUs; OMP_WAIT_POLICY={wait_policy}")
    print(f"UNet2D(depth={args.depth}, base_filters={args.filters}), {args.size}x{args.size}, batch {args.batch}, "
          f"{args.steps} steps x {args.repeats} repeats (+{args.warmup} warm-up), medians")
    print(f"recipe of profile {RECIPE_PROFILE!r} via train_config: lr {cfg.lr}, soft Dice reduction "
          f"{cfg.loss_reduction!r}; suite precision: autocast_dtype({cfg.precision!r}) = {auto}")

    if args.loader_only:
        loader_rates(args)
        return
    data = phantom_like(args.batch * args.steps, args.size)
    slices = len(data)
    loops = [Loop("plain fp32 loop (NCHW, zero_grad(), Adam)", plain_loop(cfg, data, CPU), slices),
             Loop(f"suite loop (train_epoch, channels_last, {auto or 'fp32'})", suite_loop(cfg, data, CPU), slices)]
    if args.variants:
        loops += [
            Loop("plain + channels_last", plain_loop(cfg, data, CPU, channels_last=True), slices),
            Loop("plain + zero_grad(set_to_none=True)", plain_loop(cfg, data, CPU, set_to_none=True), slices),
            Loop("plain + fused Adam", plain_loop(cfg, data, CPU, fused=True), slices),
            Loop("plain + channels_last + fused Adam",
                 plain_loop(cfg, data, CPU, channels_last=True, fused=True, set_to_none=True), slices),
        ]
        if torch.get_num_threads() > 1:
            loops += [Loop("plain, 1 thread", with_threads(plain_loop(cfg, data, CPU), 1), slices),
                      Loop("suite, 1 thread", with_threads(suite_loop(cfg, data, CPU), 1), slices)]
    measure(loops, args.warmup, args.repeats)
    if args.bf16:
        if native_bf16:
            bf16 = Loop("channels_last + bf16 autocast", plain_loop(cfg, data, CPU, channels_last=True,
                                                                       dtype=torch.bfloat16), slices)
            measure([bf16], args.warmup, args.repeats)
        else:
            print("note: this CPU has no native bf16 dot products (no AVX-512 BF16 / AMX): bf16 autocast "
                  "runs emulated and is far slower than fp32; timing one step of one batch only", flush=True)
            one = Preloaded(data.images[:args.batch], data.masks[:args.batch])
            bf16 = Loop("channels_last + bf16 autocast (emulated)",
                        plain_loop(cfg, one, CPU, channels_last=True, dtype=torch.bfloat16), len(one))
            measure([bf16], 0, 1)
        loops.append(bf16)

    forward, flops = step_flops(cfg, CPU)
    per_slice = flops / args.batch
    print(f"\nFLOPs per training step, counted with FlopCounterMode over one forward + backward: "
          f"{flops / 1e9:.2f} GFLOP ({per_slice / 1e9:.3f} GFLOP/slice; forward alone {forward / 1e9:.2f}, "
          f"backward/forward = {(flops - forward) / forward:.2f}); Adam's element-wise work not counted")
    print(f"\n{'loop':<52} {'slices/s':>9} {'GFLOP/s':>9}   all repeats (slices/s)")
    for loop in loops:
        reps = " ".join(f"{r:.1f}" for r in loop.rates)
        print(f"{loop.name:<52} {loop.median:>9.1f} {loop.median * per_slice / 1e9:>9.1f}   {reps}")
    print(f"\nsuite / plain speed-up: {loops[1].median / loops[0].median:.2f}x")
    if args.parallel > 1:
        parallel_comparison(args)
    if not args.no_loader:
        with contextlib.suppress(KeyboardInterrupt):
            loader_rates(args)


if __name__ == "__main__":
    main()
