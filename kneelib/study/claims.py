"""The paper's statements, tested on this run's result tables (docs/reference.md, "The claims").

Each claim becomes a number per seed, its *margin*: positive when the statement holds for that seed.
The verdict is read from the margin's mean over seeds and its 95% interval, with the one rule of
:mod:`kneelib.study.verdicts` (supported, contradicted, inconclusive, n/a):

- claims on weights, activations or training length vary with the seed only: Student-t interval over
  seeds;
- claims on test Dice also vary with the few test subjects: the interval comes from a bootstrap over
  seeds and, within each seed, over test subjects (paired: every net is scored on the same drawn
  subjects).

Every claim on weights or activations is evaluated a second time in a *null world* where nothing was
learned (untrained He-initialized nets for scratch-vs-scratch and activation claims; each fine-tuned
net replaced by its base plus a random displacement of the real fine-tune's per-layer norm, see
:mod:`kneelib.study.null_world`). A claim that the null world already supports is "expected from the
init", not a finding, unless the trained margin exceeds the null's beyond its interval.

Nothing here is typed in: every value is computed from the tables the analyses of 03-07 return
(:mod:`kneelib.study.analyses`), read back from the notebooks' files or, in 08_robustness, from
memory. Writing ``claims.md`` and ``claims.csv`` is :mod:`kneelib.report.claims_report`'s job.
"""

from __future__ import annotations

import functools
import json
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
from kneelib.study import verdicts
from kneelib.study.policy import by_steps
from kneelib.study.verdicts import Effect

# Tolerance for "near-equal" distances (C1b, C4): coefficient of variation.
NEAR_EQUAL_CV = 0.10
# C9: fine-tuning "without compromising performance": at most this much below scratch in mean test Dice.
NON_INFERIORITY_DICE = 0.01
# C4-C7 are about the paper's three tissues and their nine nets: F, T, M and the pairs F-T, F-M, M-T. A study
# of other tissues cannot answer them; a study of more tissues answers them on the paper's nets only.
PAPER_CODES = tuple(tissue_code(t) for t in PAPER_TISSUES)
PAPER_PAIRS = tuple(pair_name(a, b) for a, b in tissue_pairs(PAPER_TISSUES))
PAPER_FT_RATIO = PAPER_FT_DIRECTIONS["d(F(s),T|F(s))"] / PAPER_FT_DIRECTIONS["d(T(s),F|T(s))"]  # 1.43
TRAINING_DYNAMICS, TISSUE_RELATIONSHIPS = "training dynamics", "tissue relationships"


@dataclass
class ClaimResult:
    value: str      # this seed's value, human-readable
    margin: float   # > 0: the statement holds for this seed; nan: not answerable from these tables


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


def _group_means(df: pd.DataFrame, column: str = "distance") -> pd.Series:
    return df[df.group != "network"].groupby("group", sort=False)[column].mean()


# ------------------------------------------------------------------ training dynamics (C1-C3)

def c1_latent_smallest(scratch_pairs: pd.DataFrame, latent: str) -> ClaimResult:
    """C1: among scratch-vs-scratch distances per group, the latent level is the smallest. Margin: the
    next-smallest group's distance over the latent one's, minus 1."""
    means = _group_means(scratch_pairs)
    others = means.drop(latent)
    enc = means[[g for g in means.index if g.startswith("enc_layer")]]
    rho = stats.spearmanr(range(len(enc)), enc.values).statistic if len(enc) > 2 else float("nan")
    return ClaimResult(f"smallest: {means.idxmin()} ({means.min():.3g}); {latent} {means[latent]:.3g}; "
                       f"Spearman(enc depth, d) {rho:.2f}", (others.min() - means[latent]) / means[latent])


def c1b_latent_near_equal(scratch_pairs: pd.DataFrame, latent: str) -> ClaimResult:
    """C1b (Discussion): the latent-level distances between the scratch nets are near-equal across the
    pairs (coefficient of variation < NEAR_EQUAL_CV); needs at least two pairs."""
    d = scratch_pairs[scratch_pairs.group == latent].groupby("pair", sort=False).distance.mean()
    if len(d) < 2:
        return ClaimResult(f"not answerable: {len(d)} scratch pair(s), needs 2", math.nan)
    cv = d.std(ddof=1) / d.mean()
    return ClaimResult(f"{latent}: " + ", ".join(f"{p} {v:.3g}" for p, v in d.items()) + f" (CV {cv:.1%})",
                       NEAR_EQUAL_CV - cv)


