"""Numeric spread: how far a change of rounding alone moves a single net, against the seed-to-seed spread.

Run from the repository root (nets and phantoms go under ``$KNEELIB_OUTPUTS``, default ``outputs/``)::

    KNEELIB_OUTPUTS=/tmp/spread .venv/bin/python benchmarks/numeric_spread.py --out spread.json
    .venv/bin/python benchmarks/numeric_spread.py --seeds 0 --set max_epochs=1 --out quick.json  # a quick check
    .venv/bin/python benchmarks/numeric_spread.py --variants fp32_p2 fp32_p1 --repeat fp32_p2 bf16_p2 --out x.json

The scratch nets of 02_scratch (F(s), T(s), M(s) for every seed; the demo: 3 x 3 = 9 nets) are trained
(or reused) through the suite's own path (``kneelib.study.nine_nets.train_nets``, which runs
``kneelib.nets.workers``) under numeric variants that differ only in rounding:

- ``bf16_p2``: ``precision="bf16"``, ``parallel_nets=2`` (two worker processes, each with half the threads);
- ``fp32_p2``: ``precision="fp32"``, ``parallel_nets=2``;
- ``fp32_p1``: ``precision="fp32"``, ``parallel_nets=1`` (one process with all the threads).

Each variant trains into its own profile folder (``<profile>_spread_<variant>``), so no variant reuses
another's nets; all read the same data context (the profile's phantoms, generated once under
``<profile>/data``). Each net is evaluated on the test split as 02 does (``kneelib.nets.evaluate.evaluate_nets``,
at the variant's precision; bf16 nets also at fp32 inference, to split training from inference rounding).

Printed: per pair of variants (bf16 vs fp32 at parallel_nets 2; parallel_nets 1 vs 2 at fp32), the max and
mean |delta test Dice| per net and the network-level kernel distance between the two variants of a net
(``kneelib.compare.distances.kernel_distances``), beside the seed-to-seed spread of the same tissue's
scratch net (sd of test Dice over seeds; mean distance between two seeds' nets); whether the weights are
bitwise equal to a second training in the same variant (``--repeat``, one seed); train times (medians).
Everything, with the CPU's flags, torch version, threads and git commit, goes to ``--out`` (JSON).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # kneelib, from a plain copy of the repo

import kneelib  # noqa: E402, F401  (sets OMP_WAIT_POLICY before torch is imported)

# isort: split
import torch  # noqa: E402

from kneelib.compare.distances import NETWORK, kernel_distances  # noqa: E402
from kneelib.core import paths  # noqa: E402
from kneelib.core.atomic import write_json  # noqa: E402
from kneelib.core.profiles import Profile, get_profile  # noqa: E402
from kneelib.core.provenance import cpu_kind, git_commit, library_versions  # noqa: E402
from kneelib.data.context import DataContext, prepare_data  # noqa: E402
from kneelib.nets.evaluate import evaluate_nets  # noqa: E402
from kneelib.nets.train import state_hash  # noqa: E402
from kneelib.report.runner import parse_overrides  # noqa: E402
from kneelib.study.nine_nets import scratch_specs, train_nets  # noqa: E402

VARIANTS = {
    "bf16_p2": {"precision": "bf16", "parallel_nets": 2},
    "fp32_p2": {"precision": "fp32", "parallel_nets": 2},
    "fp32_p1": {"precision": "fp32", "parallel_nets": 1},
}
PAIRS = (("bf16_p2", "fp32_p2"), ("fp32_p1", "fp32_p2"))  # (changed, reference)


def cpu_info() -> dict[str, Any]:
    """The CPU's model and instruction set as every checkpoint records them, and torch's view of it."""
    return {**cpu_kind(), "torch_capability": torch.backends.cpu.get_cpu_capability(), "cores": os.cpu_count()}


def variant_profile(base: Profile, variant: str, suffix: str = "") -> Profile:
    """``base`` with the variant's settings, named so that it trains into its own folder."""
    return dataclasses.replace(base.replace(**VARIANTS[variant]), name=f"{base.name}_spread_{variant}{suffix}")


def test_dice(profile: Profile, ctx: DataContext, states: dict) -> dict[Any, float]:
    """Mean test Dice over the test scans of every net (02's evaluation, at ``profile.precision``)."""
    per_scan = evaluate_nets(profile, ctx, states)
    means = per_scan.groupby(["tissue", "seed"]).dice.mean()
    return {spec: float(means[(spec.tissue, spec.seed)]) for spec in states}


