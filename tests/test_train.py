"""kneelib.nets.train on a tiny U-Net and a learnable toy data set (bright disks on noise).

Everything runs on the CPU with one thread so that runs are bitwise reproducible and the
whole module takes a few seconds. The resume tests compare against one uninterrupted
reference run (module fixture); one of them kills a real training process with SIGKILL.

The tests whose numbers depend on rounding (the reference run and everything compared with it,
early stopping, determinism) run under both precisions the suite trains in on a CPU, fp32 and bf16
autocast, whatever this CPU is: bf16 is native on AVX-512-BF16 / AMX CPUs and emulated (slower, the
same results) on AVX2-only ones, so a pass on either kind of machine covers both.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from kneelib.core.profiles import PROFILES
from kneelib.nets import train
from kneelib.nets.train import TrainConfig, TrainResult, fit
from kneelib.nets.unet import UNet2D, group_of

CPU = torch.device("cpu")
MANIFEST = "toy-manifest-sha256"
PRECISIONS = ("fp32", "bf16")


def recipe(tissue: str = "femoral_cartilage", **overrides) -> TrainConfig:
    """The paper profile's recipe for a scratch net of ``tissue`` (seed 0), with ``overrides``."""
    return TrainConfig.from_profile(PROFILES["paper"], tissue, seed=0, **overrides)


# The reference run: long enough to learn the disks, short enough for a unit test.
REF = recipe(depth=3, base_filters=4, slice_size=32, batch_size=8, max_epochs=6, patience=10, lr=2e-2,
             precision="fp32")
# For tests that only need some training to happen.
SMALL = dataclasses.replace(REF, max_epochs=2)


class ToyDisks(torch.utils.data.Dataset):
    """``n`` noisy 32x32 images with one bright disk each; the mask is the disk.

    Exposes ``.images`` float32 (N, 1, S, S) and ``.masks`` uint8 (N, 1, S, S) like a preloaded
    :class:`kneelib.data.slices.SliceDataset`; ``preload=False`` makes the loop use a DataLoader instead.
    """

    def __init__(self, n: int, seed: int, size: int = 32, preload: bool = True) -> None:
        g = torch.Generator().manual_seed(seed)
        yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
        centre = torch.rand(n, 2, generator=g) * (size - 16) + 8
        radius = torch.rand(n, generator=g) * 4 + 3
        dist = ((yy - centre[:, 0, None, None]) ** 2 + (xx - centre[:, 1, None, None]) ** 2).sqrt()
        disk = dist <= radius[:, None, None]
        self.masks = disk[:, None].to(torch.uint8)
        self.images = (2.0 * disk.float() + 0.5 * torch.randn(n, size, size, generator=g))[:, None].contiguous()
        self.preload = preload

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[i], self.masks[i].float()


def make_data() -> tuple[ToyDisks, ToyDisks]:
    return ToyDisks(32, seed=0), ToyDisks(16, seed=1)


def run(cfg: TrainConfig, run_dir: Path, data: tuple[ToyDisks, ToyDisks], **kwargs) -> TrainResult:
    return fit(cfg, data[0], data[1], run_dir, kwargs.pop("manifest_hash", MANIFEST), device=CPU,
               progress=False, **kwargs)


def same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def strip_seconds(history: list[dict[str, float]]) -> list[dict[str, float]]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


def val_loss_of(state: dict[str, torch.Tensor], cfg: TrainConfig, val: ToyDisks) -> float:
    """The validation loss of ``state`` computed afresh, as the loop computes it: in the precision ``cfg`` trained
    in and in channels-last memory format (under bf16 the two formats pick different kernels, which round
    differently: ~1e-5 on this loss)."""
    model = UNet2D(cfg.depth, cfg.base_filters).to(memory_format=torch.channels_last)
    model.load_state_dict(state)
    return train.validation_loss(model, val, 2 * cfg.batch_size, CPU, train.autocast_dtype(cfg.precision, CPU),
                                 loss_reduction=cfg.loss_reduction)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data() -> tuple[ToyDisks, ToyDisks]:
    return make_data()


@pytest.fixture(scope="module", params=PRECISIONS)
def ref_cfg(request) -> TrainConfig:
    """The reference recipe in each precision."""
    return dataclasses.replace(REF, precision=request.param)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data, ref_cfg) -> TrainResult:
    # keep_last: tests below compare the final epoch's checkpoint (weights, optimizer) with others
    return run(ref_cfg, tmp_path_factory.mktemp(f"reference_{ref_cfg.precision}"), data, keep_last=True)


# ------------------------------------------------------------------ schedule and optimizer