def c2_dec1_largest(finetune: pd.DataFrame, column: str = "distance") -> ClaimResult:
    """C2: among scratch-vs-its-fine-tuned distances per U-Net level, dec_layer1 is the largest. The paper
    names encoder and decoder levels only: the 1x1 head, whose kernels are on another scale (one input
    channel per output, no 3x3 neighbourhood), is left out and reported apart."""
    means = _group_means(finetune, column)
    head = means.get("head", math.nan)
    levels = means.drop("head", errors="ignore")
    others = levels.drop("dec_layer1")
    return ClaimResult(f"largest level: {levels.idxmax()} ({levels.max():.3g}); dec_layer1 {levels['dec_layer1']:.3g}"
                       f"; head (apart) {head:.3g}", (levels["dec_layer1"] - others.max()) / levels["dec_layer1"])


def c3_closer_to_base(headline: dict) -> ClaimResult:
    """C3: a fine-tuned net is closer to its base than to the scratch net of its own tissue."""
    to_base, to_own = headline["to_base"], headline["to_own_scratch"]
    return ClaimResult(f"{to_base:.3g} vs {to_own:.3g}", (to_own - to_base) / to_base)


# ------------------------------------------------------------------ tissue relationships (C4-C7)

def c4_near_equal(tissue: pd.DataFrame) -> ClaimResult:
    """C4 (an inference: the Results list the three tissue distances without calling them anything): the
    three are near-equal (coefficient of variation < NEAR_EQUAL_CV); of the paper's pairs F-T, F-M, M-T
    only, n/a without them."""
    if (na := _missing_pairs(tissue)) is not None:
        return na
    d = tissue.set_index("pair").tissue_distance[list(PAPER_PAIRS)]
    cv = d.std(ddof=1) / d.mean()
    text = ", ".join(f"{p} {v:.3g}" for p, v in d.items())
    return ClaimResult(f"{text} (CV {cv:.1%})", NEAR_EQUAL_CV - cv)


def c5_ft_asymmetric(tissue: pd.DataFrame) -> ClaimResult:
    """C5: the F-T pair is the most asymmetric of the paper's three pairs, with d(F(s), T|F(s)) > d(T(s),
    F|T(s)); n/a without F, T and M. The text gives the ratio of the two directions beside the paper's
    9.56e-3 / 6.70e-3 = 1.43."""
    if (na := _missing_pairs(tissue)) is not None:
        return na
    t = tissue.set_index("pair").loc[list(PAPER_PAIRS)]
    ft, others = t.loc["F-T"], t.drop("F-T").asymmetry
    direction = 1.0 if ft.d_ab > ft.d_ba else -1.0
    margin = min(ft.asymmetry - others.max(), direction * ft.asymmetry)
    return ClaimResult(f"d(F(s),T|F(s)) {ft.d_ab:.3g}, d(T(s),F|T(s)) {ft.d_ba:.3g}: ratio {ft.d_ab / ft.d_ba:.2f} "
                       f"(paper {PAPER_FT_RATIO:.2f}); asymmetry F-T {ft.asymmetry:.2f}, "
                       + ", ".join(f"{p} {a:.2f}" for p, a in others.items()), margin)


def _dice_by_net(per_scan: pd.DataFrame) -> pd.Series:
    return per_scan.groupby("net").dice.mean()


def c6_finetune_performance(per_scan: pd.DataFrame) -> ClaimResult:
    """C6: fine-tuned T and M nets score worse than scratch; fine-tuned F nets closest to scratch F. Of the
    paper's nine nets only; n/a when a scratch net of F, T or M is missing."""
    dice = _dice_by_net(per_scan)
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


# ------------------------------------------------------------------ fine-tuning, data and convergence (C8-C10)

_RUN = ["target", "source", "strategy", "fraction", "steps", "seed"]


def policy_by_subject(policy: pd.DataFrame) -> pd.DataFrame:
    """The policy table with one row per run and test subject (columns of the run, ``subject``, ``dice``),
    from its ``dice_by_subject`` column (JSON: subject -> mean Dice over that subject's scans). A table
    without it (written before subjects were kept) gives one row per run with subject "all", which
    leaves nothing to resample."""
    policy = policy if "steps" in policy else policy.assign(steps="epochs")
    policy = policy.assign(source=policy.source.fillna("").astype(str))
    if "dice_by_subject" not in policy or policy.dice_by_subject.isna().any():
        return policy[_RUN + ["dice"]].assign(subject="all")
    rows = [{**{k: getattr(r, k) for k in _RUN}, "subject": subject, "dice": dice}
            for r in policy.itertuples() for subject, dice in json.loads(r.dice_by_subject).items()]
    return pd.DataFrame(rows, columns=[*_RUN, "subject", "dice"])


