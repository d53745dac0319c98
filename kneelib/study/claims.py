"""The paper's claims C1-C8 and C8b (docs/reference.md, "The claims"), tested on this run's result tables.

Each claim becomes a number per seed, its *margin*: positive when the claim holds for that
seed. ``claims_table`` reports the paper's value, this run's value (first seed, or the mean),
the criterion, whether it holds, and across seeds the margin's mean, sd and 95% t-interval;
"holds across seeds" requires the whole interval above 0. Nothing here is typed in: every
value is computed from the tables the analyses of 03-07 return (``kneelib.study.analyses``), read
back from the files the notebooks write or, in 08_robustness, straight from memory.

Writing ``claims.md`` and ``claims.csv`` is :mod:`kneelib.report.claims_report`'s job; the verdicts
across training recipes are :mod:`kneelib.study.robustness`'s.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from kneelib.compare.spread import interval95
from kneelib.names import (
    PAPER_FT_DIRECTIONS,
    PAPER_HEADLINE,
    PAPER_TISSUE_DISTANCES,
    PAPER_TISSUES,
    base_of,
    pair_name,
    tissue_code,
    tissue_of,
    tissue_pairs,
)
from kneelib.study.policy import by_steps

# Tolerance for "near-equal" tissue distances (C4): coefficient of variation of the three.
NEAR_EQUAL_CV = 0.10
# C4-C7 are about the paper's three tissues and their nine nets: F, T, M and the pairs F-T, F-M, M-T. A study
# of other tissues cannot answer them; a study of more tissues answers them on the paper's nets only.
PAPER_CODES = tuple(tissue_code(t) for t in PAPER_TISSUES)
PAPER_PAIRS = tuple(pair_name(a, b) for a, b in tissue_pairs(PAPER_TISSUES))


@dataclass
class ClaimResult:
    value: str      # this run's value, human-readable
    margin: float   # > 0: the claim holds; nan: the claim is not answerable from these tables (verdict n/a)


def _not_answerable(missing: list[str], present: list[str]) -> ClaimResult:
    """The result (margin nan: verdict n/a) of a claim about the paper's tissues in a study without some of
    them; ``missing`` and ``present`` are tissue codes or pair names, for the text."""
    return ClaimResult(f"n/a: needs the paper's tissues F, T and M; missing {', '.join(missing)} (this study: "
                       f"{', '.join(present) or 'none'})", math.nan)


def _missing_pairs(tissue: pd.DataFrame) -> ClaimResult | None:
    """n/a when the tissue-distance table lacks one of the paper's pairs F-T, F-M, M-T; else None."""
    present = list(dict.fromkeys(tissue.pair))
    missing = [p for p in PAPER_PAIRS if p not in present]
    return _not_answerable(missing, present) if missing else None


def _is_paper_net(net: str) -> bool:
    """A net of the paper's nine: it segments F, T or M and, if fine-tuned, started from one of them."""
    base = base_of(net)
    return tissue_of(net) in PAPER_CODES and (base is None or base in PAPER_CODES)


def _group_means(df: pd.DataFrame) -> pd.Series:
    return df[df.group != "network"].groupby("group", sort=False).distance.mean()


def c1_latent_smallest(scratch_pairs: pd.DataFrame, latent: str) -> ClaimResult:
    """C1: among scratch-vs-scratch distances per group, the latent level is the smallest."""
    means = _group_means(scratch_pairs)
    others = means.drop(latent)
    enc = means[[g for g in means.index if g.startswith("enc_layer")]]
    rho = stats.spearmanr(range(len(enc)), enc.values).statistic if len(enc) > 2 else float("nan")
    return ClaimResult(f"smallest: {means.idxmin()} ({means.min():.3g}); {latent} {means[latent]:.3g}; "
                       f"Spearman(enc depth, d) {rho:.2f}", (others.min() - means[latent]) / means[latent])


def c2_dec1_largest(finetune: pd.DataFrame) -> ClaimResult:
    """C2: among scratch-vs-its-fine-tuned distances per group, dec_layer1 is the largest."""
    means = _group_means(finetune)
    others = means.drop("dec_layer1")
    # The paper names only encoder and decoder levels; say where dec_layer1 ranks without the 1x1 head too.
    levels = means.drop("head", errors="ignore")
    return ClaimResult(f"largest: {means.idxmax()} ({means.max():.3g}); dec_layer1 {means['dec_layer1']:.3g}; "
                       f"largest without the head: {levels.idxmax()}",
                       (means["dec_layer1"] - others.max()) / means["dec_layer1"])