def _lrs_over_epochs(cfg: TrainConfig, epochs: int) -> list[list[float]]:
    model = UNet2D(cfg.depth, 2, seed=0)
    opt = train.make_optimizer(model, cfg)
    sched = train.make_scheduler(opt, cfg)
    out = []
    for _ in range(epochs):
        out.append([g["lr"] for g in opt.param_groups])
        opt.step()  # no gradients: a no-op, but keeps the scheduler's step-order check quiet
        sched.step()
    return out


def test_step_decay_schedule() -> None:
    cfg = recipe(tissue="meniscus", lr=1e-3)
    lrs = [row[0] for row in _lrs_over_epochs(cfg, 6)]
    expected = [1e-3 * 0.9 ** math.floor((1 + e) / 2) for e in range(6)]
    assert lrs == pytest.approx(expected, rel=1e-12)
    assert lrs[:4] == pytest.approx([1e-3, 9e-4, 9e-4, 8.1e-4], rel=1e-12)


def test_step_decay_floor() -> None:
    cfg = recipe(tissue="meniscus", lr=1e-3, lr_floor=8.5e-4)
    lrs = [row[0] for row in _lrs_over_epochs(cfg, 6)]
    assert lrs == pytest.approx([1e-3, 9e-4, 9e-4, 8.5e-4, 8.5e-4, 8.5e-4], rel=1e-12)
    long = [row[0] for row in _lrs_over_epochs(recipe(tissue="meniscus", depth=2), 400)]
    assert min(long) == pytest.approx(1e-8, rel=1e-9)  # reference floor reached, never undercut
    assert all(b <= a for a, b in zip(long, long[1:]))


def test_depth_dependent_learning_rates() -> None:
    cfg = recipe(tissue="meniscus", depth=4, lr=1e-2, depth_lr_decay=0.5)
    model = UNet2D(4, 2, seed=0)
    opt = train.make_optimizer(model, cfg)
    assert len(opt.param_groups) == 4
    lr_of = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    assert len(lr_of) == sum(1 for _ in model.parameters())  # every parameter in exactly one group
    for name, p in model.named_parameters():
        group = group_of(name)
        level = 1 if group == "head" else int(group.removeprefix("enc_layer").removeprefix("dec_layer"))
        assert lr_of[id(p)] == pytest.approx(1e-2 * 0.5 ** (level - 1)), name
    for name in ("head.weight", "enc_layer1.conv1.weight", "dec_layer1.up.weight", "dec_layer1.bn.bias"):
        assert lr_of[id(model.get_parameter(name))] == pytest.approx(1e-2)
    assert lr_of[id(model.enc_layer4.conv2.weight)] == pytest.approx(1e-2 / 8)
    assert lr_of[id(model.dec_layer3.up.weight)] == pytest.approx(1e-2 / 4)
    # the step decay scales every group by the same factor
    rows = _lrs_over_epochs(cfg, 3)
    for row in rows[1:]:
        assert [lr / lr0 for lr, lr0 in zip(row, rows[0])] == pytest.approx([0.9] * 4)


def test_uniform_learning_rate_by_default() -> None:
    opt = train.make_optimizer(UNet2D(4, 2, seed=0), recipe(tissue="meniscus", depth=4, lr=3e-4))
    assert {g["lr"] for g in opt.param_groups} == {3e-4}
    # the reference's Adam constants, read from the profile (the recipe is written once)
    assert opt.defaults["betas"] == (0.99, 0.995) and opt.defaults["eps"] == 1e-8
    other = train.make_optimizer(UNet2D(4, 2, seed=0), recipe(adam_betas=(0.9, 0.999), adam_eps=1e-6))
    assert other.defaults["betas"] == (0.9, 0.999) and other.defaults["eps"] == 1e-6


def test_epoch_order_depends_on_seed_and_epoch_only() -> None:
    a = train.epoch_order(50, seed=3, epoch=2)
    torch.manual_seed(999)  # the global RNG plays no part
    assert torch.equal(a, train.epoch_order(50, seed=3, epoch=2))
    assert sorted(a.tolist()) == list(range(50))
    assert not torch.equal(a, train.epoch_order(50, seed=3, epoch=3))
    assert not torch.equal(a, train.epoch_order(50, seed=4, epoch=2))


def test_iterate_batches_preloaded_and_loader_agree() -> None:
    fast, lazy = ToyDisks(10, seed=5), ToyDisks(10, seed=5, preload=False)
    order = train.epoch_order(10, seed=0, epoch=0)
    a = list(train.iterate_batches(fast, order, 4))
    b = list(train.iterate_batches(lazy, order, 4))
    assert [len(x) for x, _ in a] == [4, 4, 2]
    for (xa, ya), (xb, yb) in zip(a, b, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya.float(), yb.float())
        assert xa.dtype == torch.float32 and xa.shape == (len(xa), 1, 32, 32)
    assert torch.equal(a[0][0][0], fast.images[order[0]])