def _run_dice(policy: pd.DataFrame, steps: str) -> pd.DataFrame:
    """Mean Dice per run (over the subject rows present, a bootstrap draw's duplicates counted) of one step
    variant (:func:`kneelib.study.policy.by_steps`); a table without ``steps`` counts as all "epochs"."""
    table = by_steps(policy, steps)
    table = table.assign(steps=table.steps if "steps" in table else "epochs",
                         source=table.source.fillna("").astype(str))
    return table.groupby(_RUN, as_index=False).dice.mean()


def _paired_gain(runs: pd.DataFrame, better: str, worse: str) -> np.ndarray:
    """Dice of strategy ``better`` minus ``worse`` for the same target, fraction and seed (and the same
    source when both are fine-tunes); the fraction-1 rows are left out."""
    limited = runs[runs.fraction < 1]
    keys = ["target", "fraction", "seed"] + (["source"] if worse != "scratch" else [])
    a = limited[limited.strategy == better].set_index(keys).dice
    b = limited[limited.strategy == worse].set_index(keys).dice
    common = a.index.intersection(b.index)
    return (a.loc[common] - b.loc[common]).to_numpy(dtype=float)


def c8_depth_lr(policy: pd.DataFrame) -> ClaimResult:
    """C8, the abstract's proposal: with limited data (fractions < 1), fine-tuning with depth-dependent
    learning rates beats plain fine-tuning from the same source (mean paired test-Dice difference > 0)."""
    gain = _paired_gain(_run_dice(policy, "epochs"), "finetune_depth_lr", "finetune")
    if not gain.size:
        return ClaimResult("not answerable: no depth-lr and plain fine-tune runs at < 100% data", math.nan)
    return ClaimResult(f"Dice depth-lr minus plain fine-tune at < 100% data {gain.mean():+.4f} ({gain.size} runs)",
                       float(gain.mean()))


def c8_vs_scratch(policy: pd.DataFrame, steps: str = "epochs") -> ClaimResult:
    """C8s / C8m: with limited data, depth-lr fine-tuning beats training from scratch (mean paired Dice
    difference > 0). ``steps``: the runs compared, at the profile's epochs ("epochs", C8s) or at the
    optimizer steps of a full-data run ("matched", C8m)."""
    runs = _run_dice(policy, steps)
    gain = _paired_gain(runs, "finetune_depth_lr", "scratch")
    if not gain.size:
        return ClaimResult(f"not answerable: no {steps!r} policy runs at < 100% data", math.nan)
    plain = _paired_gain(runs, "finetune", "scratch")
    plain_text = f", plain fine-tune {plain.mean():+.4f}" if plain.size else ""
    return ClaimResult(f"Dice gain over scratch at < 100% data: depth-lr fine-tune {gain.mean():+.4f}{plain_text}",
                       float(gain.mean()))


def c8f_femoral_less_data(policy: pd.DataFrame) -> ClaimResult:
    """C8f (Discussion): femoral cartilage needs less data when fine-tuned from another tissue's net. Per
    target, the *retention* of a plain fine-tune: its mean test Dice at < 100% data over its Dice with all
    data (same source and seed). Margin: F's retention minus the mean retention of the other targets."""
    runs = _run_dice(policy, "epochs")
    tuned = runs[runs.strategy == "finetune"].set_index(["target", "source", "seed", "fraction"]).dice
    full = tuned[tuned.index.get_level_values("fraction") == 1.0].droplevel("fraction")
    limited = tuned[tuned.index.get_level_values("fraction") < 1.0]
    ratio = {}
    for (target, source, seed, _), dice in limited.items():
        if (target, source, seed) in full.index and full[(target, source, seed)] > 0:
            ratio.setdefault(target, []).append(dice / full[(target, source, seed)])
    if "F" not in ratio or len(ratio) < 2:
        return ClaimResult(f"not answerable: needs fine-tunes to F and to another target at < 100% and 100% data "
                           f"(targets with both: {', '.join(sorted(ratio)) or 'none'})", math.nan)
    mean = {t: float(np.mean(v)) for t, v in ratio.items()}
    others = float(np.mean([v for t, v in mean.items() if t != "F"]))
    return ClaimResult("Dice at < 100% data as a share of all data, plain fine-tune: "
                       + ", ".join(f"{t} {v:.3f}" for t, v in mean.items()), mean["F"] - others)