def c3_closer_to_base(headline: dict) -> ClaimResult:
    """C3: a fine-tuned net is closer to its base than to the scratch net of its own tissue."""
    to_base, to_own = headline["to_base"], headline["to_own_scratch"]
    return ClaimResult(f"{to_base:.3g} vs {to_own:.3g}", (to_own - to_base) / to_base)


def c4_near_equal(tissue: pd.DataFrame) -> ClaimResult:
    """C4: the three tissue distances are near-equal (coefficient of variation < NEAR_EQUAL_CV); of the
    paper's pairs F-T, F-M, M-T only, n/a without them."""
    if (na := _missing_pairs(tissue)) is not None:
        return na
    d = tissue.set_index("pair").tissue_distance[list(PAPER_PAIRS)]
    cv = d.std(ddof=1) / d.mean()
    text = ", ".join(f"{p} {v:.3g}" for p, v in d.items())
    return ClaimResult(f"{text} (CV {cv:.1%})", NEAR_EQUAL_CV - cv)


def c5_ft_asymmetric(tissue: pd.DataFrame) -> ClaimResult:
    """C5: the F-T pair is the most asymmetric of the paper's three pairs, with d(F(s), T|F(s)) > d(T(s), F|T(s));
    n/a without F, T and M."""
    if (na := _missing_pairs(tissue)) is not None:
        return na
    t = tissue.set_index("pair").loc[list(PAPER_PAIRS)]
    ft, others = t.loc["F-T"], t.drop("F-T").asymmetry
    direction = 1.0 if ft.d_ab > ft.d_ba else -1.0
    margin = min(ft.asymmetry - others.max(), direction * ft.asymmetry)
    return ClaimResult(f"d(F(s),T|F(s)) {ft.d_ab:.3g}, d(T(s),F|T(s)) {ft.d_ba:.3g}; asymmetry F-T "
                       f"{ft.asymmetry:.2f}, " + ", ".join(f"{p} {a:.2f}" for p, a in others.items()), margin)


def c6_finetune_performance(per_scan: pd.DataFrame) -> ClaimResult:
    """C6: fine-tuned T and M nets score worse than scratch; fine-tuned F nets closest to scratch F. Of the
    paper's nine nets only; n/a when a scratch net of F, T or M is missing."""
    dice = per_scan.groupby(["net"]).dice.mean()
    dice = dice[[_is_paper_net(n) for n in dice.index]]
    missing = [c for c in PAPER_CODES if f"{c}(s)" not in dice.index]
    if missing:
        return _not_answerable(missing, list(dict.fromkeys(tissue_of(n) for n in per_scan.net)))
    delta = {}
    for code in PAPER_CODES:
        tuned = [n for n in dice.index if base_of(n) is not None and tissue_of(n) == code]
        delta[code] = float(dice[tuned].mean() - dice[f"{code}(s)"])
    margin = min(-delta["T"], -delta["M"], abs(delta["T"]) - abs(delta["F"]), abs(delta["M"]) - abs(delta["F"]))
    return ClaimResult("Dice fine-tuned minus scratch: " + ", ".join(f"{c} {v:+.4f}" for c, v in delta.items()),
                       margin)


def with_tissue_pair(overlap: pd.DataFrame) -> pd.DataFrame:
    """Add ``tissues``: the (sorted) tissue codes of a net pair, e.g. ``"F-T"`` for T|M(s) vs F(s)."""
    return overlap.assign(tissues=[pair_name(tissue_of(a), tissue_of(b)) for a, b in zip(overlap.net_a, overlap.net_b)])


def c7_shared_activations(overlap: pd.DataFrame) -> ClaimResult:
    """C7: F nets' activation regions overlap both T and M nets' more than T and M nets' overlap each other.
    Of the paper's nine nets only; n/a without F, T and M."""
    paired = with_tissue_pair(overlap)
    paper = paired[[_is_paper_net(a) and _is_paper_net(b) for a, b in zip(paired.net_a, paired.net_b)]]
    means = paper.groupby("tissues").value.mean()
    missing = [p for p in PAPER_PAIRS if p not in means.index]
    if missing:
        return _not_answerable(missing, sorted({p for p in paired.tissues if len(set(p.split("-"))) == 2}))
    ft, fm, mt = (means[p] for p in PAPER_PAIRS)
    return ClaimResult(f"mean map correlation F-T {ft:.3f}, F-M {fm:.3f}, M-T {mt:.3f}", min(ft, fm) - mt)


