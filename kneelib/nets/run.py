"""One network: its spec (tissue, base, seed), its recipe from the profile, and training or reusing it.

Net names follow the paper: ``F(s)``, ``T(s)``, ``M(s)`` are the scratch nets for femoral
cartilage, tibial cartilage and meniscus; ``T|F(s)`` is the tibial-cartilage net fine-tuned
from ``F(s)`` (other tissues have other codes, ``kneelib.names.TISSUE_CODES``: ``TL|TM(s)``). Each net of
each seed lives in ``outputs/<profile>/models/seed<k>/<folder>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kneelib.core import paths
from kneelib.core.profiles import Profile
from kneelib.data.context import DataContext, slice_dataset
from kneelib.names import net_name, tissue_index, tissue_name
from kneelib.nets.train import TrainConfig, TrainResult, fit


@dataclass(frozen=True)
class NetSpec:
    """One network: its tissue, the tissue of the scratch net it was fine-tuned from, its seed.

    ``tissue`` and ``base_tissue`` are tissue names of ``kneelib.names.ALL_TISSUES``; an unknown one, or
    a net fine-tuned from its own tissue, raises ValueError naming it.
    """

    tissue: str
    base_tissue: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        for value in (self.tissue, self.base_tissue):
            if value is not None and tissue_name(value) != value:
                raise ValueError(f"NetSpec takes tissue names, not codes: got {value!r} ({tissue_name(value)!r})")
        net_name(self.tissue, self.base_tissue)  # raises for a net fine-tuned from its own tissue

    @property
    def name(self) -> str:
        return net_name(self.tissue, self.base_tissue)

    @property
    def folder(self) -> str:
        kind = "scratch" if self.base_tissue is None else f"from_{self.base_tissue}"
        return f"seed{self.seed}/{self.tissue}__{kind}"

    @property
    def run_seed(self) -> int:
        """The seed of this net's He init and shuffling: distinct for every net of a seed, so the scratch
        nets start from independent draws (the paper's scratch-to-scratch distance, 6.45e-2, is the
        size expected between independent He inits, docs/reference.md).

        ``1000 * seed + 10 * i(tissue) + (0 if scratch else 1 + i(base))`` with ``i`` the position in the
        vocabulary ``ALL_TISSUES``, not in a profile's tissues: a net's seed does not depend on which other
        tissues a study has, and the paper's F, T, M (positions 0, 1, 2) keep the seeds they always had."""
        base = 0 if self.base_tissue is None else 1 + tissue_index(self.base_tissue)
        return 1000 * self.seed + 10 * tissue_index(self.tissue) + base

    @property
    def base(self) -> NetSpec | None:
        return None if self.base_tissue is None else NetSpec(self.base_tissue, None, self.seed)


def train_config(profile: Profile, spec: NetSpec, **overrides) -> TrainConfig:
    """The profile's recipe for one net (:meth:`TrainConfig.from_profile`: fine-tuned nets use ``finetune_lr``
    and ``finetune_max_epochs``); ``overrides`` replace any field."""
    per_run = {"tissue": spec.tissue, "base_net": None if spec.base is None else spec.base.name,
               "seed": spec.run_seed}
    return TrainConfig.from_profile(profile, **(per_run | overrides))


def train_net(profile: Profile, ctx: DataContext, spec: NetSpec, force: bool = False, progress: bool = True,
              run_dir: Path | None = None, train_scans: tuple[str, ...] | None = None, reuse_only: bool = False,
              **overrides) -> TrainResult | None:
    """Train (or reuse) one net. A fine-tuned net first makes sure its base scratch net exists.
    ``reuse_only``: return the finished net or None (nothing is trained)."""
    base_state = None
    if spec.base is not None:
        base = train_net(profile, ctx, spec.base, progress=progress, reuse_only=reuse_only)
        if base is None:
            return None
        base_state = base.state
    cfg = train_config(profile, spec, **overrides)
    lazy = profile.lazy_slices
    train_ds = slice_dataset(ctx, "train", spec.tissue, profile.slice_size, train_scans, lazy)
    val_ds = slice_dataset(ctx, "valid", spec.tissue, profile.slice_size, None, lazy)
    run_dir = run_dir or paths.models_dir(profile.name) / spec.folder
    return fit(cfg, train_ds, val_ds, run_dir, ctx.manifest_hash, base_state=base_state, force=force,
               num_workers=profile.num_workers, progress=progress, reuse_only=reuse_only)
