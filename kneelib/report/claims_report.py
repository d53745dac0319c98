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
from kneelib.study import claims, relatedness, robustness

PHANTOM_CAVEAT = (
    "**Data: synthetic knee phantoms, not knees.** On the default phantoms every cartilage shares one signal "
    "and texture and the menisci are enlarged; the verdicts below test the method and its training dynamics "
    "on that data, not knee anatomy or the tissues of Thorneloe et al. Point the suite at real data "
    "(README, \"Your own data\") to test those.")
REAL_CAVEAT = ("**Data: real scans** (the data root this run was given). The verdicts are about these scans, "
               "this recipe and these seeds.")
_GROUP_TEXT = {
    claims.TRAINING_DYNAMICS: "What the weights do in training, whatever the tissues (C1-C3 and their controls).",
    claims.TISSUE_RELATIONSHIPS: "What the nets say about the tissues, and the training policy the abstract "
                                 "proposes (C4 onwards).",
}


def _cell(value) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _effect_text(r: dict) -> str:
    effect = r.get("effect", math.nan)
    if not isinstance(effect, float) or math.isnan(effect):
        return "n/a"
    interval = ("no interval" if math.isnan(r.get("ci_low", math.nan))
                else f"[{r['ci_low']:.3g}, {r['ci_high']:.3g}]")
    return f"{effect:.3g} {interval}, positive in {r.get('positive_in_seeds')} seeds"


def _null_text(r: dict) -> str:
    null = r.get("null_verdict")
    if not isinstance(null, str) or null in ("", "no null world"):
        return "no null world"
    over = r.get("effect_over_null", math.nan)
    over_text = "" if not isinstance(over, float) or math.isnan(over) else (
        f"; margin over the null's {over:+.3g} ({r.get('over_null_verdict')})")
    return f"{null} (effect {r.get('null_effect', math.nan):.3g}){over_text}"


def _validated_text(r: dict) -> str:
    v = r.get("measure_validated")
    if not isinstance(v, str) or not v:
        return f"{r.get('measure', '')}: not a ladder measure"
    flag = "" if v in ("supported", "not run") else " (**the ladder did not validate it**)"
    return f"{r.get('measure')}: {v}{flag}"


