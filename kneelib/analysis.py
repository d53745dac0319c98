"""Distance tables of the nine networks over all seeds: what 04_distances computes and saves."""

from __future__ import annotations

import pandas as pd
import torch

from . import distances
from .profiles import Profile
from .spread import seed_summary
from .study import DataContext, all_specs, train_nets

States = dict[str, dict[str, torch.Tensor]]  # net name -> state_dict


def states_by_seed(profile: Profile, ctx: DataContext, force: bool = False,
                   progress: bool = True) -> dict[int, States]:
    """The nine nets' best weights for every seed of the profile (trained if missing, else reused)."""
    out: dict[int, States] = {}
    for seed in profile.seeds:
        trained = train_nets(profile, ctx, all_specs(seed), force=force, progress=progress)
        out[seed] = {spec.name: r.state for spec, r in trained.items()}
    return out


def _with_seed(frames: dict[int, pd.DataFrame]) -> pd.DataFrame:
    return pd.concat([f.assign(seed=seed) for seed, f in frames.items()], ignore_index=True)


def distance_tables(states: dict[int, States], reduction: str = "kernel", scale: str = "absolute") -> dict:
    """Fig. 3a, Fig. 3b and Fig. 4 tables (a ``seed`` column each) and the C3 headline per seed."""
    kw = {"reduction": reduction, "scale": scale}
    return {
        "scratch_pairs": _with_seed({s: distances.scratch_pairs_table(st, **kw) for s, st in states.items()}),
        "finetune": _with_seed({s: distances.finetune_table(st, **kw) for s, st in states.items()}),
        "tissue": _with_seed({s: distances.tissue_distances(st, **kw) for s, st in states.items()}),
        "headline": {str(s): distances.headline(st, **kw) for s, st in states.items()},
    }


def headline_frame(headline: dict[str, dict]) -> pd.DataFrame:
    """The C3 headline per seed as a table: seed, to_base, to_own_scratch, ratio."""
    return pd.DataFrame([{"seed": int(s), **{k: h[k] for k in ("to_base", "to_own_scratch", "ratio")}}
                         for s, h in headline.items()])


def distance_spread(tables: dict) -> pd.DataFrame:
    """Mean, sd and 95% interval across seeds of every distance 04 reports, stacked in one table.

    ``tables`` is the output of :func:`distance_tables`; the ``table`` column says where each row comes
    from (scratch_pairs, finetune: per pair and layer group; tissue: per tissue pair, both directions,
    their mean and the asymmetry; headline: the C3 network-level distances).
    """
    tissue_values = ["d_ab", "d_ba", "tissue_distance", "asymmetry"]
    parts = [seed_summary(tables["scratch_pairs"], ["pair", "group"], ["distance"], "scratch_pairs"),
             seed_summary(tables["finetune"], ["pair", "group"], ["distance"], "finetune"),
             seed_summary(tables["tissue"], ["pair"], tissue_values, "tissue").assign(group="network"),
             seed_summary(headline_frame(tables["headline"]).assign(pair="fine-tuned vs base / own scratch"),
                          ["pair"], ["to_base", "to_own_scratch", "ratio"], "headline").assign(group="network")]
    return pd.concat(parts, ignore_index=True)


def null_table(profile: Profile, reference_state: dict[str, torch.Tensor], n_pairs: int = 3) -> pd.DataFrame:
    """Per-group distance between untrained He-initialized nets: closed form and empirical mean."""
    expected = distances.he_null_distances(reference_state)
    seeds = range(1000, 1000 + 2 * n_pairs)  # seeds no training run uses
    empirical = distances.empirical_null(profile.depth, profile.base_filters, seeds)
    return pd.DataFrame([{"group": g, "expected": expected[g], "empirical": empirical.get(g)} for g in expected])


def activation_inputs(profile: Profile, ctx: DataContext, n_slices: int) -> tuple[torch.Tensor, dict, list[str]]:
    """Test slices for the activation maps: from the first test scan, ``n_slices`` slices spread
    evenly over those that contain all three tissues (or any tissue, if too few do).

    Returns: images (N, 1, S, S) z-scored; truth masks tissue -> bool (N, S, S) at the network's
    resolution; labels ``"<scan_id> slice <k>"``.
    """
    import numpy as np

    from . import data

    record = ctx.split("test")[0]
    slices, _ = data.load_eval_volume(record, ctx.root, profile.slice_size, ctx.cache_dir)
    masks = {t: data.SliceDataset([record], ctx.root, t, profile.slice_size, ctx.cache_dir, preload=True).masks[:, 0]
             for t in data.TISSUES}  # (D, S, S) each
    present = torch.stack([m.flatten(1).any(1) for m in masks.values()])  # (3, D)
    candidates = torch.nonzero(present.all(0)).flatten()
    if len(candidates) < n_slices:
        candidates = torch.nonzero(present.any(0)).flatten()
    pick = candidates[np.linspace(0, len(candidates) - 1, n_slices).round().astype(int)].unique()
    truth = {t: m[pick].bool().numpy() for t, m in masks.items()}
    return slices[pick], truth, [f"{record.scan_id} slice {int(k)}" for k in pick]


def test_images(profile: Profile, ctx: DataContext, n: int, seed: int = 0) -> torch.Tensor:
    """``n`` test slices (N, 1, S, S), drawn without replacement with a fixed seed, for CKA."""
    from . import data

    if n < 4:
        raise ValueError(f"debiased CKA needs at least 4 examples, got cka_slices={n}")
    ds = data.SliceDataset(ctx.split("test"), ctx.root, data.TISSUES[0], profile.slice_size, ctx.cache_dir)
    idx = torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed))[:n].sort().values
    return torch.stack([ds[int(i)][0] for i in idx])