def _decisive_distance_gaps(tissue: pd.DataFrame) -> dict[frozenset, tuple[float, float, float]]:
    """Pairs of tissue pairs -> (mean difference, ci_low, ci_high) of their tissue distances over seeds
    (paired by seed), for C8b's rule that a source is "closer" only when its distance is shorter beyond the
    interval."""
    by_seed = tissue.pivot_table(index="seed", columns="pair", values="tissue_distance") if "seed" in tissue \
        else tissue.set_index("pair").tissue_distance.to_frame().T
    out = {}
    for a in by_seed.columns:
        for b in by_seed.columns:
            if a < b:
                diff = (by_seed[a] - by_seed[b]).dropna().tolist()
                mean, _, lo, hi = interval95(diff) if diff else (math.nan,) * 4
                out[frozenset((a, b))] = (mean, lo, hi)
    return out


def c8b_closer_source(policy: pd.DataFrame, tissue: pd.DataFrame, tissue_all: pd.DataFrame | None = None
                      ) -> ClaimResult:
    """C8b, the suite's sharpening of C8: of a target's sources, the one with the shorter tissue distance
    gives the higher depth-lr fine-tune Dice at < 100% data. Every two sources of a target are compared
    when their tissue distances differ beyond the 95% interval over seeds (``tissue_all``: every seed's
    tissue table; None: ``tissue``, no interval, so nothing is decisive with one seed). Margin: mean over
    decisive comparisons of Dice(closer) - Dice(farther); nan when none is decisive."""
    runs = _run_dice(policy, "epochs")
    limited = runs[runs.fraction < 1] if (runs.fraction < 1).any() else runs
    dice = limited[limited.strategy == "finetune_depth_lr"].groupby(["target", "source"]).dice.mean()
    distance = {frozenset(p.split("-")): (p, d) for p, d in tissue.groupby("pair").tissue_distance.mean().items()}
    gaps_by_pairs = _decisive_distance_gaps(tissue_all if tissue_all is not None else tissue)
    gaps, parts, undecided = [], [], []
    for target, by_source in dice.groupby(level="target"):
        sources = [src for _, src in by_source.index if frozenset((target, src)) in distance]
        for i, s1 in enumerate(sources):
            for s2 in sources[i + 1:]:
                (p1, d1), (p2, d2) = distance[frozenset((target, s1))], distance[frozenset((target, s2))]
                _, lo, hi = gaps_by_pairs.get(frozenset((p1, p2)), (math.nan,) * 3)
                if math.isnan(lo) or lo <= 0 <= hi:
                    undecided.append(f"{target}: {s1} vs {s2}")
                    continue
                closer, farther = (s1, s2) if d1 < d2 else (s2, s1)
                gaps.append(by_source[(target, closer)] - by_source[(target, farther)])
                parts.append(f"{target}: closer source {closer} Dice {by_source[(target, closer)]:.3f} vs "
                             f"{farther} {by_source[(target, farther)]:.3f}")
    undecided_text = (f"distances not distinguishable beyond their intervals: {'; '.join(undecided)}"
                      if undecided else "")
    if not gaps:
        reason = undecided_text or "no target is fine-tuned from two sources in policy_pairs"
        return ClaimResult(f"not answerable: {reason}", math.nan)
    return ClaimResult("; ".join(parts + ([undecided_text] if undecided_text else [])), float(np.mean(gaps)))


def c9_no_compromise(per_scan: pd.DataFrame) -> ClaimResult:
    """C9 (Conclusion, "without compromising performance"): with all the training data, a fine-tuned net's
    mean test Dice is at most NON_INFERIORITY_DICE below the scratch net of its tissue. Margin: mean over the
    fine-tuned nets of Dice(fine-tuned) - Dice(own scratch) + NON_INFERIORITY_DICE."""
    dice = _dice_by_net(per_scan)
    deltas = {n: dice[n] - dice[f"{tissue_of(n)}(s)"] for n in dice.index
              if base_of(n) is not None and f"{tissue_of(n)}(s)" in dice.index}
    if not deltas:
        return ClaimResult("not answerable: no fine-tuned net with its own-tissue scratch net", math.nan)
    mean = float(np.mean(list(deltas.values())))
    worst = min(deltas, key=deltas.get)
    return ClaimResult(f"Dice fine-tuned minus own scratch, mean {mean:+.4f} (worst {worst} {deltas[worst]:+.4f})",
                       mean + NON_INFERIORITY_DICE)


