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
# # 09 · Does the distance measure task relatedness? A ladder of known relatedness
#
# The abstract reads kernel distances between a scratch net and its fine-tunes as how related two
# segmentation tasks are. Before any tissue conclusion leans on that reading, this notebook asks whether
# the distance can tell a near-identical task from a different one at all. Each rung fine-tunes a scratch
# net, with the profile's fine-tune recipe, to a task whose relatedness to the base net's own task is
# known, from most to least related:
#
# | rung | name | base → target | what changes |
# | --- | --- | --- | --- |
# | 0 | same task | F(s) → F | nothing: how far the fine-tune recipe alone moves a net |
# | 1 | dilated | F(s) → F+1 | the femoral-cartilage masks dilated in-plane by one voxel (3 x 3 cross) |
# | 2 | mirrored compartment | TL(s) → TM | the same tissue, the other tibial compartment |
# | 3 | same appearance, other place | F(s) → P | patellar cartilage: the same kind of tissue elsewhere |
# | 4 | other tissue | F(s) → M | meniscus |
#
# Between the base net and its fine-tune, four measures, per layer group and for the whole net: the raw
# kernel distance (the paper's), the same after aligning the fine-tune's hidden units to the base, the
# relative displacement ||w − w_base|| / ||w_base|| of the convolution weights, and debiased linear CKA of
# the two nets' activations (a similarity: it should fall down the ladder).
#
# **How to read the verdicts.** Per seed, Spearman's rho between the rung index and the measure (sign
# flipped for CKA) is the margin: +1 when the measure puts the five rungs in the known order. Across seeds
# the mean margin and its 95% t-interval give the verdict: *supported* (the interval lies above 0: the
# ladder validated the measure), *contradicted* (below 0), *inconclusive* (it contains 0, or there is a
# single seed and so no interval).
#
# **Training length and loss left.** A fine-tune moves further the more loss it has left to remove and the
# longer it trains. Each rung's starting validation loss (the fine-tune's start model, after the output-bias
# calibration, on the rung's own validation set) and best epoch are read the same way, and each measure's
# rank correlation with them is reported (`follows_start_loss`, `follows_best_epoch`): a measure that
# orders the ladder but follows the starting loss just as closely may be measuring the loss left to remove,
# not relatedness. With five rungs the two cannot be told apart when the starting loss itself orders the
# ladder: then the ladder shows that the measure *can* separate the tasks, not *why*. Rung 0 is not free of
# loss either where the profile calibrates the fine-tune's output bias (`head_bias`, the demo's): the shift
# moves the base net off its own optimum, and its fine-tune first undoes it.
#
# **The same task below everything else.** A measure can order the ladder only because rung 0 lies below
# four rungs it cannot tell apart. The `*_without_same_task` columns repeat the effect and verdict over
# rungs 1-4 alone: whether the measure orders the different tasks among themselves.
#
# **Phantoms are not knees.** On the default synthetic phantoms every cartilage has the same signal and
# texture, so rungs 2 and 3 differ from rung 4 mainly in shape and place; on real data the ladder's middle
# rungs are another question.

# %% tags=["parameters"]
profile = "demo"   # tiny | demo | paper_smoke | paper (kneelib.core.profiles)
data_root = ""     # real IWOAI data root (train/ valid/ test/); "" uses $KNEELIB_DATA_ROOT, else phantoms
overrides = {}     # profile fields to override, e.g. {"max_epochs": 5, "seeds": [0, 1, 2]}
force = False      # retrain the ladder's fine-tuned nets even when a finished run with the same inputs exists

# %%
from kneelib.report.notebook import notebook_setup

# Derived here, after papermill has injected the parameters.
P, ctx, FIGURES, RESULTS = notebook_setup(profile, data_root, overrides)

# %% [markdown]
# ## Train (or reuse) the ladder
#
# The base nets are the study's scratch nets (F(s) from 02 when it ran; TL(s) is trained here when
# missing); each rung's net lives in `models/<profile>/relatedness/seed<k>/<rung>`, reused while its inputs
# are unchanged.

