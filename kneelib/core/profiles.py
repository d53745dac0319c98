"""Profiles: named parameter sets over one code path.

- ``tiny``: the whole notebook suite in about two minutes, for tests.
- ``demo``: the README's main job on a 2-core CPU (synthetic phantoms).
- ``paper``: real OAI data at full size with the reference recipe (facts.md sections 2-3), on a GPU.
- ``paper_smoke``: ``paper``'s shapes (34.6 M-parameter net, 384 x 384 slices and phantoms, 1024-channel
  latent level, the slice cache read lazily) with only the time-costly counts cut, so 01-07 run on a 2-core CPU
  in under 30 minutes (``make smoke-paper``, README "Run times").

Every notebook takes ``profile`` as a papermill parameter plus overrides of any field below,
e.g. ``get_profile("demo", max_epochs=5)``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from kneelib.names import IWOAI_SUBJECTS


@dataclass(frozen=True)
class Profile:
    name: str
    # -- data: phantoms are generated with these counts and shape when no real data root is given
    subjects: dict[str, int] = field(default_factory=lambda: dict(IWOAI_SUBJECTS))
    volume_shape: tuple[int, int, int] = (384, 384, 160)  # phantom (H, W, D); D is the slice axis
    slice_size: int = 384          # in-plane size the nets see; slices are resampled to it
    data_seed: int = 2020          # phantom generation seed
    # -- network (facts.md section 2)
    depth: int = 6                 # U-Net levels; enc_layer{depth} is the latent level
    base_filters: int = 32         # filters of enc_layer1
    # -- training (facts.md section 3)
    batch_size: int = 24
    max_epochs: int = 100
    finetune_max_epochs: int | None = None  # epochs cap for fine-tuned nets (None: max_epochs)
    patience: int = 8              # early stopping: epochs without improvement of min_delta
    min_delta: float = 1e-5
    lr: float = 1e-3               # scratch learning rate
    finetune_lr: float = 1e-3      # fine-tune learning rate (the paper used the same recipe)
    lr_decay: float = 0.9          # step decay: lr * lr_decay ** floor((1 + epoch) / lr_decay_every)
    lr_decay_every: int = 2
    lr_floor: float = 1e-8
    steps_per_epoch: int | None = None  # None: one pass over all training slices
    seeds: tuple[int, ...] = (0,)  # training seeds; the first is the headline run
    loss_reduction: str = "batch"  # soft Dice over the batch; "sample": per slice, the reference form (README)
    head_bias: float = 0.0         # initial output prior as a logit (scratch and fine-tuned nets); 0.0: off (README)
    precision: str = "auto"        # "auto" (bf16 on CPUs that have it, fp16 on CUDA), "bf16", "fp16", "fp32"
    num_workers: int = 0           # DataLoader worker processes
    lazy_slices: bool = False      # read slices from the slice cache on demand even when they would fit in memory
    parallel_nets: int = 1         # independent nets trained at once in worker processes (kneelib.nets.workers)
    # -- analysis
    eval_batch_size: int = 32
    activation_slices: int = 4     # test slices shown in Fig. 5
    cka_slices: int = 64           # test slices the CKA is estimated on (06_controls)
    # -- the limited-data policy sweep (07_policy, claim C8)
    policy_fractions: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 1.0)  # fractions of training subjects
    policy_pairs: tuple[str, ...] = ("T|F", "M|F", "F|T", "M|T", "F|M", "T|M")  # target|source
    policy_depth_decay: float = 0.5  # fine-tune lr of level i: lr * decay ** (i - 1)

    def replace(self, **overrides: Any) -> Profile:
        return apply_overrides(self, overrides)


PROFILES: dict[str, Profile] = {
    "paper": Profile(name="paper"),
    # Sized for a 2-core CPU: 96 x 96 slices, 8 base filters, 3 seeds, about 23 minutes for 01-07 (README).
    "demo": Profile(
        name="demo", subjects={"train": 6, "valid": 2, "test": 2}, volume_shape=(96, 96, 24),
        slice_size=96, depth=6, base_filters=8, batch_size=8, max_epochs=6, patience=3,
        min_delta=1e-5, lr=5e-3, finetune_lr=5e-3, head_bias=-3.0, seeds=(0, 1, 2), parallel_nets=2,
        cka_slices=48, policy_fractions=(0.17, 0.5, 1.0), policy_pairs=("T|F", "T|M"),
    ),
    # The paper's shapes, with only what costs time cut: 2/1/1 subjects, 8 slices per scan (the in-plane
    # 384 x 384 stays), one optimizer step of batch 2 per epoch and one epoch, one seed, 8 CKA slices, 2
    # activation slices, and a policy sweep of one pair at two fractions. Batch 2 for time, not memory: one
    # step of the 34.6 M net is ~390 GFLOP at batch 2 (estimated from the layer sizes; README "Run times").
    "paper_smoke": Profile(
        name="paper_smoke", subjects={"train": 2, "valid": 1, "test": 1}, volume_shape=(384, 384, 8),
        batch_size=2, max_epochs=1, steps_per_epoch=1, seeds=(0,), eval_batch_size=8, activation_slices=2,
        cka_slices=8, policy_fractions=(0.5, 1.0), policy_pairs=("T|F",), lazy_slices=True,
    ),
    "tiny": Profile(
        name="tiny", subjects={"train": 3, "valid": 1, "test": 1}, volume_shape=(48, 48, 8),
        slice_size=32, depth=3, base_filters=4, batch_size=8, max_epochs=2, patience=2,
        min_delta=1e-4, lr=3e-3, finetune_lr=3e-3, steps_per_epoch=None, seeds=(0,),
        precision="fp32", eval_batch_size=8, activation_slices=2, cka_slices=8,
        policy_fractions=(0.34, 1.0), policy_pairs=("T|F",),
    ),
}


def get_profile(name: str, **overrides: Any) -> Profile:
    """The named profile with ``overrides`` applied; unknown names or fields raise ValueError."""
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {sorted(PROFILES)}")
    return apply_overrides(PROFILES[name], overrides)


def apply_overrides(profile: Profile, overrides: dict[str, Any]) -> Profile:
    names = {f.name for f in dataclasses.fields(Profile)} - {"name"}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ValueError(f"unknown profile parameter(s) {unknown}; valid: {sorted(names)}")
    clean = {k: _coerce(k, v, getattr(profile, k)) for k, v in overrides.items() if v is not None}
    new = dataclasses.replace(profile, **clean)
    _validate(new)
    return new


def _coerce(key: str, value: Any, current: Any) -> Any:
    if isinstance(current, tuple) and isinstance(value, list):
        return tuple(value)
    if isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if current is not None and not isinstance(value, type(current)):
        raise ValueError(f"profile parameter {key}={value!r} should be {type(current).__name__}")
    return value


def _validate(p: Profile) -> None:
    multiple = 2 ** (p.depth - 1)
    checks = [
        (p.slice_size % multiple == 0, f"slice_size={p.slice_size} must be divisible by 2**(depth-1)={multiple}"),
        (all(v >= 1 for v in p.subjects.values()) and set(p.subjects) == {"train", "valid", "test"},
         f"subjects={p.subjects} needs train, valid and test counts >= 1"),
        (len(p.volume_shape) == 3 and min(p.volume_shape) >= 4, f"volume_shape={p.volume_shape} must be 3 sizes >= 4"),
        (p.depth >= 1 and p.base_filters >= 1, f"depth={p.depth}, base_filters={p.base_filters} must be >= 1"),
        (p.finetune_max_epochs is None or p.finetune_max_epochs >= 1,
         f"finetune_max_epochs={p.finetune_max_epochs} must be >= 1 or None"),
        (p.batch_size >= 1 and p.max_epochs >= 1, f"batch_size={p.batch_size}, max_epochs={p.max_epochs} must be >= 1"),
        (p.lr > 0 and p.finetune_lr > 0, f"lr={p.lr}, finetune_lr={p.finetune_lr} must be > 0"),
        (len(p.seeds) >= 1, "seeds must list at least one seed"),
        (p.parallel_nets >= 1, f"parallel_nets={p.parallel_nets} must be >= 1"),
        (p.loss_reduction in ("batch", "sample"), f"loss_reduction={p.loss_reduction!r}: use batch or sample"),
        (p.precision in ("auto", "bf16", "fp16", "fp32"), f"precision={p.precision!r}: use auto, bf16, fp16, fp32"),
    ]
    for ok, message in checks:
        if not ok:
            raise ValueError(message)
