"""The claims report: ``claims.md`` and ``results/claims.csv`` from the result tables a run has
written so far (04-07) or from 08_robustness's tables in memory, with a "robust across recipes" column
once 08 has run, and 08's paragraph on what the recipe changes.

The claims themselves are tested in :mod:`kneelib.study.claims`; which file holds which table is
:mod:`kneelib.core.registry`'s.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd

from kneelib.core import paths, registry
from kneelib.core.atomic import write_text
from kneelib.core.profiles import PROFILES
from kneelib.core.results import load_json, save_table
from kneelib.study import robustness
from kneelib.study.claims import claims_table


def _verdict(value) -> str:
    return {True: "yes", False: "no", None: "n/a"}.get(value if value in (True, False) else None, "n/a")


def claims_markdown(table: pd.DataFrame, title: str, robust: dict[str, str] | None = None) -> str:
    """The claims report as Markdown: one row per claim of ``table`` (:func:`kneelib.study.claims.claims_table`)
    and a section for the controls; ``robust`` (claim id -> verdict,
    :func:`kneelib.study.robustness.robust_across_recipes`) adds the column "robust across recipes"."""
    extra = " robust across recipes |" if robust else ""
    lines = [f"# {title}", "",
             "Each claim of Thorneloe et al. (ISMRM 2020 #1029) tested on this run's result tables "
             "(computed by `kneelib.study.claims`, not typed in). *margin* > 0 means the claim holds; across "
             "seeds it holds only when the 95% interval of the margin lies above 0."
             + (" *Robust across recipes*: the verdict (mean margin over seeds > 0) is the same under every "
                "training recipe of 08_robustness." if robust else ""), "",
             "| id | claim | paper | this run | criterion | holds | holds across seeds |" + extra,
             "| --- | --- | --- | --- | --- | --- | --- |" + (" --- |" if robust else "")]
    controls = [c for c in ("against_null", "after_alignment", "by_cka") if c in table]
    for r in table.to_dict("records"):
        across = (f"{_verdict(r.get('holds_across_seeds'))} ({r.get('holds_in_seeds')}, margin "
                  f"{r.get('margin_mean', float('nan')):.3g}, 95% CI {r.get('margin_ci95')})"
                  if r.get("holds") is not None else "n/a")
        cells = [r["id"], r["claim"], r["paper"], r["this_run"], r["criterion"], _verdict(r.get("holds")), across]
        cells += [robust.get(r["id"], "n-a")] if robust else []
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
    if controls:
        lines += ["", "## Controls", "", "Does each claim survive the untrained He null (distance / null), a "
                  "permutation alignment of the scratch nets' channels, and a representation measure (debiased "
                  "linear CKA) instead of weights?", "", "| id | " + " | ".join(c.replace("_", " ") for c in controls)
                  + " |", "| --- |" + " --- |" * len(controls)]
        for r in table.to_dict("records"):
            values = [r.get(c) if isinstance(r.get(c), str) else "n/a" for c in controls]
            if any(v != "n/a" for v in values):
                lines.append("| " + " | ".join([r["id"], *[v.replace("|", "\\|") for v in values]]) + " |")
    return "\n".join(lines) + "\n"


def load_tables(results_dir: str | os.PathLike) -> dict:
    """Whatever claim inputs (:data:`kneelib.core.registry.CLAIM_INPUTS`) the notebooks have written so far
    under ``results_dir``, by the names ``claims_table`` takes; the C3 headline as ``{"by_seed": ...}``."""
    results_dir = Path(results_dir)
    tables: dict = {}
    for name in registry.CLAIM_INPUTS:
        out = registry.TABLES[name]
        if not (results_dir / f"{out.stem}{out.suffix}").exists():
            continue
        if out.suffix == ".json":
            tables[name] = {"by_seed": load_json(results_dir, out.stem)}
        else:
            tables[name] = pd.read_csv(results_dir / f"{out.stem}{out.suffix}")
    return tables


def claims_md_path(profile_name: str) -> Path:
    """``outputs/<profile>/claims.md``, the claims report :func:`write_claims` writes."""
    return paths.profile_dir(profile_name) / "claims.md"


def robustness_verdicts(profile_name: str) -> dict[str, str] | None:
    """The "robust across recipes" verdicts for ``profile_name``'s claims report: from its own
    ``results/robustness_claims.csv`` (reference setting "recipe"), else from that of a profile whose
    ``robustness_reuse`` names it; None when no such table exists yet."""
    sources = [profile_name] + [p.name for p in PROFILES.values() if p.robustness_reuse == profile_name]
    for name in sources:
        path = paths.results_dir(name) / f"{registry.table('robustness_claims')}.csv"
        if path.exists():
            return robustness.robust_across_recipes(pd.read_csv(path), robustness.REFERENCE)
    return None


def write_claims(profile_name: str, seeds: list[int], latent: str, meta: dict,
                 tables: dict | None = None) -> pd.DataFrame:
    """Compute the claims from ``tables`` (default: those under ``outputs/<profile>/results``) and write
    ``claims.md`` and ``claims.csv``; the report gets a "robust across recipes" column once a robustness
    table exists (:func:`robustness_verdicts`). Returns the claims table
    (:func:`kneelib.study.claims.claims_table`)."""
    tables = load_tables(paths.results_dir(profile_name)) if tables is None else tables
    table = claims_table(tables, seeds, latent)
    save_table(table, paths.results_dir(profile_name), registry.table("claims"), meta)
    write_text(claims_md_path(profile_name),
               claims_markdown(table, f"Claims report: profile `{profile_name}`, seeds {seeds}",
                               robustness_verdicts(profile_name)))
    return table


def recipe_summary_markdown(ratios: pd.DataFrame, table: pd.DataFrame, grid: list[robustness.Setting]) -> str:
    """A short paragraph, from the numbers, on what the recipe changes: the C3 ratio (fine-tuned to
    base / to own scratch) per setting beside the paper's, how long the nets trained, and which
    claims' verdicts flip (``ratios``: ``kneelib.study.robustness.ratio_summary``; ``table``: ``robustness_table``)."""
    labels = {s.name: s.label for s in grid}
    parts = []
    for r in ratios.itertuples():
        interval = ("" if math.isnan(r.ratio_ci95_low)
                    else f" (95% interval {r.ratio_ci95_low:.2f} to {r.ratio_ci95_high:.2f})")
        parts.append(f"**{labels.get(r.setting, r.setting)}**: ratio {r.ratio_mean:.2f}{interval}, scratch nets "
                     f"{r.scratch_epochs:.1f} epochs (best at {r.scratch_best_epoch:.1f}), fine-tuned "
                     f"{r.finetune_epochs:.1f} (best at {r.finetune_best_epoch:.1f})")
    paper = float(ratios.paper_ratio.iloc[0]) if len(ratios) else math.nan
    verdicts = robustness.robust_across_recipes(table)
    robust = [c for c, v in verdicts.items() if v == "yes"]
    flips = [f"{c} {v[3:]}" for c, v in verdicts.items() if v.startswith("no")]
    unanswered = [c for c, v in verdicts.items() if v == "n-a"]
    return (f"The fine-tuned-to-base distance as a share of the fine-tuned-to-own-scratch distance (C3's ratio; "
            f"the paper's is {paper:.2f}) per recipe: " + "; ".join(parts) + ". "
            f"Verdicts (mean margin over seeds > 0) unchanged across recipes: {', '.join(robust) or 'none'}. "
            f"Changed: {'; '.join(flips) or 'none'}."
            + (f" Not answerable in every recipe: {', '.join(unanswered)}." if unanswered else ""))
