"""Regenerate the committed notebooks (without outputs) from the cell lists below.

The notebooks are the product; this script only keeps their boilerplate (parameters cell,
provenance footer, kernelspec) uniform. Run: ``.venv/bin/python tools/build_notebooks.py``.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"

PARAMETERS = '''profile = "demo"   # tiny | demo | paper (kneelib.profiles)
data_root = ""     # real IWOAI data root (train/ valid/ test/); "" uses $KNEELIB_DATA_ROOT, else phantoms
overrides = {}     # profile fields to override, e.g. {"max_epochs": 5, "seeds": [0, 1, 2]}
force = False      # retrain networks even when a finished run with the same inputs exists'''

SETUP = '''from kneelib import figures, paths, study
from kneelib.profiles import get_profile

figures.setup_notebook()
P = get_profile(profile, **overrides)  # derived here, after papermill has injected the parameters
ctx = study.prepare_data(P, data_root or None)
FIGURES, RESULTS = paths.figures_dir(P.name), paths.results_dir(P.name)
print(f"profile {P.name}: {ctx.source} data at {ctx.root} ({len(ctx.records)} scans, manifest {ctx.manifest_hash[:12]})")'''

FOOTER = '''from kneelib.provenance import git_commit, library_versions

print("git commit:", git_commit())
library_versions()'''


def params_cell(source: str = PARAMETERS):
    return new_code_cell(source, metadata={"tags": ["parameters"]})


def build(name: str, cells: list) -> None:
    for i, cell in enumerate(cells):
        cell.id = f"{name}-{i:02d}"  # stable ids: rebuilding a notebook does not churn its diff
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    path = NOTEBOOKS / f"{name}.ipynb"
    nbformat.write(nb, path)
    print("wrote", path)


def md(text: str):
    return new_markdown_cell(text)


def code(text: str):
    return new_code_cell(text)


def nb01():
    build("01_data", [
        md("# 01 · Data: knee DESS scans, the split, and the three tissues\n\n"
           "Creates (synthetic phantoms) or validates (real OAI / IWOAI 2019 data) the scans for the chosen "
           "profile, and shows what the networks will learn from: example sagittal slices with the femoral "
           "cartilage, tibial cartilage and meniscus masks, tissue volumes, and the subject-wise split."),
        params_cell(),
        code(SETUP),
        md("## The split\n\nSubjects are split 60/14/14 (120/28/28 scans) in the paper; a subject's two "
           "timepoints (V00, V01) always stay in the same split."),
        code('''from kneelib import plots, results
from kneelib.provenance import provenance

meta = provenance(P, ctx.manifest_hash, seed=P.data_seed)
splits = plots.split_table(ctx)
results.save_table(splits, RESULTS, "data_split", meta)
splits'''),
        md("## Example slices\n\nOne scan per split, at the sagittal slice with the most labelled tissue."),
        code('''from kneelib.figures import save_figure

fig = plots.figure_example_slices(ctx)
save_figure(fig, FIGURES, "data_example_slices")
fig.show()'''),
        md("## Tissue volumes\n\nVolumes in mL from each scan's voxel spacing (manifest)."),
        code('''volumes = plots.tissue_volume_table(ctx)
results.save_table(volumes, RESULTS, "data_tissue_volumes", meta)
fig = plots.figure_tissue_volumes(volumes)
save_figure(fig, FIGURES, "data_tissue_volumes")
fig.show()
volumes.groupby(["split", "tissue"]).volume_ml.agg(["mean", "std", "count"]).round(2)'''),
        md("## Can a threshold do the job?\n\nThe best single intensity window's Dice per tissue on a few "
           "training scans. Values well below the networks' Dice mean a network has to use spatial context, "
           "so the experiment means something on this data."),
        code('''threshold = study.threshold_baseline(ctx, n_scans=2)
results.save_table(threshold, RESULTS, "data_threshold_baseline", meta)
threshold.pivot(index="scan_id", columns="tissue", values="best_window_dice").round(3)'''),
        md("## Files written\n\n- `outputs/<profile>/results/data_split.csv`, `data_tissue_volumes.csv`, "
           "`data_threshold_baseline.csv` (each with `.meta.json` provenance)\n"
           "- `outputs/<profile>/figures/data_example_slices.{html,png}`, `data_tissue_volumes.{html,png}`\n\n"
           "Next: [02_scratch](02_scratch.ipynb) trains the three scratch networks."),
        code(FOOTER),
    ])


def nb02():
    build("02_scratch", [
        md("# 02 · Three networks from scratch\n\nTrains F(s), T(s) and M(s), the femoral-cartilage, "
           "tibial-cartilage and meniscus U-Nets, from He-normal initialization with the profile's recipe "
           "(soft-Dice loss, Adam, step decay, early stopping on validation loss), then evaluates them on the "
           "test split. Finished networks are reused when config, data and code are unchanged."),
        params_cell(),
        code(SETUP),
        md("## Train\n\nThe weights with the lowest validation soft-Dice loss are each network's result."),
        code('''specs = [spec for seed in P.seeds for spec in study.scratch_specs(seed)]
trained = study.train_nets(P, ctx, specs, force=force)
for spec, r in trained.items():
    print(f"{spec.name:6s} seed {spec.seed}: best epoch {r.best_epoch}/{len(r.history)}, "
          f"val loss {r.best_val_loss:.4f}{' (reused)' if r.reused else ''}")'''),
        md("## Learning curves"),
        code('''from kneelib import plots, results
from kneelib.figures import save_figure
from kneelib.provenance import provenance

meta = provenance(P, ctx.manifest_hash, seed=list(P.seeds))
history = study.history_frame(trained)
results.save_table(history, RESULTS, "history_scratch", meta)
fig = plots.figure_learning_curves(history[history.seed == P.seeds[0]])
save_figure(fig, FIGURES, "learning_curves_scratch")
fig.show()'''),
        md("## Test performance\n\nPredictions thresholded at 0.5 and stacked back into 3D at each scan's own "
           "resolution; Dice, VOE, CV and ASSD (mm, from the manifest's voxel spacing)."),
        code('''per_scan = study.evaluate_nets(P, ctx, {spec: r.state for spec, r in trained.items()})
results.save_table(per_scan, RESULTS, "test_metrics_scratch", meta)
study.summarize_metrics(per_scan).round(3)'''),
        md("## Files written\n\n- `outputs/<profile>/models/seed<k>/<tissue>__scratch/{best,last}.pt`\n"
           "- `outputs/<profile>/results/history_scratch.csv`, `test_metrics_scratch.csv`\n"
           "- `outputs/<profile>/figures/learning_curves_scratch.{html,png}`\n\n"
           "Next: [03_finetune](03_finetune.ipynb) fine-tunes each scratch net to the other two tissues."),
        code(FOOTER),
    ])


def nb03():
    build("03_finetune", [
        md("# 03 · Six fine-tuned networks and Fig. 2\n\nFine-tunes each scratch network to the other two "
           "tissues: B|A(s) starts from the best weights of A(s) and is trained with the same recipe "
           "(learning rate `finetune_lr`). Then all nine networks are evaluated on the test split (Fig. 2)."),
        params_cell(),
        code(SETUP),
        md("## Train the six fine-tuned networks"),
        code('''specs = [spec for seed in P.seeds for spec in study.all_specs(seed)]
trained = study.train_nets(P, ctx, specs, force=force)  # scratch nets are reused from 02 (or trained if missing)
for spec, r in trained.items():
    print(f"{spec.name:7s} seed {spec.seed}: best epoch {r.best_epoch}/{len(r.history)}, "
          f"val loss {r.best_val_loss:.4f}{' (reused)' if r.reused else ''}")'''),
        md("## Learning curves of all nine networks"),
        code('''from kneelib import plots, results
from kneelib.figures import save_figure
from kneelib.provenance import provenance

meta = provenance(P, ctx.manifest_hash, seed=list(P.seeds))
history = study.history_frame(trained)
results.save_table(history, RESULTS, "history_all", meta)
fig = plots.figure_learning_curves(history[history.seed == P.seeds[0]])
save_figure(fig, FIGURES, "learning_curves_all")
fig.show()'''),
        md("## Fig. 2: scratch vs fine-tuned on the test split"),
        code('''per_scan = study.evaluate_nets(P, ctx, {spec: r.state for spec, r in trained.items()})
results.save_table(per_scan, RESULTS, "test_metrics", meta)
summary = study.summarize_metrics(per_scan)
results.save_table(summary, RESULTS, "fig2_performance_table", meta)
fig = plots.figure_performance(per_scan)
save_figure(fig, FIGURES, "fig2_performance")
fig.show()
summary.round(3)'''),
        md("The paper reports (C6) that fine-tuned tibial-cartilage and meniscus nets score worse than their "
           "scratch nets while fine-tuned femoral-cartilage nets score about as well; the claims report "
           "(04, `claims.md`) tests this on the numbers above.\n\n"
           "## Files written\n\n- `outputs/<profile>/models/seed<k>/<tissue>__from_<base>/{best,last}.pt`\n"
           "- `outputs/<profile>/results/test_metrics.csv`, `fig2_performance_table.csv`, `history_all.csv`\n"
           "- `outputs/<profile>/figures/fig2_performance.{html,png}`, `learning_curves_all.{html,png}`\n\n"
           "Next: [04_distances](04_distances.ipynb) measures how far apart the nine networks' weights are."),
        code(FOOTER),
    ])


def nb04():
    build("04_distances", [
        md("# 04 · Distances between the nine networks' weights (Fig. 3a, 3b, 4)\n\n"
           "The paper's measure: the average Euclidean (L2) distance between corresponding convolution kernels "
           "of two networks, per layer group and over the whole network (`kneelib.distances.kernel_distances`; "
           "for every (output, input) channel pair, the L2 norm of the difference of the k x k kernels, averaged; "
           "batch-norm parameters and biases excluded). Beside it, the distance between *untrained* He-initialized "
           "networks: the null any claim about depth has to beat."),
        params_cell(),
        code(SETUP),
        md("## The nine networks\n\nLoaded from 02/03 (trained here if missing, reused when unchanged)."),
        code('''from kneelib import analysis, claims, distance_plots, distances, results
from kneelib.figures import save_figure
from kneelib.provenance import provenance

states = analysis.states_by_seed(P, ctx, force=force)
meta = provenance(P, ctx.manifest_hash, seed=list(P.seeds))
first = states[P.seeds[0]]
print("nets:", list(first))'''),
        md("## Distance tables\n\nEvery table carries a `seed` column; figures show the mean over seeds."),
        code('''tables = analysis.distance_tables(states)
for name in ("scratch_pairs", "finetune", "tissue"):
    results.save_table(tables[name], RESULTS, claims.RESULT_FILES[name], meta)
results.save_json(tables["headline"], RESULTS, "distances_headline", meta)
null = analysis.null_table(P, first["F(s)"])
results.save_table(null, RESULTS, "distances_null", meta)
null.round(5)'''),
        md("## Fig. 3a: scratch vs scratch, per layer group\n\nPaper (C1): distances are larger in shallow "
           "layers and smallest at the latent level. The dashed line is the expected distance between two "
           "untrained He-initialized networks, which itself shrinks with depth as the fan-in grows."),
        code('''fig = distance_plots.figure_group_distances(tables["scratch_pairs"], P.depth, "Fig. 3a: scratch vs scratch",
                                            dict(zip(null.group, null.expected)),
                                            empirical_null=dict(zip(null.group, null.empirical)))
save_figure(fig, FIGURES, "fig3a_scratch_vs_scratch")
fig.show()
tables["scratch_pairs"].pivot_table(index="group", columns="pair", values="distance", sort=False)'''),
        md("## Fig. 3b: each scratch network vs its fine-tuned networks\n\nPaper (C2): largest in the "
           "shallow decoder stage dec_layer1."),
        code('''fig = distance_plots.figure_group_distances(tables["finetune"], P.depth, "Fig. 3b: scratch vs its fine-tuned nets")
save_figure(fig, FIGURES, "fig3b_scratch_vs_finetuned")
fig.show()
tables["finetune"].pivot_table(index="group", columns="pair", values="distance", sort=False)'''),
        md("## Fig. 4: tissue distances in both directions\n\nThe tissue distance between A and B is the mean "
           "of d(A(s), B|A(s)) and d(B(s), A|B(s)); the asymmetry is their difference over that mean."),
        code('''fig = distance_plots.figure_tissue_matrix(tables["tissue"])
save_figure(fig, FIGURES, "fig4_tissue_distances")
fig.show()
tables["tissue"]'''),
        md("## The headline: closer to the base than to the own tissue's scratch net?"),
        code('''headline = tables["headline"][str(P.seeds[0])]
print(f"fine-tuned net to its base scratch net:        {headline['to_base']:.3g}   (paper {headline['paper_to_base']:.3g})")
print(f"fine-tuned net to the scratch net of its tissue: {headline['to_own_scratch']:.3g}   (paper {headline['paper_to_own_scratch']:.3g})")
tissue_paper = distances.PAPER_TISSUE_DISTANCES
tables["tissue"].assign(paper=tables["tissue"].pair.map(tissue_paper))[["seed", "pair", "d_ab", "d_ba", "tissue_distance", "paper", "asymmetry"]]'''),
        md("## Spread across seeds\n\nEvery distance above, as mean, sd and 95% t-interval over the seeds "
           "(`kneelib.analysis.distance_spread`). A difference between two distances means little when their "
           "intervals overlap."),
        code('''spread = analysis.distance_spread(tables)
results.save_table(spread, RESULTS, "distances_seed_spread", meta)
spread[spread.group == "network"].round(4)'''),
        md("## Claims so far\n\nC7 (activations) is added by 05."),
        code('''table = claims.write_claims(P.name, list(P.seeds), f"enc_layer{P.depth}", meta)
table[["id", "paper", "this_run", "holds"]]'''),
        md("## Files written\n\n- `outputs/<profile>/results/distances_scratch_pairs.csv`, `distances_finetune.csv`, "
           "`tissue_distances.csv`, `distances_headline.json`, `distances_null.csv`, `distances_seed_spread.csv`, "
           "`claims.csv`\n"
           "- `outputs/<profile>/figures/fig3a_scratch_vs_scratch`, `fig3b_scratch_vs_finetuned`, "
           "`fig4_tissue_distances` (`.html`, `.png`)\n- `outputs/<profile>/claims.md`\n\n"
           "Next: [05_activations](05_activations.ipynb)."),
        code(FOOTER),
    ])


def nb05():
    build("05_activations", [
        md("# 05 · Activation maps of the nine networks (Fig. 5) and a browser\n\n"
           "For a few test slices, the output of every layer group of every network, reduced to one map per "
           "group (mean absolute activation over channels, upsampled to the slice, min-max normalized per map; "
           "`kneelib.activations.activation_maps`). How much two networks' maps overlap (Pearson correlation, "
           "and IoU of the top-10% regions) is what claim C7 is judged on."),
        params_cell(),
        code(SETUP),
        md("## Maps"),
        code('''from kneelib import activations, analysis, claims, results
from kneelib.figures import save_figure
from kneelib.provenance import provenance

seed = P.seeds[0]
states = analysis.states_by_seed(P, ctx, force=force)
meta = provenance(P, ctx.manifest_hash, seed=list(P.seeds))
images, truth, labels = analysis.activation_inputs(P, ctx, P.activation_slices)
maps = {seed_: {name: activations.activation_maps(study.load_model(P, state), images)
                for name, state in nets.items()} for seed_, nets in states.items()}
print(len(labels), "slices:", labels)'''),
        md("## Fig. 5: the same slice across the nine networks at chosen depths"),
        code('''depths = list(dict.fromkeys(["enc_layer1", f"enc_layer{(P.depth + 1) // 2}", f"enc_layer{P.depth}",
                              f"dec_layer{max(1, P.depth // 2)}", "dec_layer1"]))
fig = activations.figure_activation_grid(maps[seed], images, truth, depths, slice_index=len(labels) // 2)
save_figure(fig, FIGURES, "fig5_activation_maps")
fig.show()'''),
        md("## Overlap of activation regions between networks (C7)"),
        code('''import pandas as pd

overlap = pd.concat([activations.overlap_table(m, "correlation").assign(seed=s) for s, m in maps.items()])
topk = pd.concat([activations.overlap_table(m, "topk_iou").assign(seed=s) for s, m in maps.items()])
results.save_table(overlap, RESULTS, claims.RESULT_FILES["overlap"], meta)
results.save_table(topk, RESULTS, "activation_overlap_topk_iou", meta)
claims.with_tissue_pair(overlap).pivot_table(index="group", columns="tissues", values="value", sort=False).round(3)'''),
        md("## Claims report\n\nAll seven claims, computed from the result tables of 03, 04 and this notebook."),
        code('''from IPython.display import Markdown

table = claims.write_claims(P.name, list(P.seeds), f"enc_layer{P.depth}", meta)
Markdown((paths.profile_dir(P.name) / "claims.md").read_text())'''),
        md("## Browse the maps\n\nPick a slice, a layer group and one or several networks; toggle the "
           "ground-truth outlines. (Interactive in JupyterLab; a static copy in executed notebooks.)"),
        code('''from kneelib.browser import ActivationBrowser

browser = ActivationBrowser(maps[seed], images, truth, labels)
browser.widget'''),
        md("## Files written\n\n- `outputs/<profile>/results/activation_overlap.csv`, "
           "`activation_overlap_topk_iou.csv`, `claims.csv`\n- `outputs/<profile>/figures/fig5_activation_maps.{html,png}`\n"
           "- `outputs/<profile>/claims.md`"),
        code(FOOTER),
    ])


def nb06():
    build("06_controls", [
        md("# 06 · Do the conclusions survive controls?\n\nThe abstract compares single networks with raw weight "
           "distances. Four questions a careful reader asks, answered with numbers:\n\n"
           "1. **Seeds**: every table carries a `seed` column; the claims report gives the spread across seeds.\n"
           "2. **The untrained null**: He initialization already makes deep layers closer (the per-kernel distance "
           "of untrained nets falls as about 2/sqrt(fan-in)); trained distances divided by that null.\n"
           "3. **Hidden-unit permutations**: two nets can compute the same function with channels in another order; "
           "scratch-vs-scratch distances after weight-matching alignment (Ainsworth et al. 2022).\n"
           "4. **Representations**: debiased linear CKA (Kornblith et al. 2019) between the nets' activations, "
           "per depth and layer by layer."),
        params_cell(),
        code(SETUP),
        code('''from kneelib import analysis, claims, controls, distance_plots, results
from kneelib.figures import save_figure
from kneelib.provenance import provenance

states = analysis.states_by_seed(P, ctx, force=force)
meta = provenance(P, ctx.manifest_hash, seed=list(P.seeds))
tables = analysis.distance_tables(states)
null = analysis.null_table(P, states[P.seeds[0]]["F(s)"])'''),
        md("## 2. Distances relative to the untrained null\n\nRatio < 1: training brought the two nets closer "
           "than two random initializations are in that group."),
        code('''null_ratio = controls.null_ratio_table(tables["scratch_pairs"], null)
results.save_table(null_ratio, RESULTS, claims.RESULT_FILES["null_ratio"], meta)
fig = distance_plots.figure_group_distances(null_ratio.assign(distance=null_ratio.ratio), P.depth,
                                            "Scratch vs scratch, relative to the untrained He null (distance / null)")
fig.update_yaxes(title_text="distance / untrained null")
save_figure(fig, FIGURES, "controls_null_ratio")
fig.show()
null_ratio.pivot_table(index="group", columns="seed", values="ratio", sort=False).round(3)'''),
        md("Scale-free variants: relative distance ||w_a - w_b|| / ||w_a|| and cosine distance, per kernel."),
        code('''scale_free = controls.scale_free_tables(states)
results.save_table(scale_free, RESULTS, "controls_scale_free", meta)
scale_free.pivot_table(index="group", columns=["comparison", "scale"], values="distance", sort=False).round(3)'''),
        md("## 3. After aligning hidden units"),
        code('''aligned = controls.aligned_scratch_pairs(states, P.depth, P.base_filters)
results.save_table(aligned, RESULTS, claims.RESULT_FILES["aligned"], meta)
long = aligned.melt(id_vars=["seed", "pair", "group"], value_vars=["raw", "aligned"], var_name="kind",
                    value_name="distance").assign(pair=lambda d: d.pair + " (" + d.kind + ")")
fig = distance_plots.figure_group_distances(long, P.depth, "Scratch vs scratch: raw and after weight-matching alignment",
                                            dict(zip(null.group, null.expected)))
save_figure(fig, FIGURES, "controls_aligned_distances")
fig.show()
aligned.groupby("group", sort=False)[["raw", "aligned"]].mean()'''),
        md("## 4. Representation similarity (debiased linear CKA)"),
        code('''images = analysis.test_images(P, ctx, P.cka_slices)
cka, grams = controls.cka_tables(states, images, P.depth, P.base_filters)
results.save_table(cka, RESULTS, claims.RESULT_FILES["cka"], meta)
per_depth = cka.assign(distance=cka.cka)
fig = distance_plots.figure_group_distances(per_depth[per_depth.comparison != "own_scratch"], P.depth,
                                            "CKA per depth: scratch vs scratch and scratch vs fine-tuned")
fig.update_yaxes(type="linear", title_text="linear CKA (debiased)")
save_figure(fig, FIGURES, "controls_cka_per_depth")
fig.show()
seed = P.seeds[0]
fig = distance_plots.figure_cka_heatmap(controls.cka_heatmap(grams[seed]["F(s)"], grams[seed]["T(s)"], P.depth),
                                        "Layer-by-layer CKA: F(s) (rows) vs T(s) (columns)")
save_figure(fig, FIGURES, "controls_cka_heatmap_F_T")
fig.show()'''),
        md("## Spread of the controls across seeds\n\nMean, sd and 95% t-interval over the seeds of the null "
           "ratios, the aligned distances and the CKA values (`kneelib.spread.seed_summary`)."),
        code('''import pandas as pd

from kneelib.spread import seed_summary

controls_spread = pd.concat([
    seed_summary(null_ratio, ["pair", "group"], ["ratio"], "null_ratio"),
    seed_summary(aligned, ["pair", "group"], ["raw", "aligned"], "aligned"),
    seed_summary(cka.assign(pair=cka.comparison + ": " + cka.pair), ["pair", "group"], ["cka"], "cka"),
], ignore_index=True)
results.save_table(controls_spread, RESULTS, "controls_seed_spread", meta)
controls_spread[controls_spread.group == f"enc_layer{P.depth}"].round(3)'''),
        md("## The claims report with controls"),
        code('''from IPython.display import Markdown

claims.write_claims(P.name, list(P.seeds), f"enc_layer{P.depth}", meta)
Markdown((paths.profile_dir(P.name) / "claims.md").read_text())'''),
        md("## Files written\n\n- `outputs/<profile>/results/controls_null_ratio.csv`, `controls_scale_free.csv`, "
           "`controls_aligned_distances.csv`, `controls_cka.csv`, `controls_seed_spread.csv`, `claims.csv`\n- `outputs/<profile>/figures/"
           "controls_null_ratio`, `controls_aligned_distances`, `controls_cka_per_depth`, `controls_cka_heatmap_F_T`\n\n"
           "Next: [07_policy](07_policy.ipynb)."),
        code(FOOTER),
    ])


def nb07():
    build("07_policy", [
        md("# 07 · The policy the paper proposes (C8): fine-tuning with limited data\n\n"
           "The abstract suggests that tissue pairs with short, symmetric distances suit fine-tuning, and that "
           "depth-dependent learning rates (deeper levels slower) could reduce the data needed. Here, for each "
           "target|source pair and fraction of training subjects: training from scratch, plain fine-tuning from "
           "the source tissue's scratch network, and fine-tuning with level i at lr x decay^(i-1)."),
        params_cell(),
        code(SETUP),
        code('''from kneelib import analysis, claims, distance_plots, policy, results
from kneelib.figures import save_figure
from kneelib.provenance import provenance

meta = provenance(P, ctx.manifest_hash, seed=list(P.seeds))
runs = policy.policy_runs(P)
print(len(runs), "runs:", P.policy_fractions, "of the training subjects,", len(P.policy_pairs), "pairs,",
      len(P.seeds), "seeds")'''),
        md("## Train and evaluate"),
        code('''table = policy.run_policy(P, ctx, runs, force=force)
results.save_table(table, RESULTS, claims.RESULT_FILES["policy"], meta)
summary = policy.policy_summary(table)
fig = distance_plots.figure_policy(summary)
save_figure(fig, FIGURES, "policy_dice_vs_data")
fig.show()
summary.round(3)'''),
        md("## Was the closer source tissue the better one to fine-tune from?\n\nFor each target, the two "
           "sources ranked by test Dice at limited data and by tissue distance (04)."),
        code('''tissue = results.load_table(RESULTS, claims.RESULT_FILES["tissue"])
ranking = policy.source_ranking(table, tissue)
results.save_table(ranking, RESULTS, "policy_source_ranking", meta)
ranking'''),
        md("## Claims report"),
        code('''from IPython.display import Markdown

claims.write_claims(P.name, list(P.seeds), f"enc_layer{P.depth}", meta)
Markdown((paths.profile_dir(P.name) / "claims.md").read_text())'''),
        md("## Files written\n\n- `outputs/<profile>/models/policy/...`\n- `outputs/<profile>/results/policy_results.csv`, "
           "`policy_source_ranking.csv`, `claims.csv`\n- `outputs/<profile>/figures/policy_dice_vs_data.{html,png}`\n"
           "- `outputs/<profile>/claims.md`"),
        code(FOOTER),
    ])


if __name__ == "__main__":
    for build_notebook in (nb01, nb02, nb03, nb04, nb05, nb06, nb07):
        build_notebook()
