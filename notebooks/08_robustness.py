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
# # 08 · Do the conclusions survive the training recipe?
#
# Every verdict of 04-07 comes from one recipe. Weight distances grow with how far and how fast a net is trained, so a verdict may belong to the recipe rather than to the tissues. Here the study's nets (nine per seed for the paper's three tissues, and the limited-data policy runs C8 needs) are retrained under a small grid of recipes around the profile's own (`kneelib.study.robustness`), at least two seeds each, and every claim and control is recomputed per recipe:
#
# - **recipe**: the profile's recipe (the `robustness` profile: the demo's, reusing the demo's nets when present);
# - **ft_lr**: fine-tuned nets at the paper's reference fine-tune learning rate 1e-3 (scratch nets shared with *recipe*);
# - **converge**: early stopping decides (patience `robustness_patience`, at most `robustness_epoch_cap` epochs), scratch and fine-tuned nets;
# - **wide16** (opt-in, `--set 'robustness_settings=["recipe","ft_lr","converge","wide16"]'`): 16 base filters.

# %% tags=["parameters"]
profile = "robustness"  # tiny | demo | robustness | paper_smoke | paper (kneelib.core.profiles)
data_root = ""     # real IWOAI data root (train/ valid/ test/); "" uses $KNEELIB_DATA_ROOT, else phantoms
overrides = {}     # profile fields to override, e.g. {"max_epochs": 5, "seeds": [0, 1, 2]}
force = False      # retrain networks even when a finished run with the same inputs exists

# %%
from kneelib.report.notebook import notebook_setup

# Derived here, after papermill has injected the parameters.
P, ctx, FIGURES, RESULTS = notebook_setup(profile, data_root, overrides)

# %% [markdown]
# ## The grid
#
# `profile_folder` is where a setting's nets live under `outputs/`: the reference profile's folder for nets that are the reference's, `<profile>/settings/<setting>` for every net trained differently.

# %%
from kneelib.core import registry, results
from kneelib.core.provenance import provenance
from kneelib.study import robustness

P = robustness.grid_profile(P)  # every setting trains the grid's seeds (robustness_seeds)
meta = provenance(P, ctx.manifest_hash, seed=list(P.seeds))
grid = robustness.settings(P)
seeds = list(P.seeds)
latent = f"enc_layer{P.depth}"
settings_table = robustness.settings_table(P, grid)
results.save_table(settings_table, RESULTS, registry.table("robustness_settings"), meta)
settings_table

# %% [markdown]
# ## Train and recompute every claim, per setting

# %%
import time

import pandas as pd

margins, effects, ratios, nets, inputs = [], [], [], [], {}
for s in grid:
    t0 = time.perf_counter()
    states, trained = robustness.train_setting(P, ctx, s, force=force)
    inputs[s.name] = robustness.claim_inputs(P, ctx, s, states, trained, force=force)
    margins.append(robustness.setting_margins(s, inputs[s.name], seeds, latent))
    effects.append(robustness.setting_effects(P, s, inputs[s.name], seeds, latent))
    ratios.append(robustness.headline_ratios(s, inputs[s.name]))
    nets.append(trained)
    print(f"{s.name}: {time.perf_counter() - t0:.0f} s; {int((~trained.reused).sum())} of {len(trained)} nets trained",
          flush=True)
margins, effects, ratios, nets = (pd.concat(x, ignore_index=True) for x in (margins, effects, ratios, nets))
results.save_table(margins, RESULTS, registry.table("robustness_margins"), meta)
results.save_table(ratios, RESULTS, registry.table("robustness_headline_ratio"), meta)
results.save_table(nets, RESULTS, registry.table("robustness_nets"), meta)
policy_all = pd.concat([inputs[s.name]["policy"].assign(setting=s.name) for s in grid], ignore_index=True)
results.save_table(policy_all, RESULTS, registry.table("robustness_policy"), meta)

# %% [markdown]
# ## The claim x setting table
#
# One row per claim and setting, judged by the rule of 04-07 (`kneelib.study.verdicts`): the effect (mean margin over seeds) with its 95% interval (t over seeds; for test-Dice claims a bootstrap over seeds and test subjects) and the verdict **supported** (interval above 0), **contradicted** (below 0), **inconclusive** (contains 0) or **n/a**. The controls of 06 (untrained null, alignment, CKA) get the same table. `reference_scratch` marks a setting that reuses the reference's scratch nets (`ft_lr`): for claims on scratch nets only (C1, C1b) it is not a second test and is not counted across recipes.

# %%
table = robustness.robustness_table(effects)
claim_rows = table[table.test == "claim"].drop(columns="test")
results.save_table(claim_rows, RESULTS, registry.table("robustness_claims"), meta)
results.save_table(table[table.test != "claim"], RESULTS, registry.table("robustness_controls"), meta)
claim_rows.pivot(index="id", columns="setting", values="verdict")[[s.name for s in grid]]

# %%
table[table.test != "claim"].pivot(index=["id", "test"], columns="setting", values="verdict")

# %%
from kneelib.report.export import save_figure
from kneelib.report.robustness_plots import figure_robustness

fig = figure_robustness(claim_rows, {s.name: s.name for s in grid})
save_figure(fig, FIGURES, registry.figure("robustness_claims_heatmap"))
fig.show()

# %% [markdown]
# ## What the recipe changes
#
# C3's ratio, the fine-tuned net's distance to its base over its distance to the scratch net of its own tissue, per setting, beside the paper's 8.17e-3 / 6.45e-2 = 0.13, and how long the nets trained.

# %%
from IPython.display import Markdown, display

from kneelib.report import claims_report

ratio_table = robustness.ratio_summary(ratios, nets)
results.save_table(ratio_table, RESULTS, registry.table("robustness_ratio_summary"), meta)
display(ratio_table.round(3))
Markdown(claims_report.recipe_summary_markdown(ratio_table, table, grid))

# %% [markdown]
# ## The claims report with the verdicts across recipes
#
# The reference setting's claims (the profile's own recipe), with a column counting each claim's verdicts over the recipes that have nets of their own, e.g. "supported in 2 of 3, inconclusive in 1".

# %%
claims_report.write_claims(P.name, seeds, latent, meta, ctx.source, tables=inputs[robustness.REFERENCE])
Markdown(claims_report.claims_md_path(P.name).read_text())

# %% [markdown]
# ## Files written
#
# - `outputs/<profile>/results/robustness_claims.csv` (claim x setting), `robustness_controls.csv`, `robustness_margins.csv` (per seed), `robustness_headline_ratio.csv`, `robustness_ratio_summary.csv`, `robustness_nets.csv`, `robustness_policy.csv`, `robustness_settings.csv`, `claims.csv`
# - `outputs/<profile>/figures/robustness_claims_heatmap.{html,png}`
# - `outputs/<profile>/claims.md`; nets under `outputs/<reference profile>/models/` and `outputs/<profile>/settings/<setting>/models/`

# %%
from kneelib.report.notebook import notebook_footer

notebook_footer()
