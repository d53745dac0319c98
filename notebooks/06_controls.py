# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 06 · Do the conclusions survive controls?
#
# The abstract compares single networks with raw weight distances. A careful reader asks whether the
# conclusions survive other seeds (every table here carries a `seed` column, and the last section
# gives the spread across seeds) and three controls:
#
# 1. **The untrained null**: He initialization already makes deep layers closer (the per-kernel
#    distance of untrained nets falls as about 2/sqrt(fan-in)); trained distances divided by that
#    null.
# 2. **Hidden-unit permutations**: two nets can compute the same function with channels in another
#    order; scratch-vs-scratch distances after weight-matching alignment (Ainsworth et al. 2022).
# 3. **Representations**: debiased linear CKA (Kornblith et al. 2019) between the nets' activations,
#    per depth and layer by layer.
# 4. **Null worlds**: every distance and activation claim's input table recomputed where nothing was
#    learned, so that a claim which holds there can be read as a property of the init.
# 5. **Init and drift per layer**: how far training moved each layer group from where it started, and
#    how much of the scratch nets' distance their inits explain.

# %% tags=["parameters"]
profile = "demo"   # tiny | demo | paper_smoke | paper (kneelib.core.profiles)
data_root = ""     # real IWOAI data root (train/ valid/ test/); "" uses $KNEELIB_DATA_ROOT, else phantoms
overrides = {}     # profile fields to override, e.g. {"max_epochs": 5, "seeds": [0, 1, 2]}
force = False      # retrain networks even when a finished run with the same inputs exists

# %%
from kneelib.report.notebook import notebook_setup

# Derived here, after papermill has injected the parameters.
P, ctx, FIGURES, RESULTS = notebook_setup(profile, data_root, overrides)

# %%
from kneelib import names
from kneelib.core import registry, results
from kneelib.core.provenance import provenance
from kneelib.report import distance_plots, init_drift_plots
from kneelib.report.export import save_figure
from kneelib.study import analyses, controls, init_drift, nine_nets, null_world

states = nine_nets.states_by_seed(P, ctx, force=force)
meta = provenance(P, ctx.manifest_hash, seed=list(P.seeds))
dist = analyses.distances(P, states)  # 04's scratch-pair distances and untrained null
null = dist["distances_null"]
control = analyses.controls(P, ctx, states, dist)  # every table of this notebook, drawn section by section below
scratch = names.scratch_nets(P.tissues)  # F(s), T(s), M(s) for the paper's tissues

# %% [markdown]
# ## 1. Distances relative to the untrained null
#
# How to read the ratio: two independently initialized nets have uncorrelated kernels and training does not align their hidden units, so the distance follows the weights' norms: a ratio below 1 means the weights shrank in that group, above 1 that they grew. It does not say that training brought the nets closer to shared kernels; the alignment below, judged against the aligned distance of untrained nets, asks that.

# %%
null_ratio = control.null_ratio
results.save_table(null_ratio, RESULTS, registry.table("null_ratio"), meta)
fig = distance_plots.figure_group_distances(null_ratio.assign(distance=null_ratio.ratio), P.depth,
                                            "Scratch vs scratch, relative to the untrained He null (distance / null)")
fig.update_yaxes(title_text="distance / untrained null")
save_figure(fig, FIGURES, registry.figure("controls_null_ratio"))
fig.show()
null_ratio.pivot_table(index="group", columns="seed", values="ratio", sort=False).round(3)

# %% [markdown]
# Scale-free variants: relative distance ||w_a - w_b|| / ||w_a|| and cosine distance, per kernel.

# %%
scale_free = control.scale_free
results.save_table(scale_free, RESULTS, registry.table("scale_free"), meta)
scale_free.pivot_table(index="group", columns=["comparison", "scale"], values="distance", sort=False).round(3)

# %% [markdown]
# ## 2. After aligning hidden units