def c8_policy(policy: pd.DataFrame, steps: str = "epochs") -> ClaimResult:
    """C8: with limited data (fractions < 1), fine-tuning with depth-dependent learning rates beats
    training from scratch (mean paired Dice difference > 0). ``steps``: the policy runs compared, at the
    profile's epochs ("epochs") or at the optimizer steps of a full-data run ("matched"); nan when the
    table has no such runs."""
    limited = by_steps(policy, steps)
    limited = limited[limited.fraction < 1]
    if limited.empty:
        return ClaimResult(f"not answerable: no {steps!r} policy runs at < 100% data", math.nan)
    scratch = limited[limited.strategy == "scratch"].set_index(["target", "fraction", "seed"]).dice
    tuned = limited[limited.strategy == "finetune_depth_lr"]
    gain = tuned.dice.values - scratch.loc[list(zip(tuned.target, tuned.fraction, tuned.seed))].values
    plain = limited[limited.strategy == "finetune"]
    plain_gain = plain.dice.values - scratch.loc[list(zip(plain.target, plain.fraction, plain.seed))].values
    plain_text = f"plain fine-tune {plain_gain.mean():+.4f}" if len(plain_gain) else "no plain fine-tune runs"
    return ClaimResult(f"Dice gain over scratch with < 100% data: depth-lr fine-tune {gain.mean():+.4f}, "
                       f"{plain_text}", float(gain.mean()))


def c8_closer_source(policy: pd.DataFrame, tissue: pd.DataFrame) -> ClaimResult:
    """C8, second part: for a target fine-tuned from two source tissues, the source with the shorter tissue
    distance gives the higher test Dice (depth-lr fine-tuning, fractions < 1). Margin: mean over such
    targets of Dice(closer source) - Dice(farther source); nan when no target has two sources."""
    policy = by_steps(policy, "epochs")
    limited = policy[policy.fraction < 1] if (policy.fraction < 1).any() else policy
    dice = limited[limited.strategy == "finetune_depth_lr"].groupby(["target", "source"]).dice.mean()
    distance = {frozenset(p.split("-")): d for p, d in tissue.groupby("pair").tissue_distance.mean().items()}
    gaps, parts = [], []
    for target, by_source in dice.groupby(level="target"):
        if len(by_source) != 2:
            continue
        dist = {src: distance[frozenset((target, src))] for _, src in by_source.index}
        closer, farther = sorted(dist, key=dist.get)
        gaps.append(by_source[(target, closer)] - by_source[(target, farther)])
        parts.append(f"{target}: closer source {closer} (d {dist[closer]:.3g}) Dice {by_source[(target, closer)]:.3f}"
                     f" vs {farther} (d {dist[farther]:.3g}) {by_source[(target, farther)]:.3f}")
    if not gaps:
        return ClaimResult("not answerable: no target is fine-tuned from two sources in policy_pairs", math.nan)
    return ClaimResult("; ".join(parts), float(np.mean(gaps)))


def _c1_ratio(null_ratio: pd.DataFrame, latent: str) -> ClaimResult:
    means = null_ratio[null_ratio.group != "network"].groupby("group").ratio.mean()
    return ClaimResult(f"smallest distance/null: {means.idxmin()} ({means.min():.3g}); {latent} {means[latent]:.3g}",
                       (means.drop(latent).min() - means[latent]) / means[latent])


def _c1_aligned(aligned: pd.DataFrame, latent: str) -> ClaimResult:
    return c1_latent_smallest(aligned.rename(columns={"aligned": "distance"}), latent)


def _cka_means(cka: pd.DataFrame, comparison: str) -> pd.Series:
    return cka[cka.comparison == comparison].groupby("group").cka.mean()


def _c1_cka(cka: pd.DataFrame, latent: str) -> ClaimResult:
    means = _cka_means(cka, "scratch_pairs")
    return ClaimResult(f"most similar (CKA): {means.idxmax()} ({means.max():.3f}); {latent} {means[latent]:.3f}",
                       means[latent] - means.drop(latent).max())


def _c2_cka(cka: pd.DataFrame) -> ClaimResult:
    means = _cka_means(cka, "finetune")
    return ClaimResult(f"least similar (CKA): {means.idxmin()} ({means.min():.3f}); dec_layer1 "
                       f"{means['dec_layer1']:.3f}", means.drop("dec_layer1").min() - means["dec_layer1"])


