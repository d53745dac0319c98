"""Training one network: soft-Dice loss, Adam, step decay, early stopping, resumable checkpoints.

The loop (``fit``) is a screenful of small verb-named helpers. A run writes two files in its
folder, both atomically:

- ``last.pt``: everything needed to resume (weights, optimizer, scheduler, epoch, history,
  best weights so far, early-stopping counter); rewritten after every epoch, and deleted once the
  run has finished (the optimizer state is four times the size of the weights and nothing needs it
  then; ``keep_last=True`` keeps it).
- ``best.pt``: the result, the weights with the lowest validation loss, plus history, the run key
  and provenance; ``finished`` is true once early stopping or ``max_epochs`` ended the run.

A run killed at any moment resumes from ``last.pt`` and ends with the same best weights as an
uninterrupted run, because each epoch's shuffle is drawn from (seed, epoch) alone. A finished
run is reused when its key (config, data-manifest hash, code fingerprint, base weights) is
unchanged; the code fingerprint covers every source file the training path imports
(:data:`TRAINING_ENTRY`, ``kneelib.core.fingerprint``).

A checkpoint that cannot be read (a truncated copy, a full disk) is handled like a missing one: it
is renamed to ``best.pt.corrupt`` / ``last.pt.corrupt`` with a :class:`CheckpointWarning` naming it,
and the net is trained again (its key is known) or its run restarted from epoch 0.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import math
import os
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from kneelib.core.atomic import save_torch
from kneelib.core.fingerprint import source_fingerprint
from kneelib.core.profiles import Profile
from kneelib.core.progress import report_epoch
from kneelib.core.provenance import provenance
from kneelib.nets.losses import dice_sums, soft_dice_loss
from kneelib.nets.unet import UNet2D, init_head_bias

# The module whose import closure is the training path: every kneelib source file it imports, directly or
# not, is part of the run key (kneelib.core.fingerprint), so editing any of them retrains the nets.
TRAINING_ENTRY = "kneelib.nets.run"

# Fields of a net's recipe that are not the Profile's: the rest are copied from the Profile field of the
# same name (TrainConfig.from_profile), so the recipe is written once, in kneelib.core.profiles.
_PER_RUN = ("tissue", "base_net", "seed", "depth_lr_decay", "train_fraction")


@dataclass(frozen=True)
class TrainConfig:
    """The recipe of one training run. Built from a profile by :meth:`from_profile`; every field without
    a default is the :class:`~kneelib.core.profiles.Profile` field of the same name (units and meaning
    are documented there), except:

    - ``tissue``: the tissue the net segments (a name of the tissue vocabulary, ``kneelib.names``).
    - ``base_net``: the name of the net it is fine-tuned from (None: from scratch, He init).
    - ``seed``: the seed of the He init and of the shuffling (``kneelib.nets.run.NetSpec.run_seed``).
    - ``lr`` and ``max_epochs``: the profile's ``finetune_lr`` and ``finetune_max_epochs`` (when set)
      for a fine-tuned net.
    - ``depth_lr_decay``: level i trains at ``lr * depth_lr_decay ** (i - 1)``; 1.0: uniform (07_policy).
    - ``train_fraction``: the fraction of training subjects the caller's data holds (07_policy).
    - ``finetune_head_prior``: the profile's for a fine-tuned net; None for a scratch net, which has no base
      to calibrate (so a scratch net's run key does not depend on it, and both settings share scratch nets).
    """

    tissue: str
    base_net: str | None
    seed: int
    depth: int
    base_filters: int
    slice_size: int
    batch_size: int
    max_epochs: int
    patience: int
    min_delta: float
    lr: float
    lr_decay: float
    lr_decay_every: int
    lr_floor: float
    adam_betas: tuple[float, float]
    adam_eps: float
    steps_per_epoch: int | None
    precision: str
    loss_reduction: str
    head_bias: float
    init: str
    finetune_head_prior: str | None
    depth_lr_decay: float = 1.0
    train_fraction: float = 1.0

    @classmethod
    def from_profile(cls, profile: Profile, tissue: str, base_net: str | None = None, seed: int = 0,
                     **overrides: Any) -> TrainConfig:
        """The profile's recipe for one net; ``overrides`` replace any field (ValueError for unknown ones)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise ValueError(f"unknown training parameter(s) {unknown}; valid: {sorted(names)}")
        recipe = {name: getattr(profile, name) for name in names - set(_PER_RUN)}
        if base_net is not None:
            recipe["lr"] = profile.finetune_lr
            if profile.finetune_max_epochs is not None:
                recipe["max_epochs"] = profile.finetune_max_epochs
        else:
            recipe["finetune_head_prior"] = None
        return cls(**({"tissue": tissue, "base_net": base_net, "seed": seed} | recipe | overrides))


@dataclass
class TrainResult:
    state: dict[str, torch.Tensor]  # best weights (CPU)
    history: list[dict[str, float]]  # one row per epoch: epoch, train_loss, val_loss, lr, seconds
    best_epoch: int
    best_val_loss: float
    run_dir: Path
    reused: bool
    meta: dict[str, Any]


# ---------------------------------------------------------------- devices and precision

def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device`` (None: plain fp32)."""
    if precision == "fp32":
        return None
    if precision == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        # bf16 pays off only on CPUs with native bf16 dot products (AVX-512 BF16 / AMX).
        return torch.bfloat16 if _cpu_has_bf16() else None
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def _cpu_has_bf16() -> bool:
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


# ---------------------------------------------------------------- optimizer and schedule

def level_index(param_name: str) -> int:
    """Depth index of a parameter's level: enc_layer{i} and dec_layer{i} -> i, head -> 1."""
    group = param_name.split(".", 1)[0]
    digits = "".join(c for c in group if c.isdigit())
    return int(digits) if digits else 1


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Adam:
    """Adam with the recipe's ``adam_betas`` and ``adam_eps``; one parameter group per depth level.

    The fused implementation (one kernel over all tensors of a group) is 6-20% faster per training
    step than the default per-tensor loop on the 2-core demo machine (benchmarks/train_step.py).
    """
    by_level: dict[int, list[torch.nn.Parameter]] = {}
    for name, p in model.named_parameters():
        by_level.setdefault(level_index(name), []).append(p)
    groups = [{"params": ps, "lr": cfg.lr * cfg.depth_lr_decay ** (i - 1), "level": i}
              for i, ps in sorted(by_level.items())]
    fused = all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in model.parameters())
    return torch.optim.Adam(groups, lr=cfg.lr, betas=cfg.adam_betas, eps=cfg.adam_eps, fused=fused)


