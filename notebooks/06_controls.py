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
from kneelib.report import distance_plots
from kneelib.report.export import save_figure
from kneelib.study import analyses, controls, nine_nets

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
#   `controls_aligned_distances.csv`, `controls_cka.csv`, `controls_seed_spread.csv`, `claims.csv`
# - `outputs/<profile>/figures/controls_null_ratio`, `controls_aligned_distances`,
#   `controls_cka_per_depth`, `controls_cka_heatmap_scratch`
#
# Next: [07_policy](07_policy.ipynb).

# %%
from kneelib.report.notebook import notebook_footer

notebook_footer()
