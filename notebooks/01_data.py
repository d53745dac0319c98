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
# # 01 · Data: knee DESS scans, the split, and the tissues
#
# Creates (synthetic phantoms) or validates (real OAI / IWOAI 2019 data) the scans for the chosen
# profile, and shows what the networks will learn from: example sagittal slices with the masks of the
# profile's tissues (`tissues`; the paper's femoral cartilage, tibial cartilage and meniscus by default),
# tissue volumes, and the subject-wise split.

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
# ## The split
#
# Subjects are split 60/14/14 (120/28/28 scans) in the paper; a subject's two timepoints (V00, V01)
# always stay in the same split.

# %%
from kneelib.core import registry, results
from kneelib.core.provenance import provenance
from kneelib.report import plots

meta = provenance(P, ctx.manifest_hash, seed=P.data_seed)
splits = plots.split_table(ctx)
results.save_table(splits, RESULTS, registry.table("data_split"), meta)
splits

# %% [markdown]
# ## Example slices
#
# One scan per split, at the sagittal slice with the most labelled tissue.

# %%
from kneelib.report.export import save_figure

fig = plots.figure_example_slices(ctx, tissues=P.tissues)
save_figure(fig, FIGURES, registry.figure("data_example_slices"))
fig.show()

# %% [markdown]
# ## Tissue volumes
#
# Volumes in mL from each scan's voxel spacing (manifest).

# %%
volumes = plots.tissue_volume_table(ctx, P.tissues)
results.save_table(volumes, RESULTS, registry.table("data_tissue_volumes"), meta)
fig = plots.figure_tissue_volumes(volumes)
save_figure(fig, FIGURES, registry.figure("data_tissue_volumes"))
fig.show()
volumes.groupby(["split", "tissue"]).volume_ml.agg(["mean", "std", "count"]).round(2)

# %% [markdown]
# ## Can a threshold do the job?
#
# The best single intensity window's Dice per tissue on a few training scans. Values well below the
# networks' Dice mean a network has to use spatial context, so the experiment means something on this
# data.

# %%
from kneelib.data.context import threshold_baseline

threshold = threshold_baseline(ctx, n_scans=2, tissues=P.tissues)
results.save_table(threshold, RESULTS, registry.table("data_threshold_baseline"), meta)
threshold.pivot(index="scan_id", columns="tissue", values="best_window_dice").round(3)

# %% [markdown]
# ## Files written
#
# - `outputs/<profile>/results/data_split.csv`, `data_tissue_volumes.csv`,
#   `data_threshold_baseline.csv` (each with `.meta.json` provenance)
# - `outputs/<profile>/figures/data_example_slices.{html,png}`, `data_tissue_volumes.{html,png}`
#
# Next: [02_scratch](02_scratch.ipynb) trains one scratch network per tissue.

# %%
from kneelib.report.notebook import notebook_footer

notebook_footer()