def make_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig) -> torch.optim.lr_scheduler.LambdaLR:
    """Step decay per epoch (reference: x0.9 every 2 epochs); every group floored at ``lr_floor``."""

    def schedule(initial_lr: float):
        return lambda epoch: max(cfg.lr_decay ** math.floor((1 + epoch) / cfg.lr_decay_every),
                                 cfg.lr_floor / initial_lr)

    return torch.optim.lr_scheduler.LambdaLR(opt, [schedule(g["lr"]) for g in opt.param_groups])


# ---------------------------------------------------------------- batches

def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The shuffle of epoch ``epoch``: drawn from (seed, epoch) alone, so resuming repeats it."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))


def iterate_batches(ds: Dataset, order: torch.Tensor, batch_size: int,
                    num_workers: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (image float32 (B,1,S,S), mask (B,1,S,S)) batches in ``order``.

    The masks come as the dataset stores them (uint8 0/1 for a SliceDataset): :func:`train_epoch`
    and :func:`validation_loss` make them float32 on the device. Preloaded datasets are indexed
    directly (no collation cost); lazy ones go through a DataLoader whose workers open their own
    HDF5 handles and send uint8 masks (``SliceDataset.raw_item``): a quarter of the mask bytes
    between processes and no cast per slice, 1.3x the slices/s of float32 masks with 2 workers at
    384 x 384 (benchmarks/data_path.py), and 4x less mask traffic to a GPU.
    """
    if getattr(ds, "preload", False):
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            yield ds.images[idx], ds.masks[idx]
        return
    source = _StoredMasks(ds) if hasattr(ds, "raw_item") else ds
    yield from DataLoader(source, batch_size=batch_size, sampler=order.tolist(), num_workers=num_workers,
                          pin_memory=torch.cuda.is_available(), persistent_workers=False)


class _StoredMasks(Dataset):
    """A SliceDataset's items with the masks as stored (``raw_item``: uint8)."""

    def __init__(self, ds: Dataset) -> None:
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.ds.raw_item(i)


# ---------------------------------------------------------------- one epoch

def train_epoch(model: torch.nn.Module, opt: torch.optim.Optimizer, batches, device: torch.device,
                dtype: torch.dtype | None, scaler: torch.amp.GradScaler | None, bar=None,
                *, loss_reduction: str) -> float:
    """One pass of optimizer steps; returns the mean training loss. NaN/inf stops training.
    ``loss_reduction``: the recipe's (``TrainConfig.loss_reduction``)."""
    model.train()
    total, count = 0.0, 0
    for x, y in batches:
        x = x.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        y = y.to(device, non_blocking=True).float()  # uint8 masks become float32 here, on the device
        with autocast(device, dtype):
            loss = soft_dice_loss(model(x), y, reduction=loss_reduction)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"training loss became {loss.item()} at step {count}; "
                                     "lower the learning rate or check the data")
        opt.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()
        total, count = total + loss.item() * len(x), count + len(x)
        if bar is not None:
            bar.update(len(x))
            bar.set_postfix(loss=f"{loss.item():.4f}")
    return total / max(count, 1)