def _c3_cka(cka: pd.DataFrame) -> ClaimResult:
    to_base, to_own = _cka_means(cka, "finetune").mean(), _cka_means(cka, "own_scratch").mean()
    return ClaimResult(f"mean CKA to base {to_base:.3f} vs to own-tissue scratch {to_own:.3f}", to_base - to_own)


# Controls (issue: do the conclusions survive?): claim id -> control -> (tables needed, test).
CONTROLS: dict[str, dict[str, tuple[tuple[str, ...], Callable[..., ClaimResult]]]] = {
    "C1": {"against_null": (("null_ratio",), _c1_ratio), "after_alignment": (("aligned",), _c1_aligned),
           "by_cka": (("cka",), _c1_cka)},
    "C2": {"by_cka": (("cka",), _c2_cka)},
    "C3": {"by_cka": (("cka",), _c3_cka)},
}


def _sci(x: float) -> str:
    """8.17e-3 as the paper writes it."""
    mantissa, exponent = f"{x:.2e}".split("e")
    return f"{mantissa}e{int(exponent)}"


@dataclass(frozen=True)
class Claim:
    id: str
    statement: str
    paper: str
    criterion: str
    test: Callable[..., ClaimResult]
    needs: tuple[str, ...]  # result tables the test takes, in order


def claims(latent: str) -> list[Claim]:
    return [
        Claim("C1", f"Scratch-vs-scratch distances are larger in shallow layers; the latent level {latent} "
              "has the smallest", "qualitative (Fig. 3a)", f"{latent} has the smallest mean distance",
              lambda t: c1_latent_smallest(t, latent), ("scratch_pairs",)),
        Claim("C2", "Scratch-vs-its-fine-tuned distances are largest in dec_layer1", "qualitative (Fig. 3b)",
              "dec_layer1 has the largest mean distance", c2_dec1_largest, ("finetune",)),
        Claim("C3", "A fine-tuned net is closer to its base than to the scratch net of its own tissue",
              f"{_sci(PAPER_HEADLINE['to_base'])} vs {_sci(PAPER_HEADLINE['to_own_scratch'])}",
              "mean d(B|A(s), A(s)) < mean d(B|A(s), B(s))", c3_closer_to_base, ("headline",)),
        Claim("C4", "Average tissue distances are near-equal",
              ", ".join(f"{pair} {_sci(d)}" for pair, d in PAPER_TISSUE_DISTANCES.items()),
              f"CV of the three tissue distances < {NEAR_EQUAL_CV:.0%}", c4_near_equal, ("tissue",)),
        Claim("C5", "F-T distances are asymmetric; M-F and M-T more symmetric",
              ", ".join(f"{name} {_sci(d)}" for name, d in PAPER_FT_DIRECTIONS.items()),
              "F-T has the largest asymmetry, and d(F(s),T|F(s)) > d(T(s),F|T(s))", c5_ft_asymmetric, ("tissue",)),
        Claim("C6", "Fine-tuned T and M nets score worse than scratch; fine-tuned F about as well",
              "qualitative (Fig. 2)", "mean Dice of fine-tuned T and M < scratch, and |delta F| smallest",
              c6_finetune_performance, ("per_scan",)),
        Claim("C7", "F nets share activation regions with both T and M nets", "qualitative (Fig. 5)",
              "F-T and F-M map correlation > M-T map correlation", c7_shared_activations, ("overlap",)),
        Claim("C8", "Proposed: fine-tuning between tissues with depth-dependent learning rates needs less data",
              "proposal, untested", "mean test-Dice gain of depth-lr fine-tuning over scratch at < 100% data > 0",
              c8_policy, ("policy",)),
        Claim("C8m", "C8 at matched optimizer steps: every run at < 100% data takes as many steps as a full-data "
              "run", "proposal, untested", "as C8, with scratch and fine-tuned runs both at matched steps",
              lambda t: c8_policy(t, "matched"), ("policy",)),
        Claim("C8b", "Proposed: the source tissue with the shorter tissue distance is the better one to fine-tune "
              "from", "proposal, untested", "depth-lr fine-tuning from the closer source gives the higher mean "
              "test Dice at < 100% data", c8_closer_source, ("policy", "tissue")),
    ]