def claims_markdown(table: pd.DataFrame, title: str, robust: dict[str, str] | None = None,
                    data_source: str = "phantom", ladder: dict[str, str] | None = None) -> str:
    """The claims report as Markdown: the data caveat, then one table per claim group (training dynamics,
    tissue relationships) with each claim's effect and 95% interval, its verdict, its null world and the
    ladder's verdict on its measure, then the controls. ``table``: :func:`kneelib.study.claims.claims_table`;
    ``robust``: claim id -> verdicts across recipes (:func:`kneelib.study.robustness.robust_across_recipes`),
    adds a column; ``data_source``: "phantom" or "real" (``DataContext.source``); ``ladder``: measure ->
    verdict of 09_relatedness, for its section."""
    extra = " across recipes |" if robust else ""
    lines = [f"# {title}", "", PHANTOM_CAVEAT if data_source == "phantom" else REAL_CAVEAT, "",
             "Each statement of Thorneloe et al. (ISMRM 2020 #1029) tested on this run's result tables (computed "
             "by `kneelib.study.claims`, not typed in). The *effect* is the mean over seeds of a margin that is "
             "positive when the statement holds; its 95% interval is a t-interval over seeds, or for test-Dice "
             "claims a bootstrap over seeds and test subjects. **supported**: the interval lies above 0; "
             "**contradicted**: below 0; **inconclusive**: it contains 0, or there is no interval (one seed); "
             "**n/a**: these tables cannot answer it. The *null world* evaluates the same claim on nets that "
             "learned nothing (untrained He inits; fine-tunes replaced by their base plus a random displacement "
             "of the real size): a claim it already supports is *expected from the init*, not a finding."
             + (" *Across recipes*: the verdict under each training recipe of 08_robustness that has nets of "
                "its own." if robust else "")]
    for group in (claims.TRAINING_DYNAMICS, claims.TISSUE_RELATIONSHIPS):
        rows = [r for r in table.to_dict("records") if r.get("group") == group]
        if not rows:
            continue
        lines += ["", f"## {group.capitalize()}", "", _GROUP_TEXT[group], "",
                  "| id | claim | paper | this run | criterion | effect [95% CI] | verdict | null world | reading "
                  "| measure validated by the ladder |" + extra,
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |" + (" --- |" if robust else "")]
        for r in rows:
            cells = [r["id"], r["claim"], r["paper"], r["this_run"], r["criterion"], _effect_text(r),
                     f"**{r.get('verdict')}**", _null_text(r), r.get("reading", r.get("verdict")), _validated_text(r)]
            cells += [robust.get(r["id"], "n/a")] if robust else []
            lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    controls = [c for c in claims.CONTROL_NAMES if c in table]
    if controls:
        lines += ["", "## Controls", "", "Does each claim survive the untrained He null (distance / null), an "
                  "alignment of the scratch nets' hidden units (weight matching, judged against the aligned "
                  "distance of untrained nets in the null world), and a representation measure (debiased linear "
                  "CKA) instead of weights? Each control has its own verdict by the same rule.", "",
                  "| id | " + " | ".join(c.replace("_", " ") for c in controls) + " |",
                  "| --- |" + " --- |" * len(controls)]
        for r in table.to_dict("records"):
            values = [r.get(c) if isinstance(r.get(c), str) else "n/a" for c in controls]
            if any(v != "n/a" for v in values):
                lines.append("| " + " | ".join([r["id"], *[_cell(v) for v in values]]) + " |")
    lines += ["", "## Is the distance a relatedness measure?", ""] + _ladder_lines(table, ladder)
    return "\n".join(lines) + "\n"


def _ladder_lines(table: pd.DataFrame, ladder: dict[str, str] | None) -> list[str]:
    if ladder is None:
        return ["The known-relatedness ladder (09_relatedness, `make validate`) has not run for this profile: "
                "no measure the tissue claims lean on has been shown to order tasks by relatedness."]
    out = ["09_relatedness fine-tuned nets on a ladder of five tasks of known relatedness (the same task, its "
           "masks dilated by one voxel, the other tibial compartment, patellar cartilage, meniscus). A measure is "
           "validated only when it orders the whole ladder, orders the four different tasks among themselves, "
           "and does not just follow the loss left to remove: " + "; ".join(f"{m} **{v}**" for m, v in ladder.items())
           + "."]
    failed = [r["id"] for r in table.to_dict("records")
              if r.get("measure") in ladder and ladder[r["measure"]] != "supported"]
    if failed:
        out.append(f"Claims built on a measure the ladder did not validate: {', '.join(failed)}; read their "
                   "verdicts as statements about that measure, not about the tissues.")
    return out


def _load(results_dir: Path, names: dict[str, str]) -> dict:
    """claim-input name -> table, for every registry table of ``names`` (claim-input name -> registry
    name) written under ``results_dir``; JSON tables (the C3 headline) as ``{"by_seed": ...}``."""
    tables: dict = {}
    for name, registered in names.items():
        out = registry.TABLES[registered]
        path = results_dir / f"{out.stem}{out.suffix}"
        if not path.exists():
            continue
        tables[name] = ({"by_seed": load_json(results_dir, out.stem)} if out.suffix == ".json"
                        else pd.read_csv(path))
    return tables


def load_tables(results_dir: str | os.PathLike) -> dict:
    """Whatever claim inputs (:data:`kneelib.core.registry.CLAIM_INPUTS`) the notebooks have written so far
    under ``results_dir``, by the names ``claims_table`` takes; the C3 headline as ``{"by_seed": ...}``."""
    return _load(Path(results_dir), {n: n for n in registry.CLAIM_INPUTS})


def load_null_tables(results_dir: str | os.PathLike) -> dict:
    """The null world's claim inputs (:data:`kneelib.core.registry.NULL_INPUTS`, written by 06_controls)
    present under ``results_dir``, by the claim-input names."""
    return _load(Path(results_dir), dict(registry.NULL_INPUTS))


def load_ladder(results_dir: str | os.PathLike) -> dict[str, str] | None:
    """measure -> verdict of the known-relatedness ladder (09_relatedness) for the whole net, None when 09
    has not run for this profile."""
    out = registry.TABLES["known_relatedness_summary"]
    path = Path(results_dir) / f"{out.stem}{out.suffix}"
    return relatedness.validation_outcome(pd.read_csv(path)) if path.exists() else None


def claims_md_path(profile_name: str) -> Path:
    """``outputs/<profile>/claims.md``, the claims report :func:`write_claims` writes."""
    return paths.profile_dir(profile_name) / "claims.md"


def robustness_verdicts(profile_name: str) -> dict[str, str] | None:
    """The verdicts across recipes for ``profile_name``'s claims report: from its own
    ``results/robustness_claims.csv`` (reference setting "recipe"), else from that of a profile whose
    ``robustness_reuse`` names it; None when no such table exists yet."""
    sources = [profile_name] + [p.name for p in PROFILES.values() if p.robustness_reuse == profile_name]
    for name in sources:
        path = paths.results_dir(name) / f"{registry.table('robustness_claims')}.csv"
        if path.exists():
            return robustness.robust_across_recipes(pd.read_csv(path), robustness.REFERENCE)
    return None


def write_claims(profile_name: str, seeds: list[int], latent: str, meta: dict, data_source: str,
                 tables: dict | None = None, null: dict | None = None) -> pd.DataFrame:
    """Compute the claims from ``tables`` and their null world ``null`` (default: those under
    ``outputs/<profile>/results``; tables given without ``null``: no null world, since files on disk may
    belong to other nets) and write ``claims.md`` and ``claims.csv``. ``data_source``: "phantom"
    or "real" (``DataContext.source``), for the report's opening caveat. The report gets a column of
    verdicts across recipes once a robustness table exists (:func:`robustness_verdicts`) and the ladder's
    verdicts once 09_relatedness has run (:func:`load_ladder`). Returns the claims table
    (:func:`kneelib.study.claims.claims_table`)."""
    results_dir = paths.results_dir(profile_name)
    if tables is None:  # the files the notebooks wrote, and the null world 06 wrote beside them
        tables = load_tables(results_dir)
        null = load_null_tables(results_dir) if null is None else null
    ladder = load_ladder(results_dir)
    table = claims.claims_table(tables, seeds, latent, null=null, validation=ladder)
    save_table(table, results_dir, registry.table("claims"), meta)
    write_text(claims_md_path(profile_name),
               claims_markdown(table, f"Claims report: profile `{profile_name}`, seeds {seeds}",
                               robustness_verdicts(profile_name), data_source, ladder))
    return table


def recipe_summary_markdown(ratios: pd.DataFrame, table: pd.DataFrame, grid: list[robustness.Setting]) -> str:
    """A short paragraph, from the numbers, on what the recipe changes: the C3 ratio (fine-tuned to
    base / to own scratch) per setting beside the paper's, how long the nets trained, and each claim's
    verdicts across the settings (``ratios``: ``kneelib.study.robustness.ratio_summary``; ``table``:
    ``robustness_table``)."""
    labels = {s.name: s.label for s in grid}
    parts = []
    for r in ratios.itertuples():
        interval = ("" if math.isnan(r.ratio_ci95_low)
                    else f" (95% interval {r.ratio_ci95_low:.2f} to {r.ratio_ci95_high:.2f})")
        parts.append(f"**{labels.get(r.setting, r.setting)}**: ratio {r.ratio_mean:.2f}{interval}, scratch nets "
                     f"{r.scratch_epochs:.1f} epochs (best at {r.scratch_best_epoch:.1f}), fine-tuned "
                     f"{r.finetune_epochs:.1f} (best at {r.finetune_best_epoch:.1f})")
    paper = float(ratios.paper_ratio.iloc[0]) if len(ratios) else math.nan
    across = robustness.robust_across_recipes(table)
    return (f"The fine-tuned-to-base distance as a share of the fine-tuned-to-own-scratch distance (C3's ratio; "
            f"the paper's is {paper:.2f}) per recipe: " + "; ".join(parts) + ". "
            "Verdicts per claim across the recipes with nets of their own (scratch-only claims do not count a "
            "recipe that reuses the reference's scratch nets): "
            + "; ".join(f"{c} {v}" for c, v in across.items()) + ".")