def convergence_table(history: pd.DataFrame) -> pd.DataFrame:
    """One row per net and seed: kind, best_epoch, epochs (run). ``history`` is either the per-epoch
    learning curves (``history_all``: net, seed, kind, best_epoch, epoch, ...) or already one row per net
    (08_robustness's ``robustness_nets``: net, seed, kind, best_epoch, epochs)."""
    if "epochs" in history and "epoch" not in history:
        return history[["net", "seed", "kind", "best_epoch", "epochs"]]
    return (history.groupby(["net", "seed", "kind"], as_index=False, sort=False)
            .agg(best_epoch=("best_epoch", "first"), epochs=("epoch", "max")))


def c10_converges_sooner(history: pd.DataFrame) -> ClaimResult:
    """C10 (Discussion, "the amount of training ... required for network convergence"): fine-tuned nets
    reach their best validation loss in fewer epochs than scratch nets. Margin: (mean best epoch of the
    scratch nets - that of the fine-tuned) / the scratch nets'. The text says how many nets had their best
    epoch at their last, where the epoch cap, not convergence, decided."""
    nets = convergence_table(history)
    by_kind = nets.groupby("kind").best_epoch.mean()
    if not {"scratch", "fine-tuned"} <= set(by_kind.index):
        return ClaimResult("not answerable: needs scratch and fine-tuned nets", math.nan)
    capped = int((nets.best_epoch >= nets.epochs).sum())
    return ClaimResult(f"mean best epoch scratch {by_kind['scratch']:.2f}, fine-tuned {by_kind['fine-tuned']:.2f}; "
                       f"best at the last epoch run in {capped} of {len(nets)} nets",
                       (by_kind["scratch"] - by_kind["fine-tuned"]) / by_kind["scratch"])


# ------------------------------------------------------------------ controls

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
    means = _cka_means(cka, "finetune").drop("head", errors="ignore")
    return ClaimResult(f"least similar level (CKA): {means.idxmin()} ({means.min():.3f}); dec_layer1 "
                       f"{means['dec_layer1']:.3f}", means.drop("dec_layer1").min() - means["dec_layer1"])


def _c3_cka(cka: pd.DataFrame) -> ClaimResult:
    to_base, to_own = _cka_means(cka, "finetune").mean(), _cka_means(cka, "own_scratch").mean()
    return ClaimResult(f"mean CKA to base {to_base:.3f} vs to own-tissue scratch {to_own:.3f}", to_base - to_own)


# claim id -> control -> (tables needed, test, the measure it leans on)
CONTROLS: dict[str, dict[str, tuple[tuple[str, ...], Callable[..., ClaimResult], str]]] = {
    "C1": {"against_null": (("null_ratio",), _c1_ratio, "kernel_distance"),
           "after_alignment": (("aligned",), _c1_aligned, "aligned_kernel_distance"),
           "by_cka": (("cka",), _c1_cka, "cka")},
    "C2": {"by_cka": (("cka",), _c2_cka, "cka")},
    "C3": {"by_cka": (("cka",), _c3_cka, "cka")},
}
CONTROL_NAMES = ("against_null", "after_alignment", "by_cka")


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
    group: str              # TRAINING_DYNAMICS or TISSUE_RELATIONSHIPS
    measure: str            # what it leans on: kernel_distance, cka, activation_correlation, test_dice, best_epoch
    resample: str = ""      # the table whose test subjects are bootstrapped ("": interval over seeds only)


