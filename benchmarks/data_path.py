"""The full-size data path: phantom generation, the slice cache and the lazy loader, extrapolated to 176 scans.

Run from the repository root::

    .venv/bin/python benchmarks/data_path.py                     # 4 full-size scans, loader with 0, 2 and 4 workers
    .venv/bin/python benchmarks/data_path.py --scans 8 --workers 0 2 4 --seconds 30
    .venv/bin/python benchmarks/data_path.py --shape 384 384 40  # quicker, thinner scans

Steps, each timed on its own:

1. phantom generation: ``kneelib.data.phantoms.make_dataset`` writes ``--scans`` scans of ``--shape``
   (default 384 x 384 x 160, the IWOAI size) with its process pool; scans per minute.
2. caching: ``kneelib.data.slices.build_slice_cache`` of every scan at 384 x 384, one after the other in this
   process (the baseline), then ``build_slice_caches`` of the same scans with its process pool (``--cache-workers``);
   scans per minute of each and their ratio.
3. loading: a lazy :class:`kneelib.data.slices.SliceDataset` (training pairs: image and one tissue mask,
   float32 (1, 384, 384) each) through the training loop's ``kneelib.nets.train.iterate_batches`` (batch
   ``--batch``, random order) with each worker count of ``--workers``, against a baseline run of a plain
   ``DataLoader`` over ``dataset[i]`` (float32 masks sent by the workers), for ``--seconds`` after one
   warm-up batch; slices/s, and the anonymous resident memory
   (``RssAnon`` of ``/proc/<pid>/status``) of the main process plus its workers, sampled every batch (median
   and peak). The
   loader is run over the first quarter, half and all of the scans, so memory growth with the number of scans
   shows as a slope (MB per scan), extrapolated to 176 scans.

The goals: generation and caching of the 176-scan set each in at most 10 minutes (a newcomer with the full
set waits minutes, not hours, before the first net trains); the loader at least 1,000 slices/s with 2 workers
(the GPU check's target for the training step, so the loader never holds the step back); anonymous memory flat
in the number of scans, at most 2 GB (the full set is read lazily, never held in memory). Each figure is
printed beside its goal. Timings depend on the load of the machine: ``os.getloadavg()`` is printed with
each. Scratch files go to ``--out`` (default a temporary folder, removed afterwards).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from kneelib.data.manifest import read_manifest
from kneelib.data.phantoms import make_dataset
from kneelib.data.slices import POOL_MIN_VOXELS, SliceDataset, build_slice_cache, build_slice_caches
from kneelib.names import PAPER_TISSUES as TISSUES
from kneelib.nets.train import iterate_batches

FULL_SET = 176  # IWOAI: 88 subjects x 2 timepoints
GOAL_MINUTES = 10.0
GOAL_SLICES_PER_S = 1000.0
GOAL_ANON_GB = 2.0


def rss_anon_mb(pid: int) -> float:
    """``RssAnon`` of process ``pid`` in MB (0 when it has gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def children(pid: int) -> list[int]:
    """Direct child processes of ``pid`` (DataLoader workers)."""
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


def tree_anon_mb() -> float:
    """RssAnon of this process plus its children, MB."""
    me = os.getpid()
    return rss_anon_mb(me) + sum(rss_anon_mb(c) for c in children(me))


def load() -> str:
    return "load {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())


def generate(root: Path, n_scans: int, shape: tuple[int, int, int], workers: int | None) -> tuple[list, float]:
    """Phantoms of ``n_scans`` scans (n/2 training subjects x V00, V01); returns records and seconds."""
    subjects = {"train": max(1, math.ceil(n_scans / 2))}
    start = time.perf_counter()
    manifest = make_dataset(root, subjects, shape, seed=2020, workers=workers)
    seconds = time.perf_counter() - start
    return read_manifest(manifest)[:n_scans], seconds


def cache_serial(records: list, root: Path, cache_dir: Path, size: int) -> list[float]:
    """Seconds of each scan's slice-cache build, one after the other in this process."""
    out = []
    for r in records:
        start = time.perf_counter()
        build_slice_cache(r, root, cache_dir, size)
        out.append(time.perf_counter() - start)
    return out


def cache_parallel(records: list, root: Path, cache_dir: Path, size: int, workers: int | None) -> float:
    """Seconds of ``build_slice_caches`` of all ``records`` (its process pool)."""
    start = time.perf_counter()
    build_slice_caches(records, root, cache_dir, size, workers=workers)
    return time.perf_counter() - start


def iterate(ds: SliceDataset, workers: int, batch: int, seconds: float, path: str, seed: int = 0) -> dict[str, float]:
    """Slices/s over ``ds`` in a random order, and the peak RssAnon (MB) while it runs.

    ``path="training"``: the training loop's own batches (``train.iterate_batches``: uint8 masks from the
    workers, which the training step makes float32 on its device); ``"baseline"``: the same DataLoader
    over ``dataset[i]`` (float32 masks from the workers), as before that change.
    """
    order = torch.randint(len(ds), (200_000,), generator=torch.Generator().manual_seed(seed))
    if path == "training":
        batches = iterate_batches(ds, order, batch, workers)
    else:
        batches = iter(DataLoader(ds, batch_size=batch, sampler=order.tolist(), num_workers=workers))
    next(batches)  # warm-up: workers started, first files opened
    base = tree_anon_mb()
    samples, n, start = [base], 0, time.perf_counter()
    for x, _ in batches:
        n += len(x)
        samples.append(tree_anon_mb())
        if time.perf_counter() - start >= seconds:
            break
    elapsed = time.perf_counter() - start
    del batches
    return {"slices_per_s": n / elapsed, "slices": n, "anon_start_mb": base, "anon_peak_mb": max(samples),
            "anon_median_mb": float(np.median(samples))}


def measure_in_fresh_process(out: Path, n_scans: int, workers: int, path: str,
                             args: argparse.Namespace) -> dict[str, float]:
    """:func:`iterate` over the first ``n_scans`` scans in a new Python process, so that no setting's
    memory (allocator arenas, open files) carries over into the next."""
    cmd = [sys.executable, __file__, "--measure", str(out), str(n_scans), str(workers), path,
           "--size", str(args.size), "--batch", str(args.batch), "--seconds", str(args.seconds)]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _measure(out: Path, n_scans: int, workers: int, path: str, size: int, batch: int, seconds: float) -> None:
    records = read_manifest(out / "phantoms" / "manifest.csv")[:n_scans]
    ds = SliceDataset(records, out / "phantoms", TISSUES[0], size, out / "cache", preload=False)
    result = iterate(ds, workers, batch, seconds, path) | {"slices_in_set": len(ds)}
    ds.close()
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--measure", nargs=4, metavar=("OUT", "SCANS", "WORKERS", "PATH"), default=None,
                        help=argparse.SUPPRESS)  # internal: one loader setting, in its own process
    parser.add_argument("--scans", type=int, default=4, help="scans to generate (even: whole subjects)")
    parser.add_argument("--shape", type=int, nargs=3, default=(384, 384, 160), metavar=("H", "W", "D"))
    parser.add_argument("--size", type=int, default=384, help="slice size of the cache")
    parser.add_argument("--gen-workers", type=int, default=None, help="phantom processes (default: make_dataset's)")
    parser.add_argument("--cache-workers", type=int, default=None,
                        help="slice-cache processes (default: build_slice_caches')")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2, 4], help="DataLoader worker counts")
    parser.add_argument("--batch", type=int, default=24)
    parser.add_argument("--seconds", type=float, default=20.0, help="loader time per setting")
    parser.add_argument("--out", type=Path, default=None, help="scratch folder (default: a temporary one, removed)")
    args = parser.parse_args()
    if args.measure:
        _measure(Path(args.measure[0]), int(args.measure[1]), int(args.measure[2]), args.measure[3], args.size,
                 args.batch, args.seconds)
        return
    shape = tuple(args.shape)
    out = args.out or Path(tempfile.mkdtemp(prefix="kneelib_data_path_"))
    root, cache_dir = out / "phantoms", out / "cache"
    torch.set_num_threads(max(1, torch.get_num_threads()))
    print(f"data path: {args.scans} scans of {shape}, slices {args.size}, batch {args.batch}, cpus {os.cpu_count()}, "
          f"torch threads {torch.get_num_threads()}; scratch {out}")
    try:
        print(f"\n1. phantom generation ({load()})")
        reused = (root / "manifest.csv").exists() or cache_dir.exists()
        if reused:
            print("   (scans and caches already in --out are reused: steps 1 and 2 are not timed; delete them to time)")
        records, gen_s = generate(root, args.scans, shape, args.gen_workers)
        per_min = len(records) / gen_s * 60
        scale = math.prod(shape) / (384 * 384 * 160)
        full_min = FULL_SET / per_min * scale
        print(f"   {len(records)} scans in {gen_s:.1f} s: {per_min:.2f} scans/min; 176 full-size scans: "
              f"{full_min:.1f} min (goal <= {GOAL_MINUTES:.0f}) [{load()}]")

        print(f"\n2. slice cache ({load()})")
        serial_s = cache_serial(records, root, out / "cache_serial", args.size)
        med = float(np.median(serial_s))
        shutil.rmtree(out / "cache_serial", ignore_errors=True)
        print(f"   baseline, one scan after the other: median {med:.2f} s per scan (all: "
              f"{', '.join(f'{s:.2f}' for s in serial_s)}); {60 / med:.1f} scans/min; 176 full-size scans: "
              f"{FULL_SET * med / 60 * scale:.1f} min [{load()}]")
        pooled = len(records) > 1 and len(records) * math.prod(shape) >= POOL_MIN_VOXELS
        par_s = cache_parallel(records, root, cache_dir, args.size, args.cache_workers)
        per_scan = par_s / len(records)
        how = "process pool" if pooled else "in-process (too few voxels for the pool)"
        print(f"   build_slice_caches ({how}): {par_s:.1f} s for {len(records)} scans, {per_scan:.2f} s per scan, "
              f"{med / per_scan:.2f}x the baseline; 176 full-size scans: {FULL_SET * per_scan / 60 * scale:.1f} min "
              f"(goal <= {GOAL_MINUTES:.0f}) [{load()}]")
        disk = sum(f.stat().st_size for f in cache_dir.iterdir()) / len(records) / 1e6
        src = sum(f.stat().st_size for f in root.rglob("*_V0*.*")) / len(records) / 1e6
        print(f"   disk per scan: source {src:.0f} MB, cache {disk:.0f} MB; 176 scans: "
              f"{FULL_SET * (src + disk) / 1e3:.1f} GB")

        print(f"\n3. lazy loader, batch {args.batch} of {args.size} x {args.size} (image, {TISSUES[0]} mask) pairs")
        sizes = sorted({max(1, len(records) // 4), max(1, len(records) // 2), len(records)})
        peaks: dict[int, list[tuple[int, float]]] = {w: [] for w in args.workers}
        for w in args.workers:
            for n in sizes:
                base = measure_in_fresh_process(out, n, w, "baseline", args)
                r = measure_in_fresh_process(out, n, w, "training", args)
                peaks[w].append((n, r["anon_median_mb"], r["anon_peak_mb"]))
                goal = f" (goal >= {GOAL_SLICES_PER_S:.0f} with 2 workers)" if w == 2 else ""
                print(f"   workers {w}, {n:3d} scans ({r['slices_in_set']} slices): "
                      f"{r['slices_per_s']:7.0f} slices/s{goal}, {r['slices_per_s'] / base['slices_per_s']:.2f}x "
                      f"the float32-mask baseline ({base['slices_per_s']:.0f}); "
                      f"RssAnon {r['anon_start_mb']:.0f} -> median {r['anon_median_mb']:.0f}, "
                      f"peak {r['anon_peak_mb']:.0f} MB [{load()}]")
        # The slope uses the median over each window, which sampling noise moves less than the peak.
        print("\n   RssAnon (median over the window) against the number of scans (least-squares slope), at 176 scans:")
        for w, pts in peaks.items():
            n, mb, peak = np.array(pts, dtype=float).T
            slope = float(np.polyfit(n, mb, 1)[0]) if len(n) > 1 else 0.0
            at_full = mb[-1] + slope * (FULL_SET - n[-1])
            print(f"   workers {w}: {slope:+.2f} MB per scan; {at_full / 1e3:.2f} GB at 176 scans, highest peak "
                  f"{peak.max() / 1e3:.2f} GB (goal flat, <= {GOAL_ANON_GB:.0f} GB)")
    finally:
        if args.out is None:
            shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