def test_autocast_dtype(monkeypatch) -> None:
    assert train.autocast_dtype("fp32", CPU) is None
    assert train.autocast_dtype("bf16", CPU) == torch.bfloat16
    # "auto" follows the CPU: bf16 only where it is native (on the AVX2 demo machine it is 5-7x slower)
    monkeypatch.setattr(train, "_cpu_has_bf16", lambda: True)
    assert train.autocast_dtype("auto", CPU) == torch.bfloat16
    monkeypatch.setattr(train, "_cpu_has_bf16", lambda: False)
    assert train.autocast_dtype("auto", CPU) is None


# ------------------------------------------------------------------ training


def test_training_reduces_validation_loss(reference: TrainResult, ref_cfg: TrainConfig) -> None:
    hist = reference.history
    assert [row["epoch"] for row in hist] == list(range(1, ref_cfg.max_epochs + 1))
    assert reference.best_val_loss < 0.75 * hist[0]["val_loss"]
    assert reference.best_val_loss < 0.6
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]
    assert not reference.reused
    # history records the scheduled lr of each epoch
    assert [row["lr"] for row in hist] == pytest.approx(
        [ref_cfg.lr * 0.9 ** math.floor((1 + e) / 2) for e in range(len(hist))])


def test_best_weights_are_those_of_the_best_epoch(reference: TrainResult, ref_cfg: TrainConfig, data) -> None:
    vals = [row["val_loss"] for row in reference.history]
    best = min(range(len(vals)), key=vals.__getitem__)
    assert reference.best_epoch == best + 1
    assert reference.best_val_loss == vals[best]
    assert val_loss_of(reference.state, ref_cfg, data[1]) == pytest.approx(vals[best], abs=1e-5)
    assert all(t.device.type == "cpu" for t in reference.state.values())
    # For this seed the best epoch is not the last one, so the result must differ from the final weights.
    assert reference.best_epoch < len(vals)
    last = train.load_checkpoint(reference.run_dir / "last.pt")["model"]
    assert not same_state(reference.state, last)


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("patience", [1, 3])
def test_early_stopping(tmp_path: Path, data, patience: int, precision: str) -> None:
    # A tiny lr and min_delta = 1 (the loss lies in [0, 1]): no epoch after the first can count
    # as an improvement, so the run stops after 1 + patience epochs with epoch 1 as the best.
    cfg = dataclasses.replace(REF, lr=1e-12, min_delta=1.0, patience=patience, max_epochs=20, precision=precision)
    small = (ToyDisks(16, seed=0), ToyDisks(8, seed=1))
    result = run(cfg, tmp_path, small, keep_last=True)
    assert len(result.history) == 1 + patience
    assert result.best_epoch == 1
    assert result.best_val_loss == result.history[0]["val_loss"]
    # the returned weights are epoch 1's, not the last epoch's (batch-norm running statistics
    # keep moving even at lr 1e-12, so the two differ)
    last = train.load_checkpoint(tmp_path / "last.pt")
    assert last["epoch"] == 1 + patience and last["bad_epochs"] == patience
    assert not same_state(result.state, last["model"])
    assert val_loss_of(result.state, cfg, small[1]) == pytest.approx(result.history[0]["val_loss"], abs=1e-5)
    assert val_loss_of(last["model"], cfg, small[1]) == pytest.approx(result.history[-1]["val_loss"], abs=1e-5)


def test_max_epochs_ends_run(tmp_path: Path, data) -> None:
    result = run(dataclasses.replace(SMALL, max_epochs=1), tmp_path, data)
    assert len(result.history) == 1 and result.best_epoch == 1


def test_steps_per_epoch_limits_the_epoch(tmp_path: Path, data, monkeypatch) -> None:
    seen: list[int] = []
    real = train.train_epoch

    def counting(model, opt, batches, *args, **kwargs):
        batches = list(batches)
        seen.append(sum(len(x) for x, _ in batches))
        return real(model, opt, batches, *args, **kwargs)

    monkeypatch.setattr(train, "train_epoch", counting)
    run(dataclasses.replace(SMALL, max_epochs=1, steps_per_epoch=1), tmp_path / "one", data)
    run(dataclasses.replace(SMALL, max_epochs=1), tmp_path / "all", data)
    assert seen == [SMALL.batch_size, len(data[0])]


# ------------------------------------------------------------------ resuming