def _by_seed(table, seed: int):
    if isinstance(table, pd.DataFrame) and "seed" in table:
        return table[table.seed == seed]
    if isinstance(table, dict) and "by_seed" in table:
        return table["by_seed"][str(seed)]
    return table


def _tests(claim: Claim, latent: str) -> list[tuple[str, tuple[str, ...], Callable[..., ClaimResult]]]:
    """(name, tables needed, test) of ``claim`` itself ("claim") and of each of its controls; C1's
    controls are told the latent level."""
    tests = [("claim", claim.needs, claim.test)]
    for name, (needs, test) in CONTROLS.get(claim.id, {}).items():
        tests.append((name, needs, functools.partial(test, latent=latent) if claim.id == "C1" else test))
    return tests


def _results(tables: dict, seeds: list[int], latent: str) -> dict[tuple[str, str], list[ClaimResult]]:
    """(claim id, test name) -> one result per seed, for every claim and control whose tables are in
    ``tables``."""
    out = {}
    for claim in claims(latent):
        for name, needs, test in _tests(claim, latent):
            if all(n in tables for n in needs):
                out[(claim.id, name)] = [test(*[_by_seed(tables[n], s) for n in needs]) for s in seeds]
    return out


def _control_verdict(results: list[ClaimResult]) -> str:
    margins = [r.margin for r in results]
    _, _, lo, _ = interval95(margins)
    across = "" if math.isnan(lo) else f"; across seeds {'yes' if lo > 0 else 'no'}"
    held = f"{sum(m > 0 for m in margins)}/{len(margins)}"
    return f"{'yes' if margins[0] > 0 else 'no'} ({results[0].value}; {held}{across})"


def claims_table(tables: dict, seeds: list[int], latent: str) -> pd.DataFrame:
    """Evaluate every claim whose tables are present; one row per claim.

    ``tables`` maps names (scratch_pairs, finetune, headline, tissue, per_scan, overlap, policy and the
    controls' null_ratio, aligned, cka: ``kneelib.core.registry.CLAIM_INPUTS``) to DataFrames with a
    ``seed`` column (or, for headline, ``{"by_seed": {seed: dict}}``). Columns: id, claim, paper,
    criterion, this_run (first seed's value, or "not computed yet"), holds (first seed), margin,
    n_seeds, holds_in_seeds, margin_mean, margin_sd, margin_ci95, holds_across_seeds, and one column per
    control of any claim (against_null, after_alignment, by_cka) holding its verdict text.
    """
    results = _results(tables, seeds, latent)
    rows = []
    for claim in claims(latent):
        row = {"id": claim.id, "claim": claim.statement, "paper": claim.paper, "criterion": claim.criterion}
        if (claim.id, "claim") not in results:
            rows.append(row | {"this_run": "not computed yet", "holds": None})
            continue
        first = results[(claim.id, "claim")][0]
        margins = [r.margin for r in results[(claim.id, "claim")]]
        for control in CONTROLS.get(claim.id, {}):
            if (claim.id, control) in results:
                row[control] = _control_verdict(results[(claim.id, control)])
        mean, sd, lo, hi = interval95(margins)
        rows.append(row | {
            "this_run": first.value + (f" (seed {seeds[0]})" if len(seeds) > 1 else ""),
            "holds": None if math.isnan(first.margin) else bool(first.margin > 0),
            "margin": first.margin, "n_seeds": len(seeds),
            "holds_in_seeds": f"{sum(m > 0 for m in margins)}/{len(seeds)}", "margin_mean": mean,
            "margin_sd": sd, "margin_ci95": f"[{lo:.3g}, {hi:.3g}]" if not math.isnan(lo) else "n/a",
            "holds_across_seeds": bool(lo > 0) if not math.isnan(lo) else None})
    return pd.DataFrame(rows)


def claim_margins(tables: dict, seeds: list[int], latent: str) -> pd.DataFrame:
    """Every claim's and every control's margin per seed, in one long table: id, test ("claim" or the
    control's name, e.g. ``against_null``), seed, margin (> 0: holds; nan: not answerable), value.
    Claims and controls whose tables are missing from ``tables`` are left out."""
    rows = [{"id": claim_id, "test": test, "seed": seed, "margin": float(r.margin), "value": r.value}
            for (claim_id, test), per_seed in _results(tables, seeds, latent).items()
            for seed, r in zip(seeds, per_seed)]
    return pd.DataFrame(rows, columns=["id", "test", "seed", "margin", "value"])