def claims(latent: str) -> list[Claim]:
    dyn, rel = TRAINING_DYNAMICS, TISSUE_RELATIONSHIPS
    return [
        Claim("C1", f"Scratch-vs-scratch distances are larger in shallow layers; the latent level {latent} "
              "has the smallest", "qualitative (Fig. 3a)", f"{latent} has the smallest mean distance",
              functools.partial(c1_latent_smallest, latent=latent), ("scratch_pairs",), dyn, "kernel_distance"),
        Claim("C1b", "Discussion: the latent-level distances among scratch nets are near-equal",
              "qualitative (Discussion)", f"CV of the scratch pairs' {latent} distances < {NEAR_EQUAL_CV:.0%}",
              functools.partial(c1b_latent_near_equal, latent=latent), ("scratch_pairs",), dyn, "kernel_distance"),
        Claim("C2", "Scratch-vs-its-fine-tuned distances are largest in dec_layer1", "qualitative (Fig. 3b)",
              "dec_layer1 has the largest mean distance of the U-Net levels (the 1x1 head apart)", c2_dec1_largest,
              ("finetune",), dyn, "kernel_distance"),
        Claim("C3", "A fine-tuned net is closer to its base than to the scratch net of its own tissue",
              f"{_sci(PAPER_HEADLINE['to_base'])} vs {_sci(PAPER_HEADLINE['to_own_scratch'])}",
              "mean d(B|A(s), A(s)) < mean d(B|A(s), B(s))", c3_closer_to_base, ("headline",), dyn,
              "kernel_distance"),
        Claim("C4", "Inference from the Results' numbers: the average tissue distances are near-equal",
              ", ".join(f"{pair} {_sci(d)}" for pair, d in PAPER_TISSUE_DISTANCES.items()),
              f"CV of the three tissue distances < {NEAR_EQUAL_CV:.0%}", c4_near_equal, ("tissue",), rel,
              "kernel_distance"),
        Claim("C5", "F-T distances are asymmetric; M-F and M-T more symmetric",
              ", ".join(f"{name} {_sci(d)}" for name, d in PAPER_FT_DIRECTIONS.items())
              + f" (ratio {PAPER_FT_RATIO:.2f})",
              "F-T has the largest asymmetry, and d(F(s),T|F(s)) > d(T(s),F|T(s))", c5_ft_asymmetric, ("tissue",),
              rel, "kernel_distance"),
        Claim("C6", "Fine-tuned T and M nets score worse than scratch; fine-tuned F about as well",
              "qualitative (Fig. 2)", "mean Dice of fine-tuned T and M < scratch, and |delta F| smallest",
              c6_finetune_performance, ("per_scan",), rel, "test_dice", "per_scan"),
        Claim("C7", "F nets share activation regions with both T and M nets", "qualitative (Fig. 5)",
              "F-T and F-M map correlation > M-T map correlation", c7_shared_activations, ("overlap",), rel,
              "activation_correlation"),
        Claim("C8", "Proposed: depth-dependent learning rates make fine-tuning between tissues need less data",
              "proposal, untested", "mean test-Dice gain of depth-lr over plain fine-tuning at < 100% data > 0",
              c8_depth_lr, ("policy",), rel, "test_dice", "policy"),
        Claim("C8s", "With little data, fine-tuning from another tissue beats training from scratch",
              "implied by the proposal", "mean test-Dice gain of depth-lr fine-tuning over scratch at < 100% data "
              "> 0", c8_vs_scratch, ("policy",), rel, "test_dice", "policy"),
        Claim("C8m", "C8s at matched optimizer steps: every run at < 100% data takes as many steps as a full-data "
              "run", "(suite's control)", "as C8s, with scratch and fine-tuned runs both at matched steps",
              functools.partial(c8_vs_scratch, steps="matched"), ("policy",), rel, "test_dice", "policy"),
        Claim("C8f", "Discussion: femoral cartilage needs less data when fine-tuned from other tissues' nets",
              "qualitative (Discussion)", "F keeps a larger share of its full-data Dice at < 100% data than the "
              "other targets (plain fine-tune)", c8f_femoral_less_data, ("policy",), rel, "test_dice", "policy"),
        Claim("C8b", "Proposed: the source tissue with the shorter tissue distance is the better one to fine-tune "
              "from", "proposal, untested", "depth-lr fine-tuning from the closer source (distances different "
              "beyond their intervals) gives the higher mean test Dice at < 100% data", c8b_closer_source,
              ("policy", "tissue"), rel, "kernel_distance", "policy"),
        Claim("C9", "Conclusion: fine-tuning works without compromising performance",
              "qualitative (Conclusion)", f"with all data, mean Dice of fine-tuned nets >= own scratch - "
              f"{NON_INFERIORITY_DICE}", c9_no_compromise, ("per_scan",), rel, "test_dice", "per_scan"),
        Claim("C10", "Discussion: fine-tuning needs less training to converge", "qualitative (Discussion)",
              "fine-tuned nets reach their best validation loss in fewer epochs than scratch nets",
              c10_converges_sooner, ("history_all",), rel, "best_epoch"),
    ]


# ------------------------------------------------------------------ evaluation

def _by_seed(table, seed: int):
    if isinstance(table, pd.DataFrame) and "seed" in table:
        return table[table.seed == seed]
    if isinstance(table, dict) and "by_seed" in table:
        return table["by_seed"][str(seed)]
    return table


@dataclass(frozen=True)
class Test:
    """One claim or one of its controls: the tables it reads, the per-seed test and its measure."""

    claim: Claim
    name: str  # "claim" or a control's name
    needs: tuple[str, ...]
    run: Callable[..., ClaimResult]
    measure: str
    resample: str = ""


def tests_of(claim: Claim, latent: str) -> list[Test]:
    """The claim itself and each of its controls (C1's are told the latent level)."""
    out = [Test(claim, "claim", claim.needs, claim.test, claim.measure, claim.resample)]
    for name, (needs, test, measure) in CONTROLS.get(claim.id, {}).items():
        out.append(Test(claim, name, needs, functools.partial(test, latent=latent) if claim.id == "C1" else test,
                        measure))
    return out