# %%
aligned = control.aligned
results.save_table(aligned, RESULTS, registry.table("aligned"), meta)
long = aligned.melt(id_vars=["seed", "pair", "group"], value_vars=["raw", "aligned"], var_name="kind",
                    value_name="distance").assign(pair=lambda d: d.pair + " (" + d.kind + ")")
fig = distance_plots.figure_group_distances(long, P.depth, "Scratch vs scratch: raw and after weight-matching alignment",
                                            dict(zip(null.group, null.expected)))
save_figure(fig, FIGURES, registry.figure("controls_aligned_distances"))
fig.show()
aligned.groupby("group", sort=False)[["raw", "aligned"]].mean()

# %% [markdown]
# ## 3. Representation similarity (debiased linear CKA)

# %%
cka, grams = control.cka, control.grams
results.save_table(cka, RESULTS, registry.table("cka"), meta)
per_depth = cka.assign(distance=cka.cka)
fig = distance_plots.figure_group_distances(per_depth[per_depth.comparison != "own_scratch"], P.depth,
                                            "CKA per depth: scratch vs scratch and scratch vs fine-tuned")
fig.update_yaxes(type="linear", title_text="linear CKA (debiased)")
save_figure(fig, FIGURES, registry.figure("controls_cka_per_depth"))
fig.show()
seed = P.seeds[0]
# The first two tissues' scratch nets: F(s) vs T(s) for the paper's.
fig = distance_plots.figure_cka_heatmap(controls.cka_heatmap(grams[seed][scratch[0]], grams[seed][scratch[1]], P.depth),
                                        f"Layer-by-layer CKA: {scratch[0]} (rows) vs {scratch[1]} (columns)")
save_figure(fig, FIGURES, registry.figure("controls_cka_heatmap_scratch"))
fig.show()

# %% [markdown]
# ## Spread of the controls across seeds
#
# Mean, sd and 95% t-interval over the seeds of the null ratios, the aligned distances and the CKA
# values (`kneelib.study.analyses.controls_spread`, from `kneelib.compare.spread.seed_summary`).

# %%
controls_spread = analyses.controls_spread(control)
results.save_table(controls_spread, RESULTS, registry.table("controls_seed_spread"), meta)
controls_spread[controls_spread.group == f"enc_layer{P.depth}"].round(3)

# %% [markdown]
# ## 4. Null worlds: the claims where nothing was learned
#
# Two independently He-initialized nets are not "equally far apart" at every depth: their per-kernel
# distance is set by the init scale alone, about 1.945 / sqrt(C_in) for a 3x3 kernel with C_in input
# channels (`docs/reference.md`, "The distance and its null"). The deepest levels have the most input
# channels, so the latent level is already the closest pair of levels before the first step, and a
# depth claim such as C1 can hold by construction. Each claim is therefore also evaluated in a world
# built from the same seeds where nothing was learned (`kneelib.study.null_world`):
#
# - **Untrained world**, for the scratch-vs-scratch claims and their controls (C1, against the null,
#   after alignment, CKA), the activation claim (C7) and CKA: every scratch net is its own init,
#   regenerated from its seed exactly as training built it; every fine-tuned net B|A(s) is A(s)'s init
#   moved by a random displacement as large, layer by layer, as the real fine-tune's.
# - **Displaced world**, for the fine-tune claims (C2-C5): scratch nets as trained; every fine-tuned net
#   is its trained base moved by such a random displacement. Real and null fine-tunes move each
#   convolution weight equally far; only the direction differs, random in the null.
#
# Biases and batch-norm parameters, which no distance reads, stay where the null fine-tune starts. The
# tables are written in the claim inputs' formats as `results/null_world_<stem>`; the claims report
# reads them for each claim's null verdict. Dice claims have no null world.

