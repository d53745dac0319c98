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
# # 03 · The fine-tuned networks and Fig. 2
#
# Fine-tunes each scratch network to every other tissue: B|A(s) starts from the best weights of
# A(s) and is trained with the same recipe (learning rate `finetune_lr`); N tissues give N (N - 1)
# fine-tuned nets, the paper's three give six. Then all networks (nine for the paper's tissues) are
# evaluated on the test split (Fig. 2).

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
# ## Train the fine-tuned networks

# %%
from kneelib.nets import evaluate
from kneelib.study import nine_nets

specs = [spec for seed in P.seeds for spec in nine_nets.all_specs(seed, P.tissues)]
trained = nine_nets.train_nets(P, ctx, specs, force=force)  # scratch nets are reused from 02 (or trained if missing)
evaluate.training_summary(trained)

# %% [markdown]
# ## Learning curves of all networks

# %%
from kneelib.core import registry, results
from kneelib.core.provenance import provenance
from kneelib.report import plots
from kneelib.report.export import save_figure

meta = provenance(P, ctx.manifest_hash, seed=list(P.seeds))
history = evaluate.history_frame(trained)
results.save_table(history, RESULTS, registry.table("history_all"), meta)
fig = plots.figure_learning_curves(history[history.seed == P.seeds[0]])
save_figure(fig, FIGURES, registry.figure("learning_curves_all"))
fig.show()

# %% [markdown]
# ## Fig. 2: scratch vs fine-tuned on the test split

# %%
from kneelib.study import analyses

per_scan = analyses.evaluation(P, ctx, analyses.states_of(trained))
results.save_table(per_scan, RESULTS, registry.table("per_scan"), meta)
summary = evaluate.summarize_metrics(per_scan)
results.save_table(summary, RESULTS, registry.table("fig2_performance_table"), meta)
fig = plots.figure_performance(per_scan)
save_figure(fig, FIGURES, registry.figure("fig2_performance"))
fig.show()
summary.round(3)

# %% [markdown]
# The paper reports (C6) that fine-tuned tibial-cartilage and meniscus nets score worse than their
# scratch nets while fine-tuned femoral-cartilage nets score about as well; the claims report (04,
# `claims.md`) tests this on the numbers above.
#
# ## Files written
#
# - `outputs/<profile>/models/seed<k>/<tissue>__from_<base>/best.pt` (and `last.pt`, to resume, while a net trains)
# - `outputs/<profile>/results/test_metrics.csv`, `fig2_performance_table.csv`, `history_all.csv`
# - `outputs/<profile>/figures/fig2_performance.{html,png}`, `learning_curves_all.{html,png}`
#
# Next: [04_distances](04_distances.ipynb) measures how far apart the networks' weights are.

# %%
from kneelib.report.notebook import notebook_footer

notebook_footer()
