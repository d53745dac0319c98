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
# # 07 · The policy the paper proposes (C8): fine-tuning with limited data
#
# The abstract suggests that tissue pairs with short, symmetric distances suit fine-tuning, and that
# depth-dependent learning rates (deeper levels slower) could reduce the data needed. Here, for each
# target|source pair and fraction of training subjects: training from scratch, plain fine-tuning from
# the source tissue's scratch network, and fine-tuning with level i at lr x decay^(i-1).

# %% tags=["parameters"]
profile = "demo"   # tiny | demo | paper (kneelib.core.profiles)
data_root = ""     # real IWOAI data root (train/ valid/ test/); "" uses $KNEELIB_DATA_ROOT, else phantoms
overrides = {}     # profile fields to override, e.g. {"max_epochs": 5, "seeds": [0, 1, 2]}
force = False      # retrain networks even when a finished run with the same inputs exists

# %%
from kneelib.report.notebook import notebook_setup

# Derived here, after papermill has injected the parameters.
P, ctx, FIGURES, RESULTS = notebook_setup(profile, data_root, overrides)

# %%
from kneelib.compare import distance_tables
from kneelib.core import results
from kneelib.core.provenance import provenance
from kneelib.report import distance_plots
from kneelib.report.export import save_figure
from kneelib.study import claims, nine_nets, policy

meta = provenance(P, ctx.manifest_hash, seed=list(P.seeds))
runs = policy.policy_runs(P)
print(len(runs), "runs:", P.policy_fractions, "of the training subjects,", len(P.policy_pairs), "pairs,",
      len(P.seeds), "seeds")

# %% [markdown]
# ## Train and evaluate

# %%
table = policy.run_policy(P, ctx, runs, force=force)
results.save_table(table, RESULTS, claims.RESULT_FILES["policy"], meta)
summary = policy.policy_summary(table)
fig = distance_plots.figure_policy(summary)
save_figure(fig, FIGURES, "policy_dice_vs_data")
fig.show()
summary.round(3)

# %% [markdown]
# ## C8 both ways: same epochs, and matched optimizer steps
#
# With fewer subjects an epoch has fewer slices, so at the same epochs a limited-data run also takes fewer optimizer steps, which favours fine-tuning (it starts from a trained net). The *matched* runs (dashed above) stretch the epoch cap, the patience and the lr-decay interval by the ratio of all to subset training scans, so every run may take as many steps as a full-data run (`kneelib.study.policy.matched_steps`).

# %%
import pandas as pd

pd.DataFrame([{"steps": steps, "C8 margin (depth-lr fine-tune minus scratch, Dice)": r.margin, "value": r.value}
              for steps in P.policy_steps for r in [claims.c8_policy(table, steps)]])

# %%
table.groupby(["steps", "strategy", "fraction"], as_index=False)[["epochs", "optimizer_steps", "dice"]].mean().round(3)

# %% [markdown]
# ## Was the closer source tissue the better one to fine-tune from?
#
# For each target, the two sources ranked by test Dice at limited data and by tissue distance
# (computed here as in 04).

# %%
states = nine_nets.states_by_seed(P, ctx)  # the source nets' tissue distances, as in 04
tissue = distance_tables.distance_tables(states, tissues=P.tissues)["tissue"]
ranking = policy.source_ranking(table, tissue)
results.save_table(ranking, RESULTS, "policy_source_ranking", meta)
ranking

# %% [markdown]
# ## Claims report

# %%
from IPython.display import Markdown

claims.write_claims(P.name, list(P.seeds), f"enc_layer{P.depth}", meta)
Markdown(claims.claims_md_path(P.name).read_text())

# %% [markdown]
# ## Files written
#
# - `outputs/<profile>/models/policy/...` (matched-steps runs end in `_matched`)
# - `outputs/<profile>/results/policy_results.csv`, `policy_source_ranking.csv`, `claims.csv`
# - `outputs/<profile>/figures/policy_dice_vs_data.{html,png}`
# - `outputs/<profile>/claims.md`

# %%
from kneelib.report.notebook import notebook_footer

notebook_footer()