# %%
inits = null_world.init_states(P, states)  # every net's start, regenerated from its seed
null_tables = null_world.null_claim_tables(P, ctx, states, dist, inits)
results.save_table(null_tables["scratch_pairs"], RESULTS, registry.table("null_world_scratch_pairs"), meta)
results.save_table(null_tables["null_ratio"], RESULTS, registry.table("null_world_null_ratio"), meta)
results.save_table(null_tables["aligned"], RESULTS, registry.table("null_world_aligned"), meta)
results.save_table(null_tables["overlap"], RESULTS, registry.table("null_world_overlap"), meta)
results.save_table(null_tables["cka"], RESULTS, registry.table("null_world_cka"), meta)
results.save_table(null_tables["finetune"], RESULTS, registry.table("null_world_finetune"), meta)
results.save_json(null_tables["headline"]["by_seed"], RESULTS, registry.table("null_world_headline"), meta)
results.save_table(null_tables["tissue"], RESULTS, registry.table("null_world_tissue"), meta)
assert set(null_tables) == set(registry.NULL_INPUTS)  # every null table the claims report reads is saved

# %% [markdown]
# ## 5. Init and drift per layer
#
# Per layer group, over its convolution weights: the norm at the start ||w0|| (a scratch net's He init;
# for a fine-tuned net, its base's trained weights), the drift ||w - w0|| and the norm growth
# ||w|| / ||w0||. For two scratch nets the squared distance splits exactly into the inits' part
# ||w0a - w0b||^2, the drifts' part ||da - db||^2 and a cross term 2 <w0a - w0b, da - db>
# (`kneelib.compare.init_drift`). This is a Frobenius norm over the whole group, on squares because
# only squares add; the suite's kernel distance averages per-kernel norms instead, so the shares say
# which part sets a group's distance, not its exact value.
#
# How to read it: where drift / init norm is small and the init share of d^2 is near 1, a
# scratch-vs-scratch distance is the init's, and its depth profile (C1) is the He null's. C1 follows
# training only if the group with the smallest distance changes between init and the end of training
# (the table after the figure), which needs a drift comparable to the init norm. For C2, the fine-tuned
# nets' relative displacement per group says where fine-tuning moved the weights most.

# %%
drift = init_drift.drift_table(P, states, inits)
pair_split = init_drift.scratch_pair_decomposition(P, states, inits)
results.save_table(drift, RESULTS, registry.table("init_drift"), meta)
results.save_table(pair_split, RESULTS, registry.table("init_drift_scratch_pairs"), meta)
fig = init_drift_plots.figure_init_drift(init_drift.drift_summary(drift, pair_split), P.depth,
                                         "Drift per layer group, and the inits' share of the scratch pairs' d^2")
save_figure(fig, FIGURES, registry.figure("init_drift"))
fig.show()
by_group = init_drift.reread_by_group(drift, dist["scratch_pairs"], null_tables["scratch_pairs"])
by_group.groupby("group", sort=False).mean(numeric_only=True).drop(columns="seed").round(4)

# %% [markdown]
# C1 at init and after training, per seed: the group with the smallest mean scratch-pair distance and
# C1's margin, (smallest other group - latent) / latent (> 0: the latent level is the smallest).

# %%
init_drift.c1_at_init_and_trained(by_group, f"enc_layer{P.depth}").round(4)

# %% [markdown]
# ## The claims report with controls

# %%
from IPython.display import Markdown

from kneelib.report import claims_report

claims_report.write_claims(P.name, list(P.seeds), f"enc_layer{P.depth}", meta, ctx.source)
Markdown(claims_report.claims_md_path(P.name).read_text())

# %% [markdown]
# ## Files written
#
# - `outputs/<profile>/results/controls_null_ratio.csv`, `controls_scale_free.csv`,
#   `controls_aligned_distances.csv`, `controls_cka.csv`, `controls_seed_spread.csv`, `init_drift.csv`,
#   `init_drift_scratch_pairs.csv`, `claims.csv`, and the null worlds' tables `null_world_*.csv` and
#   `null_world_distances_headline.json`
# - `outputs/<profile>/figures/controls_null_ratio`, `controls_aligned_distances`,
#   `controls_cka_per_depth`, `controls_cka_heatmap_scratch`, `init_drift`
#
# Next: [07_policy](07_policy.ipynb).

# %%
from kneelib.report.notebook import notebook_footer

notebook_footer()