def test_resume_after_simulated_kill(reference: TrainResult, ref_cfg: TrainConfig, tmp_path: Path, data) -> None:
    first = run(ref_cfg, tmp_path, data, stop_after_epochs=2)
    assert len(first.history) == 2 and not first.reused
    assert not (tmp_path / "best.pt").exists()
    assert train.load_checkpoint(tmp_path / "last.pt")["epoch"] == 2
    second = run(ref_cfg, tmp_path, data, stop_after_epochs=1)
    assert len(second.history) == 3
    final = run(ref_cfg, tmp_path, data, keep_last=True)
    assert not final.reused
    assert strip_seconds(final.history) == strip_seconds(reference.history)
    assert final.best_epoch == reference.best_epoch
    assert same_state(final.state, reference.state)
    assert same_state(train.load_checkpoint(tmp_path / "last.pt")["model"],
                      train.load_checkpoint(reference.run_dir / "last.pt")["model"])


_KILL_SCRIPT = textwrap.dedent("""
    import dataclasses, importlib.util, sys, time
    import torch
    torch.set_num_threads(1)
    spec = importlib.util.spec_from_file_location("toy_train_test", sys.argv[1])
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    from kneelib.nets import train
    real_epoch = train.train_epoch
    calls = []

    def slow_epoch(*args, **kwargs):
        # Same numbers, slower epochs: the parent's SIGKILL lands mid-run, after the optimizer
        # steps of an epoch and before its checkpoint. From epoch 3 on the child waits to be
        # killed, so a slow parent can never miss the window.
        loss = real_epoch(*args, **kwargs)
        calls.append(1)
        time.sleep(0.4 if len(calls) < 3 else 120)
        return loss

    train.train_epoch = slow_epoch
    tr, va = mod.make_data()
    cfg = dataclasses.replace(mod.REF, precision=sys.argv[3])
    train.fit(cfg, tr, va, sys.argv[2], mod.MANIFEST, device=torch.device("cpu"), progress=False)
    print("finished")
""")


def test_resume_after_real_kill(reference: TrainResult, ref_cfg: TrainConfig, tmp_path: Path, data) -> None:
    run_dir = tmp_path / "run"
    log = tmp_path / "child.log"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-c", _KILL_SCRIPT, __file__, str(run_dir), ref_cfg.precision],
                                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=Path(__file__).parents[1])
        try:
            deadline = time.monotonic() + 180
            while not (run_dir / "last.pt").exists():
                if proc.poll() is not None:
                    pytest.fail(f"training process exited early ({proc.returncode}):\n{log.read_text()}")
                if time.monotonic() > deadline:
                    pytest.fail(f"no last.pt after 180 s:\n{log.read_text()}")
                time.sleep(0.02)
            time.sleep(0.25)  # into the next epoch
            proc.send_signal(signal.SIGKILL)
            assert proc.wait(timeout=30) == -signal.SIGKILL
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
    assert "finished" not in log.read_text()
    assert not (run_dir / "best.pt").exists()
    killed_at = train.load_checkpoint(run_dir / "last.pt")["epoch"]
    assert 1 <= killed_at < ref_cfg.max_epochs
    resumed = run(ref_cfg, run_dir, data)
    assert not resumed.reused
    assert strip_seconds(resumed.history) == strip_seconds(reference.history)
    assert same_state(resumed.state, reference.state)
    # a leftover temporary file from an interrupted atomic write must not matter; once finished, the
    # resumable state (optimizer included) is dropped and only the result remains
    assert {p.name for p in run_dir.iterdir() if not p.name.startswith(".")} == {"best.pt"}


