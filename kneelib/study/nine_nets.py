"""The study's networks per seed: for N tissues (``Profile.tissues``; the paper's three give its nine nets),
N scratch nets and N (N - 1) fine-tuned from them, trained (or reused) for every seed of a profile.
"""

from __future__ import annotations

from collections.abc import Sequence

from kneelib.compare.distance_tables import States
from kneelib.core.profiles import Profile
from kneelib.data.context import DataContext
from kneelib.names import PAPER_TISSUES
from kneelib.nets.run import NetSpec
from kneelib.nets.train import TrainResult
from kneelib.nets.workers import TrainJob, train_jobs


def scratch_specs(seed: int = 0, tissues: Sequence[str] = PAPER_TISSUES) -> list[NetSpec]:
    """The scratch net of each of ``tissues`` (names), in their order."""
    return [NetSpec(t, None, seed) for t in tissues]


def finetune_specs(seed: int = 0, tissues: Sequence[str] = PAPER_TISSUES) -> list[NetSpec]:
    """Every tissue's net fine-tuned from every other's scratch net, grouped by base in ``tissues`` order
    (the paper's: T|F, M|F, F|T, M|T, F|M, T|M)."""
    return [NetSpec(t, b, seed) for b in tissues for t in tissues if t != b]


def all_specs(seed: int = 0, tissues: Sequence[str] = PAPER_TISSUES) -> list[NetSpec]:
    """The N scratch nets, then the N (N - 1) fine-tuned nets of ``tissues``, for one seed."""
    return scratch_specs(seed, tissues) + finetune_specs(seed, tissues)


def train_nets(profile: Profile, ctx: DataContext, specs: list[NetSpec], force: bool = False,
               progress: bool = True) -> dict[NetSpec, TrainResult]:
    """Train (or reuse) several nets; ``profile.parallel_nets`` > 1 trains independent ones at once."""
    results = train_jobs(profile, ctx, [TrainJob(spec) for spec in specs], force=force, progress=progress)
    return dict(zip(specs, results))


def states_by_seed(profile: Profile, ctx: DataContext, force: bool = False,
                   progress: bool = True) -> dict[int, States]:
    """The best weights of every net of ``profile.tissues`` (:func:`all_specs`) for every seed of the
    profile (trained if missing, else reused); per seed, net names in :func:`all_specs` order."""
    out: dict[int, States] = {}
    for seed in profile.seeds:
        trained = train_nets(profile, ctx, all_specs(seed, profile.tissues), force=force, progress=progress)
        out[seed] = {spec.name: r.state for spec, r in trained.items()}
    return out