# %%
import pandas as pd

from kneelib.core import registry, results
from kneelib.core.provenance import provenance
from kneelib.study import ladder, relatedness

meta = provenance(P, ctx.manifest_hash, seed=list(P.seeds))
trained = ladder.train_ladder(P, ctx, force=force)
pd.DataFrame([{"seed": s, "rung": name, "epochs": len(r.history), "best_epoch": r.best_epoch,
               "best_val_loss": r.best_val_loss, "reused": r.reused} for (s, name), r in trained.items()])

# %% [markdown]
# ## The measures per rung
#
# One row per seed, rung, measure and layer group (`network`: the whole net; for CKA the mean over the
# groups), with the rung's starting validation loss, best epoch and epochs run.

# %%
table = ladder.ladder_table(P, ctx, trained)
results.save_table(table, RESULTS, registry.table("known_relatedness"), meta)
table[table.group == "network"].pivot_table(index=["rung", "pair"], columns=["measure", "seed"], values="value").round(4)

# %%
table.drop_duplicates(["seed", "rung"])[["seed", "rung", "pair", "start_val_loss", "best_epoch", "epochs"]]

# %% [markdown]
# ## Does each measure order the ladder?
#
# `rho_seed<k>`: Spearman's rho of rung and measure in seed k (a distance should give +1, CKA −1);
# `effect`: the mean of the sign-adjusted rho (positive: orders the ladder) with its 95% t-interval over
# seeds and the verdict. The last two rows read the starting validation loss and the best epoch the same
# way; `follows_start_loss` and `follows_best_epoch` say how closely each measure ranks the rungs as they do.

# %%
summary = relatedness.summary_table(table)
results.save_table(summary, RESULTS, registry.table("known_relatedness_summary"), meta)
summary[summary.group == "network"].round(3)

# %% [markdown]
# What the claims report cites for each measure (`kneelib.study.relatedness.validation_outcome`): "supported"
# only when the measure orders the whole ladder, orders the four different tasks among themselves (rungs
# 1-4; the tissue claims compare different tasks, never a task with itself) and does not just rank the rungs
# as their starting validation loss does; otherwise what failed.

# %%
relatedness.validation_outcome(summary)

# %% [markdown]
# Per layer group (which depths carry the order):

# %%
summary[summary.kind == "measure"].pivot_table(index="group", columns="measure", values="effect", sort=False).round(2)

# %%
from kneelib.report.export import save_figure
from kneelib.report.relatedness_plots import figure_known_relatedness

fig = figure_known_relatedness(table, summary)
save_figure(fig, FIGURES, registry.figure("known_relatedness"))
fig.show()

# %% [markdown]
# ## The claims report, with the ladder's verdicts
#
# `claims.md` names, for each claim, the ladder's verdict on the measure it leans on, and flags the claims
# built on a measure the ladder did not validate. It is rewritten here from the files 04-07 wrote (where
# they have run for this profile), so it carries the ladder from now on.

# %%
from IPython.display import Markdown

from kneelib.report import claims_report

if (RESULTS / f"{registry.table('scratch_pairs')}.csv").exists():
    claims_report.write_claims(P.name, list(P.seeds), f"enc_layer{P.depth}", meta, ctx.source)
    display_md = Markdown(claims_report.claims_md_path(P.name).read_text().split("## Is the distance")[1])
else:
    display_md = Markdown("04-07 have not run for this profile: no claims report to update.")
display_md

# %% [markdown]
# ## Files written
#
# - `outputs/<profile>/results/known_relatedness.csv`, `known_relatedness_summary.csv`
# - `outputs/<profile>/figures/known_relatedness`
# - the ladder's nets under `outputs/<profile>/models/relatedness/`
# - `outputs/<profile>/claims.md`, `results/claims.csv` (rewritten when 04-07 have run)

# %%
from kneelib.report.notebook import notebook_footer

notebook_footer()