@torch.no_grad()
def validation_loss(model: torch.nn.Module, ds: Dataset, batch_size: int, device: torch.device,
                    dtype: torch.dtype | None, *, loss_reduction: str) -> float:
    """Soft-Dice loss over ``ds`` in eval mode (batch-norm running statistics).

    ``"batch"``: one soft Dice over every pixel of the set, so the value does not depend on how
    the set is cut into batches; ``"sample"``: the mean of per-slice losses.
    """
    model.eval()
    sums, total, count = torch.zeros(3, dtype=torch.float64), 0.0, 0
    for x, y in iterate_batches(ds, torch.arange(len(ds)), batch_size):
        x = x.to(device).contiguous(memory_format=torch.channels_last)
        with autocast(device, dtype):
            logits = model(x)
        y = y.to(device).float()
        if loss_reduction == "sample":
            total, count = total + soft_dice_loss(logits, y, reduction="sample").item() * len(x), count + len(x)
        else:
            sums += dice_sums(logits, y).double().cpu()
    if loss_reduction == "sample":
        return total / max(count, 1)
    inter, p, y_sum = sums.tolist()
    return 1 - (2 * inter + 1.0) / (p + y_sum + 1.0)


# ---------------------------------------------------------------- keys and checkpoints

@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """A hash of every kneelib source file the training path imports (:data:`TRAINING_ENTRY`)."""
    return source_fingerprint(TRAINING_ENTRY)


def state_hash(state: dict[str, torch.Tensor] | None) -> str | None:
    if state is None:
        return None
    h = hashlib.sha256()
    for k in sorted(state):
        h.update(k.encode() + state[k].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def run_key(cfg: TrainConfig, manifest_hash: str, base_state: dict | None,
            train_scans: tuple[str, ...] | None = None) -> str:
    """The identity of a run: its recipe, the data (manifest hash, and the training scans when the run trains
    on a subset of them, as the limited-data runs of 07 do), the code of the training path and the weights
    it starts from."""
    payload = {"config": dataclasses.asdict(cfg), "data": manifest_hash, "code": code_fingerprint(),
               "base": state_hash(base_state)}
    if train_scans is not None:
        payload["train_scans"] = list(train_scans)
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:20]


