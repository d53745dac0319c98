"""Profiles: named parameter sets over one code path.

- ``tiny``: the whole notebook suite in about two minutes on 2 cores, for tests.
- ``demo``: the README's main job on a 2-core CPU (synthetic phantoms): 01-07 in about 45 minutes
  (docs/measurements.md, "Run times").
- ``robustness``: the demo's recipe and data for 08_robustness (the nets retrained under a grid of recipes).
- ``paper``: real OAI data at full size with the reference net and recipe (docs/reference.md,
  "The reference U-Net" and "The reference recipe"), on a GPU.
- ``paper_smoke``: ``paper``'s shapes (34.6 M-parameter net, 384 x 384 slices and phantoms, 1024-channel
  latent level, the slice cache read lazily) with only the time-costly counts cut, so 01-07 run on a 2-core CPU
  in under 30 minutes (``make smoke-paper``, docs/measurements.md).

Every notebook takes ``profile`` as a papermill parameter plus overrides of any field below,
e.g. ``get_profile("demo", max_epochs=5)``.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any

from kneelib.names import IWOAI_SUBJECTS, PAPER_TISSUES, check_tissues, net_name, tissue_code

EXECUTORS = ("local", "submitit")
DATA_FORMATS = ("auto", "iwoai", "skm-tea", "nnunet")  # kneelib.data.formats
# Weight initializations of the convolutions (kneelib.nets.unet.init_he): PyTorch's kaiming_normal_, and Keras
# 2.1.6's he_normal (the authors' pinned version: a normal truncated at 2 sd, std sqrt(2 / fan_in) before the cut).
INITS = ("he_normal", "keras_he_2_1_6")
# What a fine-tuned net's output prior is calibrated to (kneelib.nets.train.head_prior_logit): the target
# tissue's prevalence on its training masks, or sigmoid(head_bias) whatever the tissue.
HEAD_PRIORS = ("fixed", "prevalence")


@dataclass(frozen=True)
class Profile:
    name: str
    # -- data: phantoms are generated with these counts and shape when no real data root is given
    subjects: dict[str, int] = field(default_factory=lambda: dict(IWOAI_SUBJECTS))
    volume_shape: tuple[int, int, int] = (384, 384, 160)  # phantom (H, W, D); D is the slice axis
    slice_size: int = 384          # in-plane size the nets see; slices are resampled to it
    data_seed: int = 2020          # phantom generation seed
    # -- real data (a data root): its format ("auto": detected from the folder; "iwoai", "skm-tea", "nnunet"),
    # the SKM-TEA image ("rss" = sqrt(echo1^2 + echo2^2), "echo1", "echo2") and, for an nnU-Net folder, label
    # names (or values) of its dataset.json -> tissue names, for names the reader does not know
    data_format: str = "auto"
    skmtea_echo: str = "rss"
    label_map: dict[str, str] = field(default_factory=dict)
    # -- the study: one scratch net per tissue and one fine-tuned net per ordered pair (kneelib.names.ALL_TISSUES)
    tissues: tuple[str, ...] = PAPER_TISSUES  # >= 2 tissue names (or codes); the paper's F, T, M by default
    # -- network (docs/reference.md, "The reference U-Net")
    depth: int = 6                 # U-Net levels; enc_layer{depth} is the latent level
    base_filters: int = 32         # filters of enc_layer1
    # -- training (docs/reference.md, "The reference recipe")
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
    adam_betas: tuple[float, float] = (0.99, 0.995)  # Adam's moment decay rates (the reference's beta1, beta2)
    adam_eps: float = 1e-8         # Adam's epsilon
    steps_per_epoch: int | None = None  # None: one pass over all training slices
    seeds: tuple[int, ...] = (0,)  # training seeds; the first is the headline run
    loss_reduction: str = "batch"  # soft Dice over the batch; "sample": per slice, the reference form (README)
    head_bias: float = 0.0         # initial output prior as a logit (scratch and fine-tuned nets); 0.0: off (README)
    # a fine-tuned net's output prior when head_bias is set: "fixed": sigmoid(head_bias) as for a scratch net;
    # "prevalence" of its tissue on its training masks, which left nets fine-tuned from F(s) stuck on the demo
    # (docs/measurements.md, "Fine-tune prior"; kneelib.nets.train.head_prior_logit)
    finetune_head_prior: str = "fixed"
    init: str = "he_normal"        # conv weight init: "he_normal" (PyTorch) or "keras_he_2_1_6" (the authors')
    precision: str = "auto"        # "auto" (bf16 on CPUs that have it, fp16 on CUDA), "bf16", "fp16", "fp32"
    num_workers: int = 0           # DataLoader worker processes
    lazy_slices: bool = False      # read slices from the slice cache on demand even when they would fit in memory
    parallel_nets: int = 1         # independent nets trained at once in worker processes (kneelib.nets.workers)
    # -- where the nets train (kneelib.nets.workers, kneelib.nets.slurm; README "On a Slurm cluster")
    executor: str = "local"        # "local": this machine's processes; "submitit": one Slurm job per net
    gpus_per_net: int = 0          # GPUs a net needs: requested per Slurm job; checked against this machine locally
    slurm_partition: str = ""      # "" : the cluster's default partition
    slurm_cpus_per_net: int = 1    # CPUs per job; the job trains with this many threads
    slurm_mem_gb: float = 8.0      # memory per job
    slurm_time_min: int = 60       # time limit per job; a job stopped by it is resubmitted and resumes
    slurm_config: str = ""         # a JSON file of further submitit parameters, e.g. {"slurm_account": "lab"}
    slurm_max_resubmits: int = 3   # resubmissions of a net whose job died, was cancelled or was preempted
    # -- analysis
    eval_batch_size: int = 32
    activation_slices: int = 4     # test slices shown in Fig. 5
    cka_slices: int = 64           # test slices the CKA is estimated on (06_controls)
    # -- the limited-data policy sweep (07_policy, claim C8)
    policy_fractions: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 1.0)  # fractions of training subjects
    # target|source codes, both among ``tissues``; overriding ``tissues`` alone keeps the pairs that still fit
    # (none left: the second tissue from the first), see apply_overrides
    policy_pairs: tuple[str, ...] = ("T|F", "M|F", "F|T", "M|T", "F|M", "T|M")
    policy_depth_decay: float = 0.5  # fine-tune lr of level i: lr * decay ** (i - 1)
    # Keep the policy runs' best weights after they are evaluated (False: drop them, keep key, history and
    # test metrics; they are reused all the same). Nothing downstream reads them; they were 60% of the demo's disk.
    policy_keep_weights: bool = False
    # "epochs": every run the profile's epochs (fewer subjects, fewer optimizer steps); "matched": runs at a
    # fraction < 1 take as many optimizer steps as a full-data run (kneelib.study.policy.matched_steps)
    policy_steps: tuple[str, ...] = ("epochs", "matched")
    # -- recipe robustness (08_robustness): the study's nets retrained under each setting (kneelib.study.robustness)
    robustness_settings: tuple[str, ...] = ("recipe", "ft_lr", "converge")
    robustness_seeds: tuple[int, ...] = ()  # seeds of every setting (empty: ``seeds``); at least 2 for an interval
    robustness_reuse: str = ""     # profile whose nets the "recipe" setting reuses ("": this profile's own)
    robustness_epoch_cap: int = 30  # "converge": early stopping decides, at most this many epochs
    robustness_patience: int = 4    # "converge": its early-stopping patience (epochs)

    def replace(self, **overrides: Any) -> Profile:
        return apply_overrides(self, overrides)


PROFILES: dict[str, Profile] = {
    "paper": Profile(name="paper"),
    # Sized for a 2-core CPU: 96 x 96 slices, 8 base filters, 3 seeds, 01-07 in about 45 minutes (docs/measurements.md).
    "demo": Profile(
        name="demo", subjects={"train": 6, "valid": 2, "test": 2}, volume_shape=(96, 96, 24),
        slice_size=96, depth=6, base_filters=8, batch_size=8, max_epochs=6, patience=3,
        min_delta=1e-5, lr=5e-3, finetune_lr=5e-3, head_bias=-3.0, seeds=(0, 1, 2), parallel_nets=2,
        cka_slices=48, policy_fractions=(0.17, 0.5, 1.0), policy_pairs=("T|F", "T|M", "F|T"),
    ),
    # The paper's shapes, with only what costs time cut: 2/1/1 subjects, 8 slices per scan (the in-plane
    # 384 x 384 stays), one optimizer step of batch 2 per epoch and one epoch, one seed, 8 CKA slices, 2
    # activation slices, and a policy sweep of one pair at two fractions. Batch 2 for time, not memory: one
    # step of the 34.6 M net is some 400 GFLOP at batch 2 (benchmarks/training_loops.py counts them).
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
        policy_fractions=(0.34, 1.0), policy_pairs=("T|F", "F|T"),
        robustness_settings=("recipe", "ft_lr"), robustness_seeds=(0, 1), robustness_epoch_cap=4,
        robustness_patience=1,
    ),
}
# The demo recipe and data, retrained under a grid of recipes (08_robustness; README): 2 seeds, the
# demo's own nets reused for the "recipe" setting, the policy sweep (C8) at one limited fraction.
PROFILES["robustness"] = dataclasses.replace(
    PROFILES["demo"], name="robustness", seeds=(0, 1), robustness_seeds=(0, 1), policy_fractions=(0.17,),
    policy_steps=("epochs",), robustness_reuse="demo", robustness_settings=("recipe", "ft_lr", "converge"),
    # the demo's pairs without F|T: with one fraction and no full-data policy runs C8f is not answerable
    # here anyway, and the grid stays near an hour on 2 cores
    policy_pairs=("T|F", "T|M"))


def get_profile(name: str, **overrides: Any) -> Profile:
    """The named profile with ``overrides`` applied; unknown names or fields raise ValueError."""
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {sorted(PROFILES)}")
    return apply_overrides(PROFILES[name], overrides)


def apply_overrides(profile: Profile, overrides: dict[str, Any]) -> Profile:
    """``profile`` with ``overrides`` applied; every value is checked against the field's type.

    Raises ValueError naming the parameter for an unknown field, a value of the wrong type, ``None``
    for a field that does not take it (only ``finetune_max_epochs`` and ``steps_per_epoch`` do), or a
    combination ``_validate`` rejects. Lists become tuples and ints become floats where the field says so;
    tissue codes in ``tissues`` become names. When ``tissues`` is overridden and ``policy_pairs`` is not,
    the profile's policy pairs are kept where both tissues are still studied, else the one pair
    "second tissue | first tissue" takes their place.
    """
    names = {f.name for f in dataclasses.fields(Profile)} - {"name"}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ValueError(f"unknown profile parameter(s) {unknown}; valid: {sorted(names)}")
    hints = typing.get_type_hints(Profile)
    clean = {k: _coerce(k, v, hints[k]) for k, v in overrides.items()}
    if "tissues" in clean:
        clean["tissues"] = check_tissues(clean["tissues"])
        if "policy_pairs" not in clean:
            clean["policy_pairs"] = _policy_pairs_within(profile.policy_pairs, clean["tissues"])
    new = dataclasses.replace(profile, **clean)
    _validate(new)
    return new


def _coerce(key: str, value: Any, hint: Any) -> Any:
    """``value`` as the type ``hint`` of field ``key`` says, or ValueError naming both."""
    args = typing.get_args(hint)
    optional = type(None) in args
    if value is None:
        if optional:
            return None
        raise ValueError(f"profile parameter {key}=None is not allowed; it needs a value of type {_name(hint)}")
    if optional:
        hint = next(a for a in args if a is not type(None))
    origin = typing.get_origin(hint) or hint
    if origin is tuple and isinstance(value, list | tuple):
        (item,) = {a for a in typing.get_args(hint) if a is not Ellipsis}
        return tuple(_coerce(key, v, item) for v in value)
    if origin is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if origin is dict and isinstance(value, dict):
        key_type, value_type = typing.get_args(hint)
        return {_coerce(key, k, key_type): _coerce(key, v, value_type) for k, v in value.items()}
    if not isinstance(value, origin) or (isinstance(value, bool) and origin is not bool):
        raise ValueError(f"profile parameter {key}={value!r} should be {_name(hint)}, not {type(value).__name__}")
    return value


def _policy_pairs_within(pairs: tuple[str, ...], tissues: tuple[str, ...]) -> tuple[str, ...]:
    """The ``target|source`` pairs of ``pairs`` whose tissues are both in ``tissues``; none: the second
    tissue fine-tuned from the first (e.g. ``("P|F",)``), the one pair a study of any tissues has."""
    codes = {tissue_code(t) for t in tissues}
    kept = tuple(p for p in pairs if set(p.split("|")) <= codes)
    return kept or (net_name(tissues[1], tissues[0]).removesuffix("(s)"),)


def _policy_pair_problem(pair: str, codes: list[str]) -> str | None:
    """Why ``pair`` is not a ``target|source`` pair of two different codes of ``codes`` (None: it is)."""
    target, sep, source = pair.partition("|")
    if not sep or target == source or target not in codes or source not in codes:
        return (f"policy_pairs entry {pair!r} must be 'target|source', two different codes of the profile's "
                f"tissues {codes}")
    return None


def _name(hint: Any) -> str:
    return getattr(hint, "__name__", None) if typing.get_origin(hint) is None else str(hint).replace("typing.", "")


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
        (len(p.adam_betas) == 2 and all(0 <= b < 1 for b in p.adam_betas) and p.adam_eps > 0,
         f"adam_betas={p.adam_betas} must be two numbers in [0, 1) and adam_eps={p.adam_eps} > 0"),
        (len(p.seeds) >= 1, "seeds must list at least one seed"),
        (p.parallel_nets >= 1, f"parallel_nets={p.parallel_nets} must be >= 1"),
        (p.executor in EXECUTORS, f"executor={p.executor!r}: use one of {', '.join(EXECUTORS)}"),
        (p.gpus_per_net in (0, 1), f"gpus_per_net={p.gpus_per_net}: a net trains on one device, use 0 or 1"),
        (p.slurm_cpus_per_net >= 1, f"slurm_cpus_per_net={p.slurm_cpus_per_net} must be >= 1"),
        (p.slurm_mem_gb > 0, f"slurm_mem_gb={p.slurm_mem_gb} must be > 0"),
        (p.slurm_time_min >= 1, f"slurm_time_min={p.slurm_time_min} must be >= 1"),
        (p.slurm_max_resubmits >= 0, f"slurm_max_resubmits={p.slurm_max_resubmits} must be >= 0"),
        (p.loss_reduction in ("batch", "sample"), f"loss_reduction={p.loss_reduction!r}: use batch or sample"),
        (p.precision in ("auto", "bf16", "fp16", "fp32"), f"precision={p.precision!r}: use auto, bf16, fp16, fp32"),
        (p.data_format in DATA_FORMATS, f"data_format={p.data_format!r}: use one of {', '.join(DATA_FORMATS)}"),
        (p.skmtea_echo in ("rss", "echo1", "echo2"), f"skmtea_echo={p.skmtea_echo!r}: use rss, echo1 or echo2"),
        (p.finetune_head_prior in HEAD_PRIORS,
         f"finetune_head_prior={p.finetune_head_prior!r}: use {' or '.join(HEAD_PRIORS)}"),
        (p.init in INITS, f"init={p.init!r}: use {' or '.join(INITS)}"),
        (len(p.policy_steps) >= 1 and set(p.policy_steps) <= {"epochs", "matched"},
         f"policy_steps={p.policy_steps}: use epochs and/or matched"),
        (p.robustness_epoch_cap >= 1 and p.robustness_patience >= 1,
         f"robustness_epoch_cap={p.robustness_epoch_cap}, robustness_patience={p.robustness_patience} must be >= 1"),
    ]
    for ok, message in checks:
        if not ok:
            raise ValueError(message)
    if tuple(p.tissues) != check_tissues(p.tissues):
        raise ValueError(f"tissues={p.tissues!r} must be tissue names, e.g. {list(PAPER_TISSUES)}")
    codes = [tissue_code(t) for t in p.tissues]
    for pair in p.policy_pairs:
        problem = _policy_pair_problem(pair, codes)
        if problem:
            raise ValueError(problem)