def test_kill_between_last_and_best_checkpoint(reference: TrainResult, ref_cfg: TrainConfig, tmp_path: Path, data,
                                              monkeypatch) -> None:
    """A run killed after its final last.pt but before best.pt finishes without training again."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "last.pt").write_bytes((reference.run_dir / "last.pt").read_bytes())

    def no_training(*args, **kwargs):
        raise AssertionError("the run was complete; no epoch should be trained")

    monkeypatch.setattr(train, "train_epoch", no_training)
    result = run(ref_cfg, run_dir, data)
    assert not result.reused and (run_dir / "best.pt").exists()
    assert same_state(result.state, reference.state)
    assert result.best_epoch == reference.best_epoch and result.history == reference.history
    assert run(ref_cfg, run_dir, data).reused


# ------------------------------------------------------------------ caching


def test_run_key_changes_with_every_input(reference: TrainResult) -> None:
    key = train.run_key(REF, MANIFEST, None)
    assert key == train.run_key(dataclasses.replace(REF), MANIFEST, None)
    changed = {"tissue": "meniscus", "base_net": "scratch_femoral", "depth": 4, "base_filters": 8,
               "slice_size": 64, "batch_size": 4, "max_epochs": 7, "patience": 3, "min_delta": 1e-4,
               "lr": 1e-3, "lr_decay": 0.5, "lr_decay_every": 3, "lr_floor": 1e-6, "depth_lr_decay": 0.5,
               "steps_per_epoch": 2, "train_fraction": 0.5, "seed": 1, "precision": "bf16",
               "loss_reduction": "sample", "head_bias": -3.0, "adam_betas": (0.9, 0.999), "adam_eps": 1e-6,
               "init": "keras_he_2_1_6", "finetune_head_prior": "fixed"}
    assert set(changed) == {f.name for f in dataclasses.fields(TrainConfig)}
    keys = {train.run_key(dataclasses.replace(REF, **{name: value}), MANIFEST, None)
            for name, value in changed.items()}
    assert len(keys) == len(changed) and key not in keys
    assert train.run_key(REF, "other", None) != key
    base = reference.state
    other = {k: v.clone() for k, v in base.items()}
    other["head.bias"] += 1e-3
    assert len({key, train.run_key(REF, MANIFEST, base), train.run_key(REF, MANIFEST, other)}) == 3


def test_cache_reuse_and_invalidation(tmp_path: Path, data, monkeypatch) -> None:
    first = run(SMALL, tmp_path, data)
    assert not first.reused

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run with the same key must not train again")

    with monkeypatch.context() as m:
        m.setattr(train, "train_epoch", no_training)
        again = run(SMALL, tmp_path, data)
    assert again.reused
    assert same_state(again.state, first.state)
    assert again.history == first.history and again.best_epoch == first.best_epoch
    assert again.meta == first.meta

    assert not run(dataclasses.replace(SMALL, lr=1e-2), tmp_path, data).reused   # a config field
    assert not run(SMALL, tmp_path, data).reused                                 # back: best.pt was replaced
    assert run(SMALL, tmp_path, data).reused
    assert not run(SMALL, tmp_path, data, manifest_hash="changed").reused        # the data
    base = {k: v.clone() for k, v in first.state.items()}
    tuned = run(SMALL, tmp_path, data, base_state=base)                           # the base weights
    assert not tuned.reused
    assert run(SMALL, tmp_path, data, base_state=base).reused
    base["head.bias"] += 1e-3
    assert not run(SMALL, tmp_path, data, base_state=base).reused
    forced = run(SMALL, tmp_path, data, force=True)                              # force
    assert not forced.reused
    assert same_state(forced.state, first.state)  # retraining from scratch is deterministic
    assert run(SMALL, tmp_path, data).reused


def test_changed_inputs_do_not_resume_a_stale_last_checkpoint(tmp_path: Path, data) -> None:
    run(SMALL, tmp_path, data, stop_after_epochs=1)
    other = dataclasses.replace(SMALL, seed=5)
    resumed = run(other, tmp_path, data)
    fresh = run(other, tmp_path / "fresh", data)
    assert len(resumed.history) == SMALL.max_epochs
    assert same_state(resumed.state, fresh.state)


# ------------------------------------------------------------------ determinism


@pytest.mark.parametrize("precision", PRECISIONS)
def test_determinism_across_run_dirs(tmp_path: Path, data, precision: str) -> None:
    small = dataclasses.replace(SMALL, precision=precision)
    a = run(small, tmp_path / "a", data)
    b = run(small, tmp_path / "b", data)
    c = run(dataclasses.replace(small, seed=1), tmp_path / "c", data)
    assert not b.reused
    assert same_state(a.state, b.state)
    assert strip_seconds(a.history) == strip_seconds(b.history)
    assert not same_state(a.state, c.state)
    weights = [k for k in a.state if k.endswith(".weight")]
    assert all(not torch.equal(a.state[k], c.state[k]) for k in weights)


# ------------------------------------------------------------------ failures


def test_nan_images_raise(tmp_path: Path) -> None:
    tr, va = ToyDisks(16, seed=0), ToyDisks(8, seed=1)
    tr.images[3, 0, 5, 5] = float("nan")
    with pytest.raises(FloatingPointError, match="loss became nan"):
        run(SMALL, tmp_path, (tr, va))
    assert not (tmp_path / "best.pt").exists()


def test_exploding_learning_rate_raises(tmp_path: Path) -> None:
    small = (ToyDisks(16, seed=0), ToyDisks(8, seed=1))
    with pytest.raises(FloatingPointError, match="(loss became|validation loss is) (nan|inf)"):
        run(dataclasses.replace(SMALL, lr=1e30, max_epochs=3), tmp_path, small)
    assert not (tmp_path / "best.pt").exists()


def test_nan_validation_raises(tmp_path: Path) -> None:
    tr, va = ToyDisks(16, seed=0), ToyDisks(8, seed=1)
    va.images[0, 0, 0, 0] = float("inf")
    with pytest.raises(FloatingPointError, match="validation loss is nan"):
        run(SMALL, tmp_path, (tr, va))


# ------------------------------------------------------------------ checkpoints


def test_checkpoint_contents(reference: TrainResult, ref_cfg: TrainConfig) -> None:
    key = train.run_key(ref_cfg, MANIFEST, None)
    best = torch.load(reference.run_dir / "best.pt", map_location="cpu", weights_only=True)
    last = torch.load(reference.run_dir / "last.pt", map_location="cpu", weights_only=True)

    assert best["key"] == last["key"] == key
    assert best["finished"] is True
    assert same_state(best["best_state"], reference.state)
    assert same_state(last["best_state"], reference.state)
    assert best["best_epoch"] == last["best_epoch"] == reference.best_epoch
    assert best["best_val_loss"] == last["best_val_loss"] == reference.best_val_loss
    assert strip_seconds(best["history"]) == strip_seconds(last["history"]) == strip_seconds(reference.history)

    # resumable state
    assert last["epoch"] == len(reference.history) == ref_cfg.max_epochs
    assert last["bad_epochs"] == ref_cfg.max_epochs - reference.best_epoch  # epochs since the last improvement
    assert set(last["model"]) == set(reference.state)
    opt = last["optimizer"]
    assert {"state", "param_groups"} <= set(opt)
    assert len(opt["state"]) == sum(1 for _ in UNet2D(ref_cfg.depth, ref_cfg.base_filters).parameters())
    assert all(s["step"].item() == ref_cfg.max_epochs * len(make_data()[0]) // ref_cfg.batch_size
               for s in opt["state"].values())
    assert last["scheduler"]["last_epoch"] == ref_cfg.max_epochs
    model = UNet2D(ref_cfg.depth, ref_cfg.base_filters)
    new_opt = train.make_optimizer(model, ref_cfg)
    new_opt.load_state_dict(opt)
    train.make_scheduler(new_opt, ref_cfg).load_state_dict(last["scheduler"])

    # provenance
    meta = json.loads(best["meta"])
    assert meta == reference.meta
    assert meta["config"] == json.loads(json.dumps(dataclasses.asdict(ref_cfg)))
    assert meta["data_manifest_sha256"] == MANIFEST
    assert meta["seed"] == ref_cfg.seed
    assert meta["versions"]["torch"] in (torch.__version__, torch.__version__.split("+")[0])
    assert isinstance(meta["git_commit"], str) and meta["git_commit"]
    assert meta["key"] == key
    assert not [p for p in reference.run_dir.iterdir() if p.name.startswith(".")]  # no temporary files left


# ------------------------------------------------------------------ fine-tuning


def test_fine_tuning_starts_from_base_state(reference: TrainResult, ref_cfg: TrainConfig, tmp_path: Path,
                                            data) -> None:
    cfg = dataclasses.replace(ref_cfg, base_net="reference", max_epochs=1, lr=1e-9, seed=3)
    tuned = run(cfg, tmp_path / "tuned", data, base_state=reference.state)
    scratch = run(cfg, tmp_path / "scratch", data)
    params = [k for k in reference.state if k.endswith((".weight", ".bias"))]
    for k in params:
        # Adam moves each weight by at most about lr per step
        assert torch.allclose(tuned.state[k], reference.state[k], atol=1e-7, rtol=0), k
    far = max((scratch.state[k] - reference.state[k]).abs().max().item() for k in params)
    assert far > 0.1
    assert tuned.meta["key"] != scratch.meta["key"]
    assert tuned.best_val_loss < scratch.best_val_loss
    # the base weights passed in are left untouched
    assert same_state(reference.state, train.load_checkpoint(reference.run_dir / "best.pt")["best_state"])


def test_build_model_head_bias_only_for_scratch_nets():
    cfg = dataclasses.replace(REF, head_bias=-3.0)
    scratch = train.build_model(cfg, None)
    assert scratch.head.bias.item() == -3.0
    reference = train.build_model(REF, None)
    assert reference.head.bias.item() == 0.0
    assert torch.equal(scratch.enc_layer1.conv1.weight, reference.enc_layer1.conv1.weight)
    base = {k: v.clone() for k, v in reference.state_dict().items()}
    tuned = train.build_model(cfg, base)  # fine-tuning keeps the base net's head
    assert tuned.head.bias.item() == 0.0


def test_calibrate_head_bias_sets_the_mean_probability_and_nothing_else():
    model = UNet2D(depth=2, base_filters=4, seed=1)
    images = torch.randn(6, 1, 16, 16)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    shift = train.calibrate_head_bias(model, images, logit=-3.0)
    assert model.training  # mode restored
    model.eval()
    with torch.no_grad():
        mean_p = torch.sigmoid(model(images)).mean().item()
    assert mean_p == pytest.approx(1 / (1 + math.exp(3.0)), abs=1e-6)
    after = model.state_dict()
    assert [k for k in before if not torch.equal(before[k], after[k])] == ["head.bias"]
    assert after["head.bias"].item() == pytest.approx(before["head.bias"].item() + shift, abs=1e-6)


def test_fine_tuned_net_starts_at_the_prior_only_when_head_bias_is_set(tmp_path, data):
    base = UNet2D(REF.depth, REF.base_filters, seed=5).state_dict()
    for head_bias, calibrated in ((-3.0, True), (0.0, False)):
        cfg = dataclasses.replace(REF, head_bias=head_bias, max_epochs=1, finetune_head_prior="fixed")
        result = run(cfg, tmp_path / str(head_bias), data, base_state=base)
        moved = result.state["enc_layer1.conv1.weight"] - base["enc_layer1.conv1.weight"]
        assert moved.abs().max() > 0  # it trained
        # one epoch of Adam moves the bias by at most about steps * lr; calibration moves it further
        steps = math.ceil(len(data[0]) / cfg.batch_size)
        far = abs(result.state["head.bias"].item() - base["head.bias"].item()) > 1.5 * steps * cfg.lr
        assert far == calibrated


def test_finished_run_keeps_only_its_result_and_is_reused(tmp_path: Path, data) -> None:
    first = run(dataclasses.replace(SMALL, max_epochs=2), tmp_path, data)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt"]
    best = train.load_checkpoint(tmp_path / "best.pt")
    assert best["finished"] and "optimizer" not in best and "model" not in best
    assert {"key", "history", "best_state", "best_epoch", "best_val_loss", "meta"} <= set(best)
    again = run(dataclasses.replace(SMALL, max_epochs=2), tmp_path, data)
    assert again.reused and same_state(again.state, first.state) and again.history == first.history


# ------------------------------------------------------------------ unreadable checkpoints

# Garbage from a fixed seed, so that every run sees the same bytes (random bytes can look like a pickle stream).
_DAMAGE = {"truncated": lambda b: b[: len(b) // 2], "garbage": lambda b: random.Random(0).randbytes(len(b)),
           "empty": lambda b: b""}


@pytest.mark.parametrize("damage", sorted(_DAMAGE))
def test_unreadable_checkpoint_error_names_the_file(tmp_path: Path, data, damage: str) -> None:
    run(SMALL, tmp_path, data)
    best = tmp_path / "best.pt"
    best.write_bytes(_DAMAGE[damage](best.read_bytes()))
    with pytest.raises(train.CheckpointError, match=rf"{best}: unreadable checkpoint"):
        train.load_checkpoint(best)
    with pytest.raises(FileNotFoundError):
        train.load_checkpoint(tmp_path / "missing.pt")


@pytest.mark.parametrize("damage", sorted(_DAMAGE))
def test_unreadable_best_checkpoint_is_moved_aside_and_the_net_retrained(tmp_path: Path, data, damage: str) -> None:
    first = run(SMALL, tmp_path, data)
    best = tmp_path / "best.pt"
    damaged = _DAMAGE[damage](best.read_bytes())
    best.write_bytes(damaged)
    with pytest.warns(train.CheckpointWarning, match=rf"{best}: unreadable.*best.pt.corrupt.*trained again"):
        again = run(SMALL, tmp_path, data)
    assert not again.reused  # retrained, to the same weights (its key is known)
    assert same_state(again.state, first.state)
    assert (tmp_path / "best.pt.corrupt").read_bytes() == damaged  # kept for inspection, not deleted
    assert run(SMALL, tmp_path, data).reused


def test_unreadable_best_checkpoint_with_reuse_only_is_not_a_result(tmp_path: Path, data) -> None:
    run(SMALL, tmp_path, data)
    (tmp_path / "best.pt").write_bytes(b"not a checkpoint")
    with pytest.warns(train.CheckpointWarning):
        assert run(SMALL, tmp_path, data, reuse_only=True) is None
    assert not (tmp_path / "best.pt").exists() and (tmp_path / "best.pt.corrupt").exists()


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_unreadable_last_checkpoint_restarts_the_run_from_epoch_0(tmp_path: Path, data, damage: str) -> None:
    uninterrupted = run(SMALL, tmp_path / "whole", data)
    run(SMALL, tmp_path, data, stop_after_epochs=1)
    last = tmp_path / "last.pt"
    last.write_bytes(_DAMAGE[damage](last.read_bytes()))
    assert train.resumable_epoch(tmp_path) == 0  # the Slurm job's status line reads it without failing
    with pytest.warns(train.CheckpointWarning, match=r"last.pt: unreadable.*restarts from epoch 0"):
        result = run(SMALL, tmp_path, data)
    assert [row["epoch"] for row in result.history] == [1, 2]  # from epoch 0, not resumed
    assert same_state(result.state, uninterrupted.state)
    assert (tmp_path / "last.pt.corrupt").exists()


# ------------------------------------------------------------------ the recipe comes from the profile


def test_every_recipe_field_comes_from_the_profile() -> None:
    paper = PROFILES["paper"]
    per_run = {"tissue", "base_net", "seed", "depth_lr_decay", "train_fraction"}
    recipe_fields = {f.name for f in dataclasses.fields(TrainConfig)} - per_run
    profile_fields = {f.name: f for f in dataclasses.fields(paper)}
    assert recipe_fields <= set(profile_fields)  # nothing in the recipe that the profile does not hold
    cfg = TrainConfig.from_profile(paper, "meniscus")
    for name in recipe_fields - {"finetune_head_prior"}:
        assert getattr(cfg, name) == getattr(paper, name), name
    # a scratch net has no base to calibrate: its key does not depend on the fine-tune prior
    assert cfg.finetune_head_prior is None
    assert TrainConfig.from_profile(paper, "meniscus", base_net="F(s)").finetune_head_prior == "fixed"
    # changing a profile field changes the config (nothing is copied by hand and forgotten)
    changed = {"depth": 4, "base_filters": 8, "slice_size": 64, "batch_size": 4, "max_epochs": 7, "patience": 3,
               "min_delta": 1e-4, "lr": 1e-2, "lr_decay": 0.5, "lr_decay_every": 3, "lr_floor": 1e-6,
               "adam_betas": (0.9, 0.999), "adam_eps": 1e-6, "steps_per_epoch": 2, "precision": "bf16",
               "loss_reduction": "sample", "head_bias": -3.0, "init": "keras_he_2_1_6",
               "finetune_head_prior": "prevalence"}
    assert set(changed) == recipe_fields
    for name, value in changed.items():
        base_net = "F(s)" if name == "finetune_head_prior" else None
        assert getattr(TrainConfig.from_profile(paper.replace(**{name: value}), "meniscus", base_net), name) == value


def test_fine_tuned_nets_take_the_fine_tune_recipe() -> None:
    p = PROFILES["paper"].replace(lr=2e-3, finetune_lr=5e-4, max_epochs=9)
    assert TrainConfig.from_profile(p, "meniscus").lr == 2e-3
    tuned = TrainConfig.from_profile(p, "meniscus", base_net="F(s)")
    assert tuned.lr == 5e-4 and tuned.max_epochs == 9 and tuned.base_net == "F(s)"
    assert TrainConfig.from_profile(p.replace(finetune_max_epochs=3), "meniscus", base_net="F(s)").max_epochs == 3
    with pytest.raises(ValueError, match=r"unknown training parameter\(s\) \['learning_rate'\]"):
        TrainConfig.from_profile(p, "meniscus", learning_rate=1.0)


def test_run_key_hashes_the_training_path_found_from_its_imports() -> None:
    from kneelib.core.fingerprint import source_fingerprint

    assert train.code_fingerprint() == source_fingerprint(train.TRAINING_ENTRY)
    assert not hasattr(train, "_CODE_FILES")


def test_per_run_fields_can_be_overridden_too() -> None:
    from kneelib.nets.run import NetSpec, train_config

    spec = NetSpec("meniscus", "femoral_cartilage", seed=1)
    assert train_config(PROFILES["paper"], spec).seed == spec.run_seed == 1021
    cfg = train_config(PROFILES["paper"], spec, seed=3, base_net=None)
    assert (cfg.seed, cfg.base_net, cfg.tissue) == (3, None, "meniscus")


def test_a_subset_run_is_keyed_by_its_training_scans(tmp_path: Path, data) -> None:
    """Which subjects a limited-data run trains on is chosen outside the training path: the key holds them."""
    subset = dataclasses.replace(SMALL, train_fraction=0.5)
    keys = {train.run_key(subset, MANIFEST, None, scans) for scans in (("a", "b"), ("a", "c"), None)}
    assert len(keys) == 3
    train_ds, val_ds = data
    train_ds.scan_ids = ("scan1", "scan2")
    try:
        first = run(subset, tmp_path, (train_ds, val_ds))
        assert first.meta["key"] == train.run_key(subset, MANIFEST, None, ("scan1", "scan2"))
        train_ds.scan_ids = ("scan1", "scan3")
        assert not run(subset, tmp_path, (train_ds, val_ds)).reused  # another subset: trained again
        full = run(SMALL, tmp_path / "full", (train_ds, val_ds))  # a full-data run: the manifest fixes its scans
        assert full.meta["key"] == train.run_key(SMALL, MANIFEST, None)
    finally:
        del train_ds.scan_ids