def _prepared(tables: dict) -> dict:
    """``tables`` with the policy table in its per-subject form (:func:`policy_by_subject`)."""
    return tables | ({"policy": policy_by_subject(tables["policy"])} if "policy" in tables else {})


def _unit(table: pd.DataFrame) -> str:
    """The column a Dice claim resamples: test subjects; a table written before subjects were recorded
    falls back to scans (each scan taken as independent, which they are not across timepoints)."""
    return "subject" if "subject" in table else "scan_id"


def _per_seed(test: Test, tables: dict, seeds: list[int]) -> list[ClaimResult]:
    def one(seed: int) -> ClaimResult:
        args = [_by_seed(tables[n], seed) for n in test.needs]
        if test.claim.id == "C8b":  # its rule reads the tissue distances of every seed
            return test.run(*args, tissue_all=tables["tissue"])
        return test.run(*args)
    return [one(s) for s in seeds]


def _effect(test: Test, tables: dict, seeds: list[int], results: list[ClaimResult]) -> Effect:
    """The claim's effect and interval: a subject bootstrap for Dice claims, a t-interval over seeds else."""
    if not test.resample:
        return verdicts.t_effect([r.margin for r in results])
    resampled = test.needs.index(test.resample)
    table = tables[test.resample]
    unit = _unit(table)

    def statistic(seed: int, rows: pd.DataFrame) -> float:
        args = [rows if i == resampled else _by_seed(tables[n], seed) for i, n in enumerate(test.needs)]
        if test.claim.id == "C8b":
            return test.run(*args, tissue_all=tables["tissue"]).margin
        return test.run(*args).margin

    return verdicts.bootstrap_effect({s: _by_seed(table, s) for s in seeds}, statistic, unit=unit)


def _reading(real: Effect, null: Effect | None, over: Effect | None) -> str:
    """One phrase for the report: the verdict, and for a supported claim what the null world says. A
    finding needs its margin to exceed the null world's beyond the interval (``over``); one the null world
    supports as well is expected from the init; one whose margin the null world matches (the difference
    inconclusive) while its own interval happens to be wider is not distinguishable from it."""
    if real.verdict != verdicts.SUPPORTED or null is None:
        return real.verdict
    if over is not None and over.verdict == verdicts.SUPPORTED:
        return "supported beyond the null world"
    if null.verdict == verdicts.SUPPORTED:
        return "expected from the init (the null world supports it too)"
    return "supported, but not beyond the null world (the margin over the null's is " + (
        over.verdict if over is not None else "not known") + ")"


def claim_effects(tables: dict, seeds: list[int], latent: str, null: dict | None = None) -> pd.DataFrame:
    """Every claim and control whose tables are present, one row each.

    Args:
        tables: result tables by the names of :data:`kneelib.core.registry.CLAIM_INPUTS` (scratch_pairs,
            finetune, headline as ``{"by_seed": {seed: dict}}``, tissue, per_scan, overlap, null_ratio,
            aligned, cka, policy, history_all), each with a ``seed`` column.
        seeds: the seeds, the headline seed first.
        latent: the latent level's group name, e.g. ``enc_layer6``.
        null: the same tables computed in the null world (:func:`kneelib.study.null_world.null_claim_tables`);
            claims whose tables it has get a null verdict.

    Columns: id, test ("claim" or the control), group, measure, value (first seed's text), effect, ci_low,
    ci_high, interval_method, n_seeds, positive_in_seeds ("k/n"), verdict, null_effect, null_verdict,
    effect_over_null, over_null_ci_low, over_null_ci_high, over_null_verdict, reading.
    """
    tables, null = _prepared(tables), _prepared(null or {})
    rows = []
    for claim in claims(latent):
        for test in tests_of(claim, latent):
            if not all(n in tables for n in test.needs):
                continue
            results = _per_seed(test, tables, seeds)
            real = _effect(test, tables, seeds, results)
            row = {"id": claim.id, "test": test.name, "group": claim.group, "measure": test.measure,
                   "value": results[0].value + (f" (seed {seeds[0]})" if len(seeds) > 1 else ""),
                   **_effect_columns(real)}
            null_effect = over = None
            if not test.resample and _covers(null, test.needs, seeds):
                null_results = _per_seed(test, null, seeds)
                null_effect = verdicts.t_effect([r.margin for r in null_results])
                over = verdicts.t_effect([r.margin - n.margin for r, n in zip(results, null_results)])
            rows.append(row | {
                "null_effect": null_effect.effect if null_effect else math.nan,
                "null_verdict": null_effect.verdict if null_effect else "no null world",
                "effect_over_null": over.effect if over else math.nan,
                "over_null_ci_low": over.ci_low if over else math.nan,
                "over_null_ci_high": over.ci_high if over else math.nan,
                "over_null_verdict": over.verdict if over else "",
                "reading": _reading(real, null_effect, over)})
    return pd.DataFrame(rows)


