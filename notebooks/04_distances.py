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
# # 04 · Distances between the networks' weights (Fig. 3a, 3b, 4)
#
# The paper's measure: the average Euclidean (L2) distance between corresponding convolution kernels
# of two networks, per layer group and over the whole network
# (`kneelib.compare.distances.kernel_distances`; for every (output, input) channel pair, the L2 norm
# of the difference of the k x k kernels, averaged; batch-norm parameters and biases excluded). Beside
# it, the distance between *untrained* He-initialized networks: the null any claim about depth has to
# beat.

# %% tags=["parameters"]
profile = "demo"   # tiny | demo | paper_smoke | paper (kneelib.core.profiles)
data_root = ""     # real IWOAI data root (train/ valid/ test/); "" uses $KNEELIB_DATA_ROOT, else phantoms
overrides = {}     # profile fields to override, e.g. {"max_epochs": 5, "seeds": [0, 1, 2]}
force = False      # retrain networks even when a finished run with the same inputs exists

# %%
from kneelib.report.notebook import notebook_setup

# Derived here, after papermill has injected the parameters.
P, ctx, FIGURES, RESULTS = notebook_setup(profile, data_root, overrides)

# %% [markdown]
# ## The networks
#
# One scratch net per tissue and one per ordered pair of tissues (nine for the paper's three), loaded
# from 02/03 (trained here if missing, reused when unchanged).

# %%
from kneelib import names
from kneelib.compare import distance_tables
from kneelib.core import registry, results
from kneelib.core.provenance import provenance
from kneelib.report import claims_report, distance_plots
from kneelib.report.export import save_figure
from kneelib.study import analyses, nine_nets

states = nine_nets.states_by_seed(P, ctx, force=force)
meta = provenance(P, ctx.manifest_hash, seed=list(P.seeds))
first = states[P.seeds[0]]
print("nets:", list(first))

# %% [markdown]
# ## Distance tables
#
# Every table carries a `seed` column; figures show the mean over seeds.

# %%
tables = analyses.distances(P, states)
for name in ("scratch_pairs", "finetune", "tissue", "distances_null"):
    results.save_table(tables[name], RESULTS, registry.table(name), meta)
results.save_json(tables["headline"], RESULTS, registry.table("headline"), meta)
null = tables["distances_null"]
null.round(5)

# %% [markdown]
# ## Fig. 3a: scratch vs scratch, per layer group
#
# Paper (C1): distances are larger in shallow layers and smallest at the latent level. The dashed line
# is the expected distance between two untrained He-initialized networks, which itself shrinks with
# depth as the fan-in grows.

# %%
fig = distance_plots.figure_group_distances(tables["scratch_pairs"], P.depth, "Fig. 3a: scratch vs scratch",
                                            dict(zip(null.group, null.expected)),
                                            empirical_null=dict(zip(null.group, null.empirical)))
save_figure(fig, FIGURES, registry.figure("fig3a_scratch_vs_scratch"))
fig.show()
tables["scratch_pairs"].pivot_table(index="group", columns="pair", values="distance", sort=False)

# %% [markdown]
# ## Fig. 3b: each scratch network vs its fine-tuned networks
#
# Paper (C2): largest in the shallow decoder stage dec_layer1.

# %%
fig = distance_plots.figure_group_distances(tables["finetune"], P.depth, "Fig. 3b: scratch vs its fine-tuned nets")
save_figure(fig, FIGURES, registry.figure("fig3b_scratch_vs_finetuned"))
fig.show()
tables["finetune"].pivot_table(index="group", columns="pair", values="distance", sort=False)

# %% [markdown]
# ## Fig. 4: tissue distances in both directions
#
# The tissue distance between A and B is the mean of d(A(s), B|A(s)) and d(B(s), A|B(s)); the
# asymmetry is their difference over that mean.

# %%
fig = distance_plots.figure_tissue_matrix(tables["tissue"])
save_figure(fig, FIGURES, registry.figure("fig4_tissue_distances"))
fig.show()
tables["tissue"]

# %% [markdown]
# ## The headline: closer to the base than to the own tissue's scratch net?

# %%
headline = tables["headline"][str(P.seeds[0])]
print(f"fine-tuned net to its base scratch net:        {headline['to_base']:.3g}   (paper {headline['paper_to_base']:.3g})")
print(f"fine-tuned net to the scratch net of its tissue: {headline['to_own_scratch']:.3g}   (paper {headline['paper_to_own_scratch']:.3g})")
tissue_paper = names.PAPER_TISSUE_DISTANCES
tables["tissue"].assign(paper=tables["tissue"].pair.map(tissue_paper))[["seed", "pair", "d_ab", "d_ba", "tissue_distance", "paper", "asymmetry"]]

# %% [markdown]
# ## Spread across seeds
#
# Every distance above, as mean, sd and 95% t-interval over the seeds
# (`kneelib.compare.distance_tables.distance_spread`). A difference between two distances means little
# when their intervals overlap.

# %%
spread = distance_tables.distance_spread(tables)
results.save_table(spread, RESULTS, registry.table("distances_seed_spread"), meta)
spread[spread.group == "network"].round(4)

# %% [markdown]
# ## Claims so far
#
# C7 (activations) is added by 05.

# %%
table = claims_report.write_claims(P.name, list(P.seeds), f"enc_layer{P.depth}", meta, ctx.source)
table[["id", "paper", "this_run", "effect", "ci_low", "ci_high", "verdict"]]

# %% [markdown]
# ## Files written
#
# - `outputs/<profile>/results/distances_scratch_pairs.csv`, `distances_finetune.csv`,
#   `tissue_distances.csv`, `distances_headline.json`, `distances_null.csv`,
#   `distances_seed_spread.csv`, `claims.csv`
# - `outputs/<profile>/figures/fig3a_scratch_vs_scratch`, `fig3b_scratch_vs_finetuned`,
#   `fig4_tissue_distances` (`.html`, `.png`)
# - `outputs/<profile>/claims.md`
#
# Next: [05_activations](05_activations.ipynb).

# %%
from kneelib.report.notebook import notebook_footer

notebook_footer()