class CheckpointError(RuntimeError):
    """A checkpoint file exists but cannot be read (truncated, overwritten, not a kneelib checkpoint)."""


class CheckpointWarning(UserWarning):
    """An unreadable checkpoint was moved aside; its net is retrained (``best.pt``) or its run restarted."""


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint at ``path`` (weights only, on the CPU).

    Raises FileNotFoundError when it is missing and :class:`CheckpointError`, naming the file, when it
    cannot be read: torch's own error for a truncated file (``OSError: [Errno 22] Invalid argument``,
    ``PytorchStreamReader failed ...``) names none.
    """
    path = Path(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        raise
    except Exception as e:  # torch raises OSError, RuntimeError, EOFError or UnpicklingError here
        first_line = (str(e).strip().splitlines() or [""])[0][:200]  # torch's weights_only advice is not for us
        raise CheckpointError(f"{path}: unreadable checkpoint ({type(e).__name__}: {first_line})") from e
    if not isinstance(payload, dict):
        raise CheckpointError(f"{path}: not a kneelib checkpoint (holds a {type(payload).__name__})")
    return payload


def read_or_set_aside(path: Path, consequence: str) -> dict[str, Any] | None:
    """The checkpoint at ``path``; None when it is missing, or when it is unreadable: then it is renamed to
    ``<name>.corrupt`` (kept for inspection, replacing an older one) with a :class:`CheckpointWarning`
    that names it and says ``consequence``."""
    if not path.exists():
        return None
    try:
        return load_checkpoint(path)
    except CheckpointError as e:
        aside = path.with_name(path.name + ".corrupt")
        try:
            os.replace(path, aside)
        except FileNotFoundError:  # another process training the same net moved it first
            return None
        warnings.warn(f"{e}. Moved it to {aside.name}; {consequence}.", CheckpointWarning, stacklevel=2)
        return None


def resumable_epoch(run_dir: str | Path) -> int:
    """Epochs done by the unfinished run in ``run_dir`` (0 without a readable ``last.pt``); reads only."""
    try:
        return int(load_checkpoint(Path(run_dir) / "last.pt").get("epoch", 0))
    except (FileNotFoundError, CheckpointError):
        return 0


def _cpu_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def _subset_scans(train_ds: Dataset, cfg: TrainConfig) -> tuple[str, ...] | None:
    """The training scans of a run on a fraction of the training subjects (None for a full-data run, whose
    scans the manifest hash already fixes): which subjects a subset holds is chosen outside the training
    path (07's policy), so the key holds the choice itself."""
    scans = getattr(train_ds, "scan_ids", None)
    return tuple(scans) if scans is not None and cfg.train_fraction < 1 else None


@dataclass
class LoopState:
    """What the loop carries from epoch to epoch; saved in ``last.pt`` to resume."""

    epoch: int = 0                 # epochs done
    history: list[dict[str, float]] = dataclasses.field(default_factory=list)
    best_state: dict[str, torch.Tensor] | None = None  # weights of the best epoch so far (CPU)
    best_val_loss: float = math.inf
    best_epoch: int = -1
    bad_epochs: int = 0            # epochs since the last improvement of at least min_delta

    def record(self, row: dict[str, float], model: torch.nn.Module, min_delta: float) -> None:
        """Add one epoch's history row; keep the weights if its validation loss improved enough."""
        self.history.append(row)
        self.epoch += 1
        if row["val_loss"] < self.best_val_loss - min_delta:
            self.best_state, self.best_val_loss = _cpu_state(model), row["val_loss"]
            self.best_epoch, self.bad_epochs = self.epoch, 0
        else:
            self.bad_epochs += 1

    def payload(self, key: str, meta: dict[str, Any], **extra: Any) -> dict[str, Any]:
        """The checkpoint dict: this state, the run key and provenance, plus ``extra`` entries."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}  # no deep copy of weights
        return {"key": key, "meta": json.dumps(meta), **fields, **extra}

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> LoopState:
        return cls(**{f.name: payload[f.name] for f in dataclasses.fields(cls)})


def drop_best_weights(run_dir: str | Path) -> None:
    """Remove the weights from a finished run's ``best.pt``, keeping its key, history and provenance,
    so the run is still reused (its ``TrainResult.state`` is then None). The file is rewritten atomically."""
    path = Path(run_dir) / "best.pt"
    payload = load_checkpoint(path)
    if not payload.get("finished"):
        raise ValueError(f"{path}: not a finished run; its weights are still needed")
    save_torch(path, payload | {"best_state": None, "weights_dropped": True})


def _result(payload: dict[str, Any], run_dir: Path, reused: bool) -> TrainResult:
    return TrainResult(payload["best_state"], payload["history"], payload["best_epoch"],
                       payload["best_val_loss"], run_dir, reused, json.loads(payload["meta"]))


# Slices a fine-tuned net's output prior is calibrated on, and the most masks its target's prevalence is read
# from: evenly spaced over the training set (all of them when it has fewer), fixed so a rerun is identical.
CALIBRATION_SLICES = 64
PREVALENCE_SLICES = 1024
# The smallest prevalence a prior is calibrated to (a logit of -6.9): an empty mask set still gives a finite
# logit, well below the prevalence of every demo tissue (docs/measurements.md, "Fine-tune prior").
PREVALENCE_FLOOR = 1e-3


def spread_indices(n_total: int, n: int) -> torch.Tensor:
    """``min(n, n_total)`` indices evenly spaced over ``range(n_total)``, first and last included (int64)."""
    if n_total <= n:
        return torch.arange(n_total)
    return torch.linspace(0, n_total - 1, n, dtype=torch.float64).round().long()


def calibration_images(ds: Dataset, n: int = CALIBRATION_SLICES) -> torch.Tensor:
    """``n`` training slices evenly spaced over ``ds`` (:func:`spread_indices`), float32 (n, 1, S, S)."""
    return torch.cat([x for x, _ in iterate_batches(ds, spread_indices(len(ds), n), n)])


def mask_prevalence(ds: Dataset, n: int = PREVALENCE_SLICES) -> float:
    """The mean foreground fraction of ``ds``'s masks over ``n`` evenly spaced slices (all when fewer), in [0, 1].

    One fraction over every pixel of those slices (not a mean of per-slice fractions: all slices are the
    same size, so the two agree). Not floored: :func:`head_prior_logit` does that.
    """
    idx = spread_indices(len(ds), n)
    fg, total = 0.0, 0
    for _, y in iterate_batches(ds, idx, 64):
        fg, total = fg + float(y.double().sum()), total + y.numel()
    return fg / total if total else 0.0


def head_prior_logit(cfg: TrainConfig, train_ds: Dataset) -> float:
    """The logit a fine-tuned net's mean predicted probability is calibrated to (:func:`calibrate_head_bias`).

    ``cfg.finetune_head_prior``:

    - ``"fixed"`` (the profiles' default): ``cfg.head_bias``, the scratch nets' prior whatever the tissue
      (sigmoid(-3) = 0.047 on the demo).
    - ``"prevalence"``: logit(max(p, PREVALENCE_FLOOR)), p = :func:`mask_prevalence` of ``train_ds``, the target
      tissue's own share of its training pixels: the prior a net trained on that tissue would settle near. The
      base net puts that mass where its own tissue is, and on the demo nets fine-tuned from F(s) to the rarer
      T and M (0.4% of the pixels) then got no soft-Dice signal and stayed at a validation loss of 1.0
      (docs/measurements.md, "Fine-tune prior").
    """
    if cfg.finetune_head_prior == "fixed":
        return cfg.head_bias
    if cfg.finetune_head_prior != "prevalence":
        raise ValueError(f"finetune_head_prior={cfg.finetune_head_prior!r}: use fixed or prevalence (a scratch net's "
                         "config has None: build a fine-tuned net's with TrainConfig.from_profile(..., base_net=...))")
    p = max(mask_prevalence(train_ds), PREVALENCE_FLOOR)
    return math.log(p / (1 - p))


@torch.no_grad()
def calibrate_head_bias(model: UNet2D, images: torch.Tensor, logit: float,
                        dtype: torch.dtype | None = None) -> float:
    """Shift the head's bias so that the mean predicted probability over ``images`` is sigmoid(``logit``).

    For a fine-tuned net: the base net is confidently negative on the new tissue (on the demo, logits
    of -10 to -12 there), where soft Dice has almost no gradient, and some fine-tuned nets stayed stuck
    predicting nothing. Re-estimating only the output prior for the new task restores the gradient;
    every weight (and so every weight distance) is still the base net's.

    The mean is the one the net has in its own precision: the head (a 1 x 1 convolution) is evaluated under
    ``dtype``'s autocast on the features the rest of the net gives it there. Under bf16 autocast rounds the
    bias to bf16 (8 significant bits: a logit step of 2^-6 for a bias between 2 and 4 in magnitude), so the
    mean can only take discrete values; the bias chosen is the one of the two around the target whose mean is
    closest (within half a step: about 5e-4 in probability near p = 0.05). In fp32 the mean is exact to ~1e-7.

    Args:
        model: the net, modified in place (eval-mode forward, batch-norm running statistics).
        images: (N, 1, S, S) training slices, on the model's device.
        logit: the target mean probability, as a logit (:func:`head_prior_logit`).
        dtype: the autocast dtype the net trains in (None: fp32).

    Returns: the shift added to ``head.bias``.
    """
    was_training = model.training
    model.eval()
    features: list[torch.Tensor] = []
    hook = model.head.register_forward_hook(lambda module, inputs, output: features.append(inputs[0]))
    try:
        with autocast(images.device, dtype):
            model(images.contiguous(memory_format=torch.channels_last))
    finally:
        hook.remove()
    start = model.head.bias.detach().clone()

    def gap(shift: float) -> float:  # mean probability with this shift, minus the target
        model.head.bias.copy_(start + shift)
        with autocast(images.device, dtype):
            z = model.head(features[0])
        return torch.sigmoid(z.double()).mean().item() - target

    target = 1 / (1 + math.exp(-logit))
    lo, hi = -100.0, 100.0
    for _ in range(60):  # the mean increases with the shift: bisection, to a step far below the bias's rounding
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if gap(mid) < 0 else (lo, mid)
    shift = min((lo, hi), key=lambda s: abs(gap(s)))
    model.head.bias.copy_(start + shift)
    model.train(was_training)
    return shift


def build_model(cfg: TrainConfig, base_state: dict[str, torch.Tensor] | None) -> UNet2D:
    model = UNet2D(cfg.depth, cfg.base_filters, seed=cfg.seed, init=cfg.init)
    if base_state is not None:
        model.load_state_dict(base_state)
    elif cfg.head_bias:
        init_head_bias(model, cfg.head_bias)
    return model


# ---------------------------------------------------------------- the loop

def fit(cfg: TrainConfig, train_ds: Dataset, val_ds: Dataset, run_dir: str | Path, manifest_hash: str,
        base_state: dict[str, torch.Tensor] | None = None, force: bool = False,
        device: torch.device | None = None, num_workers: int = 0, progress: bool = True,
        stop_after_epochs: int | None = None, reuse_only: bool = False,
        keep_last: bool = False) -> TrainResult | None:
    """Train one network (from He init, or from ``base_state`` when fine-tuning) and return its
    best weights. Reuses a finished run with the same key unless ``force``; resumes an
    unfinished one. ``stop_after_epochs`` ends this call early (the run stays resumable); tests
    use it to simulate a kill. ``reuse_only`` returns the finished run or None, never trains.
    ``keep_last`` keeps ``last.pt`` (optimizer state included) after the run has finished.
    """
    run_dir = Path(run_dir)
    device = device or default_device()
    key = run_key(cfg, manifest_hash, base_state, _subset_scans(train_ds, cfg))
    best_path, last_path = run_dir / "best.pt", run_dir / "last.pt"
    if not force:
        best = read_or_set_aside(best_path, f"{run_dir.name} is trained again")
        if best is not None and best.get("key") == key and best.get("finished"):
            return _result(best, run_dir, reused=True)
    if reuse_only:
        return None
    state = None if force else read_or_set_aside(last_path, f"{run_dir.name} restarts from epoch 0")
    if state is not None and state.get("key") != key:
        state = None  # inputs changed: start over

    model = build_model(cfg, base_state).to(device).to(memory_format=torch.channels_last)
    dtype = autocast_dtype(cfg.precision, device)
    if base_state is not None and cfg.head_bias and state is None:
        calibrate_head_bias(model, calibration_images(train_ds).to(device), head_prior_logit(cfg, train_ds), dtype)
    opt = make_optimizer(model, cfg)
    sched = make_scheduler(opt, cfg)
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 and device.type == "cuda" else None
    meta = provenance(cfg, manifest_hash, cfg.seed) | {"key": key, "device": str(device),
                                                       "autocast": str(dtype)}
    loop = LoopState()
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        loop = LoopState.from_payload(state)

    n_train = len(train_ds)
    steps = n_train if cfg.steps_per_epoch is None else min(n_train, cfg.steps_per_epoch * cfg.batch_size)
    epochs_this_call = 0
    while loop.epoch < cfg.max_epochs and loop.bad_epochs < cfg.patience:
        if stop_after_epochs is not None and epochs_this_call >= stop_after_epochs:
            return _result(loop.payload(key, meta), run_dir, reused=False)
        lr = opt.param_groups[0]["lr"]
        order = epoch_order(n_train, cfg.seed, loop.epoch)[:steps]
        with tqdm(total=len(order), desc=f"{run_dir.name} epoch {loop.epoch + 1}/{cfg.max_epochs}",
                  unit="slice", disable=not progress, leave=False, mininterval=2.0) as bar:
            start = time.perf_counter()
            batches = iterate_batches(train_ds, order, cfg.batch_size, num_workers)
            train_loss = train_epoch(model, opt, batches, device, dtype, scaler, bar,
                                     loss_reduction=cfg.loss_reduction)
            val_loss = validation_loss(model, val_ds, cfg.batch_size * 2, device, dtype,
                                       loss_reduction=cfg.loss_reduction)
        if not math.isfinite(val_loss):
            raise FloatingPointError(f"{run_dir.name}: validation loss is {val_loss} at epoch {loop.epoch + 1}")
        sched.step()
        loop.record({"epoch": loop.epoch + 1, "train_loss": train_loss, "val_loss": val_loss, "lr": lr,
                     "seconds": time.perf_counter() - start}, model, cfg.min_delta)
        epochs_this_call += 1
        if progress:
            tqdm.write(f"{run_dir.name}: epoch {loop.epoch} train {train_loss:.4f} val {val_loss:.4f} "
                       f"lr {lr:.2e}{' *' if loop.best_epoch == loop.epoch else ''}")
        report_epoch(run_dir.name, loop.epoch, cfg.max_epochs, train_loss, val_loss, loop.history[-1]["seconds"])
        save_torch(last_path, loop.payload(key, meta, model=_cpu_state(model), optimizer=opt.state_dict(),
                                           scheduler=sched.state_dict()))

    payload = loop.payload(key, meta, finished=True)
    save_torch(best_path, payload)
    if not keep_last:
        last_path.unlink(missing_ok=True)  # after best.pt exists: a kill in between loses nothing
    return _result(payload, run_dir, reused=False)