def _covers(tables: dict, needs: tuple[str, ...], seeds: list[int]) -> bool:
    """Whether ``tables`` has every table of ``needs`` for every seed (a null world computed for other
    seeds, e.g. an earlier run's, is not this run's null world)."""
    def seeds_of(table) -> set:
        if isinstance(table, dict):
            return {int(s) for s in table.get("by_seed", {})}
        return set(table.seed.unique()) if "seed" in table else set()
    return all(n in tables and {int(s) for s in seeds} <= {int(s) for s in seeds_of(tables[n])} for n in needs)


def _effect_columns(e: Effect) -> dict:
    return {"effect": e.effect, "ci_low": e.ci_low, "ci_high": e.ci_high, "interval_method": e.method,
            "n_seeds": e.n_seeds, "positive_in_seeds": f"{e.n_positive}/{e.n_seeds}", "verdict": e.verdict}


def claims_table(tables: dict, seeds: list[int], latent: str, null: dict | None = None,
                 validation: dict[str, str] | None = None) -> pd.DataFrame:
    """One row per claim (:func:`claim_effects`' claim rows), every claim listed even when its tables are
    not computed yet (verdict "not computed yet").

    Columns: id, group, claim, paper, criterion, this_run, verdict, effect, ci_low, ci_high,
    interval_method, n_seeds, positive_in_seeds, null_verdict, null_effect, effect_over_null,
    over_null_verdict, reading, measure, measure_validated (the known-relatedness ladder's verdict on the
    measure the claim leans on, ``validation``: measure -> verdict; "not run" without it; "" for measures
    the ladder does not test), and per control ``<control>`` (its value text) and ``<control>_verdict``.
    """
    effects = claim_effects(tables, seeds, latent, null)
    by_test = {(r["id"], r["test"]): r for r in effects.to_dict("records")}
    rows = []
    for claim in claims(latent):
        row = {"id": claim.id, "group": claim.group, "claim": claim.statement, "paper": claim.paper,
               "criterion": claim.criterion, "measure": claim.measure,
               "measure_validated": _validated(claim.measure, validation)}
        own = by_test.get((claim.id, "claim"))
        if own is None:
            rows.append(row | {"this_run": "not computed yet", "verdict": "not computed yet", "n_seeds": 0})
            continue
        row |= {k: v for k, v in own.items() if k not in ("id", "test", "group", "measure", "value")}
        row["this_run"] = own["value"]
        for control in CONTROLS.get(claim.id, {}):
            c = by_test.get((claim.id, control))
            if c is not None:
                row[control] = (f"{c['verdict']}: effect {c['effect']:.3g} {_interval(c)}; {c['value']}"
                                + (f"; null world {c['null_verdict']}" if c["null_verdict"] != "no null world" else ""))
                row[f"{control}_verdict"] = c["verdict"]
        rows.append(row)
    return pd.DataFrame(rows)


LADDER_MEASURES = ("kernel_distance", "aligned_kernel_distance", "relative_displacement", "cka")


def _validated(measure: str, validation: dict[str, str] | None) -> str:
    if measure not in LADDER_MEASURES:
        return ""
    if validation is None:
        return "not run"
    return validation.get(measure, "not run")


def _interval(r: dict) -> str:
    return "no interval" if math.isnan(r["ci_low"]) else f"[{r['ci_low']:.3g}, {r['ci_high']:.3g}]"


def claim_margins(tables: dict, seeds: list[int], latent: str) -> pd.DataFrame:
    """Every claim's and every control's margin per seed, in one long table: id, test ("claim" or the
    control's name, e.g. ``against_null``), seed, margin (> 0: holds for that seed; nan: not answerable),
    value. Claims and controls whose tables are missing from ``tables`` are left out."""
    tables = _prepared(tables)
    rows = []
    for claim in claims(latent):
        for test in tests_of(claim, latent):
            if all(n in tables for n in test.needs):
                for seed, r in zip(seeds, _per_seed(test, tables, seeds)):
                    rows.append({"id": claim.id, "test": test.name, "seed": seed, "margin": float(r.margin),
                                 "value": r.value})
    return pd.DataFrame(rows, columns=["id", "test", "seed", "margin", "value"])
