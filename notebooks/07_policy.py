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
profile = "demo"   # tiny | demo | paper_smoke | paper (kneelib.core.profiles)
data_root = ""     # real IWOAI data root (train/ valid/ test/); "" uses $KNEELIB_DATA_ROOT, else phantoms
overrides = {}     # profile fields to override, e.g. {"max_epochs": 5, "seeds": [0, 1, 2]}
force = False      # retrain networks even when a finished run with the same inputs exists

# %%
from kneelib.report.notebook import notebook_setup

# Derived here, after papermill has injected the parameters.
P, ctx, FIGURES, RESULTS = notebook_setup(profile, data_root, overrides)

# %%
from kneelib.core import registry, results
from kneelib.core.provenance import provenance
from kneelib.report import distance_plots
from kneelib.report.export import save_figure
from kneelib.study import analyses, claims, nine_nets, policy

meta = provenance(P, ctx.manifest_hash, seed=list(P.seeds))
runs = policy.policy_runs(P)
print(len(runs), "runs:", P.policy_fractions, "of the training subjects,", len(P.policy_pairs), "pairs,",
      len(P.seeds), "seeds")

# %% [markdown]
# ## Train and evaluate

# %%
table = analyses.policy_sweep(P, ctx, force=force)  # the runs above
results.save_table(table, RESULTS, registry.table("policy"), meta)
summary = policy.policy_summary(table)
fig = distance_plots.figure_policy(summary)
save_figure(fig, FIGURES, registry.figure("policy_dice_vs_data"))
fig.show()
summary.round(3)

# %% [markdown]
# ## C8 and its relatives: same epochs, and matched optimizer steps
#
# The abstract's proposal is depth-dependent learning rates, so C8 compares depth-lr fine-tuning with *plain* fine-tuning from the same source; C8s compares it with training from scratch (fine-tuning helps with little data, a different statement), C8m does so at matched optimizer steps, and C8f asks whether femoral cartilage keeps a larger share of its full-data Dice than the other targets when fine-tuned with less data. The margins below pool every seed; the claims report gives each its interval over seeds and test subjects.
#
# With fewer subjects an epoch has fewer slices, so at the same epochs a limited-data run also takes fewer optimizer steps, which favours fine-tuning (it starts from a trained net). The *matched* runs (dashed above) stretch the epoch cap, the patience and the lr-decay interval by the ratio of all to subset training scans, so every run may take as many steps as a full-data run (`kneelib.study.policy.matched_steps`).

# %%
import pandas as pd

pd.DataFrame([{"claim": cid, "margin (Dice, all seeds pooled)": r.margin, "value": r.value}
              for cid, r in [("C8: depth-lr vs plain fine-tune", claims.c8_depth_lr(table)),
                             ("C8s: depth-lr fine-tune vs scratch", claims.c8_vs_scratch(table)),
                             ("C8m: the same at matched steps", claims.c8_vs_scratch(table, "matched")),
                             ("C8f: femoral cartilage keeps more of its Dice", claims.c8f_femoral_less_data(table))]])

# %%
table.groupby(["steps", "strategy", "fraction"], as_index=False)[["epochs", "optimizer_steps", "dice"]].mean().round(3)

# %% [markdown]
# ## Was the closer source tissue the better one to fine-tune from?
#
# For each target, its sources ranked by test Dice at limited data and by tissue distance
# (computed here as in 04); C8b in the claims report counts only sources whose distances differ beyond their intervals over seeds.

# %%
states = nine_nets.states_by_seed(P, ctx)  # the source nets' tissue distances, as in 04
tissue = analyses.distances(P, states)["tissue"]
ranking = policy.source_ranking(table, tissue)
results.save_table(ranking, RESULTS, registry.table("policy_source_ranking"), meta)
ranking

# %% [markdown]
# ## Claims report

# %%
from IPython.display import Markdown

from kneelib.report import claims_report

claims_report.write_claims(P.name, list(P.seeds), f"enc_layer{P.depth}", meta, ctx.source)
Markdown(claims_report.claims_md_path(P.name).read_text())

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
