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
# # 05 · Activation maps of the networks (Fig. 5) and a browser
#
# For a few test slices, the output of every layer group of every network, reduced to one map per
# group (mean absolute activation over channels, upsampled to the slice, min-max normalized per map;
# `kneelib.compare.activations.activation_maps`). How much two networks' maps overlap (Pearson
# correlation, and IoU of the top-10% regions) is what claim C7 is judged on.

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
# ## Maps

# %%
from kneelib.core import registry, results
from kneelib.core.provenance import provenance
from kneelib.report import activation_plots
from kneelib.report.export import save_figure
from kneelib.study import analyses, claims, nine_nets

seed = P.seeds[0]
states = nine_nets.states_by_seed(P, ctx, force=force)
meta = provenance(P, ctx.manifest_hash, seed=list(P.seeds))
acts = analyses.activations(P, ctx, states)  # maps of every net and seed, and their overlaps
images, truth, labels, maps = acts.images, acts.truth, acts.labels, acts.maps
print(len(labels), "slices:", labels)

# %% [markdown]
# ## Fig. 5: the same slice across the networks at chosen depths

# %%
depths = list(dict.fromkeys(["enc_layer1", f"enc_layer{(P.depth + 1) // 2}", f"enc_layer{P.depth}",
                              f"dec_layer{max(1, P.depth // 2)}", "dec_layer1"]))
fig = activation_plots.figure_activation_grid(maps[seed], images, truth, depths, slice_index=len(labels) // 2)
save_figure(fig, FIGURES, registry.figure("fig5_activation_maps"))
fig.show()

# %% [markdown]
# ## Overlap of activation regions between networks (C7)

# %%
results.save_table(acts.overlap, RESULTS, registry.table("overlap"), meta)
results.save_table(acts.overlap_topk_iou, RESULTS, registry.table("overlap_topk_iou"), meta)
claims.with_tissue_pair(acts.overlap).pivot_table(index="group", columns="tissues", values="value", sort=False).round(3)

# %% [markdown]
# ## Claims report
#
# Every claim (C1-C8, C8m, C8b), computed from the result tables of 03, 04 and this notebook.

# %%
from IPython.display import Markdown

from kneelib.report import claims_report

table = claims_report.write_claims(P.name, list(P.seeds), f"enc_layer{P.depth}", meta, ctx.source)
Markdown(claims_report.claims_md_path(P.name).read_text())

# %% [markdown]
# ## Browse the maps
#
# Pick a slice, a layer group and one or several networks; toggle the ground-truth outlines.
# (Interactive in JupyterLab; a static copy in executed notebooks.)

# %%
from kneelib.report.browser import ActivationBrowser

browser = ActivationBrowser(maps[seed], images, truth, labels)
browser.widget

# %% [markdown]
# ## Files written
#
# - `outputs/<profile>/results/activation_overlap.csv`, `activation_overlap_topk_iou.csv`,
#   `claims.csv`
# - `outputs/<profile>/figures/fig5_activation_maps.{html,png}`
# - `outputs/<profile>/claims.md`

# %%
from kneelib.report.notebook import notebook_footer

notebook_footer()
