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
# # 02 · One network per tissue, from scratch
#
# Trains one U-Net per tissue of the profile (`tissues`): by default the paper's F(s), T(s) and M(s), the
# femoral-cartilage, tibial-cartilage and meniscus nets, from He-normal initialization with the profile's recipe (soft-Dice loss, Adam, step decay, early stopping
# on validation loss), then evaluates them on the test split. Finished networks are reused when
# config, data and code are unchanged.

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
# ## Train
#
# The weights with the lowest validation soft-Dice loss are each network's result.

# %%
from kneelib.nets import evaluate
from kneelib.study import nine_nets

specs = [spec for seed in P.seeds for spec in nine_nets.scratch_specs(seed, P.tissues)]
trained = nine_nets.train_nets(P, ctx, specs, force=force)
evaluate.training_summary(trained)

# %% [markdown]
# ## Learning curves

# %%
from kneelib.core import registry, results
from kneelib.core.provenance import provenance
from kneelib.report import plots
from kneelib.report.export import save_figure

meta = provenance(P, ctx.manifest_hash, seed=list(P.seeds))
history = evaluate.history_frame(trained)
results.save_table(history, RESULTS, registry.table("history_scratch"), meta)
fig = plots.figure_learning_curves(history[history.seed == P.seeds[0]])
save_figure(fig, FIGURES, registry.figure("learning_curves_scratch"))
fig.show()

# %% [markdown]
# ## Test performance
#
# Predictions thresholded at 0.5 and stacked back into 3D at each scan's own resolution; Dice, VOE, CV
# and ASSD (mm, from the manifest's voxel spacing).

# %%
per_scan = evaluate.evaluate_nets(P, ctx, {spec: r.state for spec, r in trained.items()})
results.save_table(per_scan, RESULTS, registry.table("test_metrics_scratch"), meta)
evaluate.summarize_metrics(per_scan).round(3)

# %% [markdown]
# ## Files written
#
# - `outputs/<profile>/models/seed<k>/<tissue>__scratch/best.pt` (and `last.pt`, to resume, while a net trains)
# - `outputs/<profile>/results/history_scratch.csv`, `test_metrics_scratch.csv`
# - `outputs/<profile>/figures/learning_curves_scratch.{html,png}`
#
# Next: [03_finetune](03_finetune.ipynb) fine-tunes each scratch net to every other tissue.

# %%
from kneelib.report.notebook import notebook_footer

notebook_footer()
