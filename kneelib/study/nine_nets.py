"""The study's nine networks per seed: three scratch nets and six fine-tuned from them, trained
(or reused) for every seed of a profile.
"""

from __future__ import annotations

import torch

from kneelib.core.profiles import Profile
from kneelib.data.context import DataContext
from kneelib.names import TISSUES
from kneelib.nets.run import NetSpec
from kneelib.nets.train import TrainResult
from kneelib.nets.workers import TrainJob, train_jobs

States = dict[str, dict[str, torch.Tensor]]  # net name -> state_dict


def scratch_specs(seed: int = 0) -> list[NetSpec]:
    return [NetSpec(t, None, seed) for t in TISSUES]


def finetune_specs(seed: int = 0) -> list[NetSpec]:
    return [NetSpec(t, b, seed) for b in TISSUES for t in TISSUES if t != b]


def all_specs(seed: int = 0) -> list[NetSpec]:
    return scratch_specs(seed) + finetune_specs(seed)


def train_nets(profile: Profile, ctx: DataContext, specs: list[NetSpec], force: bool = False,
               progress: bool = True) -> dict[NetSpec, TrainResult]:
    """Train (or reuse) several nets; ``profile.parallel_nets`` > 1 trains independent ones at once."""
    results = train_jobs(profile, ctx, [TrainJob(spec) for spec in specs], force=force, progress=progress)
    return dict(zip(specs, results))


def states_by_seed(profile: Profile, ctx: DataContext, force: bool = False,
                   progress: bool = True) -> dict[int, States]:
    """The nine nets' best weights for every seed of the profile (trained if missing, else reused)."""
    out: dict[int, States] = {}
    for seed in profile.seeds:
        trained = train_nets(profile, ctx, all_specs(seed), force=force, progress=progress)
        out[seed] = {spec.name: r.state for spec, r in trained.items()}
    return out