def train_variant(base: Profile, ctx: DataContext, variant: str, seeds: list[int], force: bool,
                  suffix: str = "") -> tuple[list[dict[str, Any]], dict]:
    """Train (or reuse) and evaluate the scratch nets of ``seeds`` in one variant: one row per net, and the states."""
    p = variant_profile(base, variant, suffix)
    specs = [spec for seed in seeds for spec in scratch_specs(seed, p.tissues)]
    print(f"\n== {p.name}: {len(specs)} nets, precision {p.precision}, parallel_nets {p.parallel_nets}, "
          f"{torch.get_num_threads()} threads in this process", flush=True)
    start = time.time()
    trained = train_nets(p, ctx, specs, force=force, progress=False)
    wall = time.time() - start
    for spec, r in trained.items():
        print(f"{spec.name} seed {spec.seed}: {len(r.history)} epochs, best val {r.best_val_loss:.4f} "
              f"(epoch {r.best_epoch}), {sum(row['seconds'] for row in r.history):.0f} s", flush=True)
    states = {spec: r.state for spec, r in trained.items()}
    dice = test_dice(p, ctx, states)
    dice32 = dice if p.precision == "fp32" else test_dice(dataclasses.replace(p, precision="fp32"), ctx, states)
    rows = [{"variant": variant + suffix, "net": spec.name, "tissue": spec.tissue, "seed": spec.seed,
             "test_dice": dice[spec], "test_dice_fp32_inference": dice32[spec], "best_epoch": r.best_epoch,
             "epochs": len(r.history), "best_val_loss": r.best_val_loss,
             "train_seconds": sum(row["seconds"] for row in r.history), "state_hash": state_hash(r.state),
             "reused": (r.run_dir / "best.pt").stat().st_mtime < start, "run_dir": str(r.run_dir),
             "variant_wall_seconds": wall}
            for spec, r in trained.items()]
    return rows, {(spec.name, spec.seed): s for spec, s in states.items()}


def distance(a: dict, b: dict) -> float:
    return kernel_distances(a, b)[NETWORK]


