"""Every result table and figure the notebooks write, under one name each.

A notebook saves ``results.save_table(df, RESULTS, registry.table("per_scan"), meta)`` instead of typing
the file stem; the claims report loads its inputs through :data:`CLAIM_INPUTS`; the tests check that a
run wrote every registered file, and that every file the README names is registered. Rename a file
here and everything that reads it follows.

Paths are relative to ``outputs/<profile>/``: a table is ``results/<stem>.csv`` (``.json`` for the C3
headline), a figure ``figures/<stem>.html`` and ``figures/<stem>.png``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Output:
    """One file of a run: its stem, the notebooks that write it, and how it is stored."""

    stem: str
    notebooks: tuple[str, ...]  # e.g. ("04_distances",); claims.csv is rewritten by 04-08
    folder: str = "results"     # "results" or "figures"
    suffix: str = ".csv"        # ".csv" or ".json" for tables; "" for figures (written as .html and .png)

    @property
    def path(self) -> str:
        """Relative to ``outputs/<profile>/``, as the README writes it: ``results/test_metrics.csv``,
        ``figures/fig2_performance``."""
        return f"{self.folder}/{self.stem}{self.suffix}"


def _table(stem: str, *notebooks: str, suffix: str = ".csv") -> Output:
    return Output(stem, notebooks, "results", suffix)


def _figure(stem: str, *notebooks: str) -> Output:
    return Output(stem, notebooks, "figures", "")


_CLAIMS_WRITERS = ("04_distances", "05_activations", "06_controls", "07_policy", "08_robustness", "09_relatedness")

# Tables by logical name. The names of the claims' inputs are those kneelib.study.claims.claims_table
# takes (scratch_pairs, per_scan, ...); every other table is named by its stem.
TABLES: dict[str, Output] = {
    "data_split": _table("data_split", "01_data"),
    "data_tissue_volumes": _table("data_tissue_volumes", "01_data"),
    "data_threshold_baseline": _table("data_threshold_baseline", "01_data"),
    "history_scratch": _table("history_scratch", "02_scratch"),
    "test_metrics_scratch": _table("test_metrics_scratch", "02_scratch"),
    "history_all": _table("history_all", "03_finetune"),
    "per_scan": _table("test_metrics", "03_finetune"),
    "fig2_performance_table": _table("fig2_performance_table", "03_finetune"),
    "scratch_pairs": _table("distances_scratch_pairs", "04_distances"),
    "finetune": _table("distances_finetune", "04_distances"),
    "tissue": _table("tissue_distances", "04_distances"),
    "headline": _table("distances_headline", "04_distances", suffix=".json"),
    "distances_null": _table("distances_null", "04_distances"),
    "distances_seed_spread": _table("distances_seed_spread", "04_distances"),
    "overlap": _table("activation_overlap", "05_activations"),
    "overlap_topk_iou": _table("activation_overlap_topk_iou", "05_activations"),
    "null_ratio": _table("controls_null_ratio", "06_controls"),
    "scale_free": _table("controls_scale_free", "06_controls"),
    "aligned": _table("controls_aligned_distances", "06_controls"),
    "cka": _table("controls_cka", "06_controls"),
    "controls_seed_spread": _table("controls_seed_spread", "06_controls"),
    "init_drift": _table("init_drift", "06_controls"),
    "init_drift_scratch_pairs": _table("init_drift_scratch_pairs", "06_controls"),
    "policy": _table("policy_results", "07_policy"),
    "policy_source_ranking": _table("policy_source_ranking", "07_policy"),
    "claims": _table("claims", *_CLAIMS_WRITERS),
    "robustness_settings": _table("robustness_settings", "08_robustness"),
    "robustness_margins": _table("robustness_margins", "08_robustness"),
    "robustness_headline_ratio": _table("robustness_headline_ratio", "08_robustness"),
    "robustness_nets": _table("robustness_nets", "08_robustness"),
    "robustness_policy": _table("robustness_policy", "08_robustness"),
    "robustness_claims": _table("robustness_claims", "08_robustness"),
    "robustness_controls": _table("robustness_controls", "08_robustness"),
    "robustness_ratio_summary": _table("robustness_ratio_summary", "08_robustness"),
    "known_relatedness": _table("known_relatedness", "09_relatedness"),
    "known_relatedness_summary": _table("known_relatedness_summary", "09_relatedness"),
}

# Figures by logical name (their stems).
FIGURES: dict[str, Output] = {f.stem: f for f in (
    _figure("data_example_slices", "01_data"),
    _figure("data_tissue_volumes", "01_data"),
    _figure("learning_curves_scratch", "02_scratch"),
    _figure("learning_curves_all", "03_finetune"),
    _figure("fig2_performance", "03_finetune"),
    _figure("fig3a_scratch_vs_scratch", "04_distances"),
    _figure("fig3b_scratch_vs_finetuned", "04_distances"),
    _figure("fig4_tissue_distances", "04_distances"),
    _figure("fig5_activation_maps", "05_activations"),
    _figure("controls_null_ratio", "06_controls"),
    _figure("controls_aligned_distances", "06_controls"),
    _figure("controls_cka_per_depth", "06_controls"),
    _figure("controls_cka_heatmap_scratch", "06_controls"),
    _figure("init_drift", "06_controls"),
    _figure("policy_dice_vs_data", "07_policy"),
    _figure("robustness_claims_heatmap", "08_robustness"),
    _figure("known_relatedness", "09_relatedness"),
)}

# The tables the claims and their controls read (kneelib.study.claims.claims_table), by logical name.
CLAIM_INPUTS = ("scratch_pairs", "finetune", "headline", "tissue", "per_scan", "overlap", "null_ratio", "aligned",
                "cka", "policy", "history_all")


# The same inputs computed where nothing was learned (06_controls, kneelib.study.null_world.null_claim_tables):
# claim-input name -> the registry name of its null table, stored as results/null_world_<the real stem>.csv
# (.json for the headline). The Dice claims' inputs (per_scan, policy) have no null world.
NULL_INPUTS: dict[str, str] = {name: f"null_world_{name}" for name in (
    "scratch_pairs", "finetune", "headline", "tissue", "overlap", "null_ratio", "aligned", "cka")}
TABLES.update({null: _table(f"null_world_{TABLES[name].stem}", "06_controls", suffix=TABLES[name].suffix)
               for name, null in NULL_INPUTS.items()})


def _lookup(registry: dict[str, Output], kind: str, name: str) -> str:
    if name not in registry:
        raise KeyError(f"no {kind} named {name!r} in kneelib.core.registry; known: {sorted(registry)}")
    return registry[name].stem


def table(name: str) -> str:
    """The file stem of the result table ``name`` (a key of :data:`TABLES`); KeyError for unknown names."""
    return _lookup(TABLES, "table", name)


def figure(name: str) -> str:
    """The file stem of the figure ``name`` (a key of :data:`FIGURES`); KeyError for unknown names."""
    return _lookup(FIGURES, "figure", name)


def written_by(notebook: str) -> list[Output]:
    """Every registered table and figure ``notebook`` (e.g. ``"04_distances"``) writes."""
    return [o for o in (*TABLES.values(), *FIGURES.values()) if notebook in o.notebooks]