def summarize(rows: list[dict], states: dict[str, dict], repeats: list[dict], repeat_states: dict) -> dict:
    """Variant-to-variant deltas, the seed spread per tissue and variant, bitwise repeats, times."""
    by = {(r["variant"], r["net"], r["seed"]): r for r in rows}
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    nets = list(dict.fromkeys(r["net"] for r in rows))
    seeds = sorted({r["seed"] for r in rows})
    seed_spread = {}
    for v, net in itertools.product(variants, nets):
        dice = [by[(v, net, s)]["test_dice"] for s in seeds]
        dists = [distance(states[v][(net, a)], states[v][(net, b)]) for a, b in itertools.combinations(seeds, 2)]
        seed_spread[f"{v} {net}"] = {"variant": v, "net": net, "dice_mean": statistics.mean(dice),
                                     "dice_sd": statistics.stdev(dice) if len(dice) > 1 else float("nan"),
                                     "seed_distance_mean": statistics.mean(dists) if dists else float("nan")}
    pairs = {}
    for a, b in PAIRS:
        if a not in states or b not in states:
            continue
        per_net = [{"net": net, "seed": s,
                    "delta_dice": by[(a, net, s)]["test_dice"] - by[(b, net, s)]["test_dice"],
                    "delta_dice_fp32_inference": (by[(a, net, s)]["test_dice_fp32_inference"]
                                                  - by[(b, net, s)]["test_dice_fp32_inference"]),
                    "distance": distance(states[a][(net, s)], states[b][(net, s)]),
                    "same_hash": by[(a, net, s)]["state_hash"] == by[(b, net, s)]["state_hash"],
                    "best_epoch": [by[(a, net, s)]["best_epoch"], by[(b, net, s)]["best_epoch"]]}
                   for net in nets for s in seeds]
        absd = [abs(x["delta_dice"]) for x in per_net]
        dist = [x["distance"] for x in per_net]
        sds = [seed_spread[f"{v} {net}"]["dice_sd"] for v in (a, b) for net in nets]
        seed_dist = [seed_spread[f"{v} {net}"]["seed_distance_mean"] for v in (a, b) for net in nets]
        per_tissue = {net: {"max_abs_delta_dice": max(abs(x["delta_dice"]) for x in per_net if x["net"] == net),
                            "mean_abs_delta_dice": statistics.mean(abs(x["delta_dice"]) for x in per_net
                                                                   if x["net"] == net),
                            "mean_distance": statistics.mean(x["distance"] for x in per_net if x["net"] == net),
                            "seed_sd": [seed_spread[f"{v} {net}"]["dice_sd"] for v in (a, b)],
                            "seed_distance": [seed_spread[f"{v} {net}"]["seed_distance_mean"] for v in (a, b)]}
                      for net in nets}
        pairs[f"{a} vs {b}"] = {
            "max_abs_delta_dice": max(absd), "mean_abs_delta_dice": statistics.mean(absd),
            "max_abs_delta_dice_fp32_inference": max(abs(x["delta_dice_fp32_inference"]) for x in per_net),
            "seed_sd_range": [min(sds), max(sds)], "seed_sd_mean": statistics.mean(sds),
            "mean_distance": statistics.mean(dist), "max_distance": max(dist),
            "seed_distance_mean": statistics.mean(seed_dist),
            "distance_over_seed_distance": statistics.mean(dist) / statistics.mean(seed_dist),
            "mean_abs_delta_over_seed_sd": statistics.mean(absd) / statistics.mean(sds),
            "same_best_epoch": sum(x["best_epoch"][0] == x["best_epoch"][1] for x in per_net),
            "bitwise_equal": sum(x["same_hash"] for x in per_net), "n_nets": len(per_net), "per_tissue": per_tissue,
            "per_net": per_net}
    bitwise = {}
    for r in repeats:
        v = r["variant"].removesuffix("_repeat")
        first = by[(v, r["net"], r["seed"])]
        a, b = states[v][(r["net"], r["seed"])], repeat_states[v][(r["net"], r["seed"])]
        bitwise[f"{v} {r['net']} seed {r['seed']}"] = {
            "variant": v, "first_hash": first["state_hash"], "repeat_hash": r["state_hash"],
            "bitwise_equal": first["state_hash"] == r["state_hash"],
            "max_abs_weight_diff": max(float((a[k].float() - b[k].float()).abs().max()) for k in a),
            "delta_dice": r["test_dice"] - first["test_dice"]}
    times = {v: {"median_train_seconds": statistics.median(r["train_seconds"] for r in rows if r["variant"] == v),
                 "wall_seconds": next(r["variant_wall_seconds"] for r in rows if r["variant"] == v),
                 "reused": all(r["reused"] for r in rows if r["variant"] == v)} for v in variants}
    return {"pairs": pairs, "seed_spread": seed_spread, "bitwise_repeat": bitwise, "times": times}


def print_summary(summary: dict, rows: list[dict]) -> None:
    print("\n## Per net\n")
    print(f"{'variant':<16} {'net':<6} {'seed':>4} {'test Dice':>9} {'fp32-inf':>9} {'best ep':>7} "
          f"{'train s':>8}  state hash")
    for r in rows:
        print(f"{r['variant']:<16} {r['net']:<6} {r['seed']:>4} {r['test_dice']:>9.4f} "
              f"{r['test_dice_fp32_inference']:>9.4f} {r['best_epoch']:>7} {r['train_seconds']:>8.1f}  "
              f"{r['state_hash']}")
    print("\n## Seed-to-seed spread (per tissue's scratch net, per variant)\n")
    print(f"{'variant':<10} {'net':<6} {'Dice mean':>9} {'Dice sd':>8} {'seed-pair distance':>19}")
    for s in summary["seed_spread"].values():
        print(f"{s['variant']:<10} {s['net']:<6} {s['dice_mean']:>9.4f} {s['dice_sd']:>8.4f} "
              f"{s['seed_distance_mean']:>19.3e}")
    print("\n## Variant vs variant, same net (same tissue and seed)\n")
    print(f"{'pair':<20} {'max|dDice|':>10} {'mean|dDice|':>11} {'seed sd':>15} {'|dD|/sd':>7} "
          f"{'dist mean':>9} {'dist max':>9} {'seed dist':>9} {'ratio':>6} {'same ep':>7} {'bitwise':>7}")
    for name, p in summary["pairs"].items():
        lo, hi = p["seed_sd_range"]
        print(f"{name:<20} {p['max_abs_delta_dice']:>10.4f} {p['mean_abs_delta_dice']:>11.4f} "
              f"{f'{lo:.4f}-{hi:.4f}':>15} {p['mean_abs_delta_over_seed_sd']:>7.2f} {p['mean_distance']:>9.3e} "
              f"{p['max_distance']:>9.3e} {p['seed_distance_mean']:>9.3e} {p['distance_over_seed_distance']:>6.2f} "
              f"{p['same_best_epoch']:>3}/{p['n_nets']:<3} {p['bitwise_equal']:>3}/{p['n_nets']:<3}")
        for net, t in p["per_tissue"].items():
            sd, sdist = "/".join(f"{x:.4f}" for x in t["seed_sd"]), "/".join(f"{x:.2e}" for x in t["seed_distance"])
            print(f"  {net:<18} {t['max_abs_delta_dice']:>10.4f} {t['mean_abs_delta_dice']:>11.4f} {sd:>15} "
                  f"{'':>7} {t['mean_distance']:>9.3e} {'':>9} {sdist:>17}")
        print(f"  (max |dDice| with both evaluated at fp32 inference: {p['max_abs_delta_dice_fp32_inference']:.4f}; "
              "per tissue: seed sd and seed distance of each variant of the pair)")
    if summary["bitwise_repeat"]:
        print("\n## A second training in the same variant\n")
        for name, b in summary["bitwise_repeat"].items():
            print(f"{name:<28} {b['first_hash']} vs {b['repeat_hash']}: "
                  f"{'bitwise equal' if b['bitwise_equal'] else 'DIFFERENT'} (max |dw| {b['max_abs_weight_diff']:.2e}, "
                  f"dDice {b['delta_dice']:+.4f})")
    print("\n## Train time (median per net; the variant's wall time, in which parallel_nets=2 trains two at once)\n")
    ref = summary["times"].get("fp32_p2")
    for v, t in summary["times"].items():
        ratio = (f" ({ref['median_train_seconds'] / t['median_train_seconds']:.2f}x / "
                 f"{ref['wall_seconds'] / t['wall_seconds']:.2f}x the speed of fp32_p2)") if ref else ""
        print(f"{v:<16} {t['median_train_seconds']:7.1f} s per net, wall {t['wall_seconds']:5.0f} s{ratio}"
              + (" (reused: times of the first training)" if t["reused"] else ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="demo", help="profile (kneelib.core.profiles), default demo")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a profile parameter, e.g. --set max_epochs=1")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="training seeds (default: the profile's)")
    parser.add_argument("--repeat", nargs="*", default=["fp32_p2"], choices=list(VARIANTS),
                        help="variants trained a second time for --repeat-seed, to test bitwise reproducibility")
    parser.add_argument("--repeat-seed", type=int, default=None, help="seed of the repeat (default: the first seed)")
    parser.add_argument("--force", action="store_true", help="retrain nets even when finished ones exist")
    parser.add_argument("--out", type=Path, required=True, help="JSON file for every row and the summary")
    args = parser.parse_args(argv)

    base = get_profile(args.profile, **parse_overrides(args.overrides))
    seeds = list(args.seeds if args.seeds is not None else base.seeds)
    ctx = prepare_data(base)  # phantoms of the profile, generated once and read by every variant
    print(f"profile {base.name}: {ctx.source} data at {ctx.root} ({len(ctx.records)} scans, "
          f"manifest {ctx.manifest_hash[:12]}); seeds {seeds}; outputs under {paths.outputs_root()}")
    meta = {"profile": base.name, "overrides": parse_overrides(args.overrides), "seeds": seeds,
            "variants": {v: VARIANTS[v] for v in args.variants}, "cpu": cpu_info(),
            "torch": torch.__version__, "threads": torch.get_num_threads(), "versions": library_versions(),
            "git_commit": git_commit(), "manifest_sha256": ctx.manifest_hash,
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "loadavg_start": os.getloadavg()}
    print("cpu:", meta["cpu"], "| torch", meta["torch"], "|", meta["threads"], "threads | commit", meta["git_commit"])

    rows, states = [], {}
    for variant in args.variants:
        variant_rows, states[variant] = train_variant(base, ctx, variant, seeds, args.force)
        rows += variant_rows
    repeats, repeat_states = [], {}
    repeat_seed = seeds[0] if args.repeat_seed is None else args.repeat_seed
    for variant in [v for v in args.repeat if v in states]:
        variant_rows, repeat_states[variant] = train_variant(base, ctx, variant, [repeat_seed], args.force, "_repeat")
        repeats += variant_rows
    meta["loadavg_end"] = os.getloadavg()
    summary = summarize(rows, states, repeats, repeat_states)
    print_summary(summary, rows + repeats)
    write_json(args.out, {"meta": meta, "rows": rows, "repeat_rows": repeats, "summary": summary})
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
