"""benchmarks/training_loops.py: the loops both benchmarks time train the suite's recipe, the same way."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))  # the benchmarks run as scripts

import training_loops as loops  # noqa: E402

from kneelib.core.profiles import get_profile  # noqa: E402
from kneelib.nets.run import NetSpec, train_config  # noqa: E402

CPU = torch.device("cpu")


def _config():
    return loops.step_config(depth=2, filters=2, size=16, batch=4, precision="fp32")


def test_step_config_is_the_suites_config_of_a_scratch_net():
    profile = get_profile("paper", depth=2, base_filters=2, slice_size=16, batch_size=4, precision="fp32")
    assert _config() == train_config(profile, NetSpec(loops.TISSUE))
    assert _config().loss_reduction == get_profile("paper").loss_reduction


def _trained_weights(make_loop) -> dict[str, torch.Tensor]:
    cfg, data = _config(), loops.phantom_like(8, 16, seed=3)
    models = []
    wrap = lambda model: models.append(model) or model  # noqa: E731  (keeps the loop's model to read it back)
    make_loop(cfg, data, wrap)()
    return {k: v.detach().clone() for k, v in models[0].state_dict().items()}


def test_plain_and_suite_loops_take_the_same_steps_in_fp32():
    """Same init, data, lr, Adam constants and loss: after two steps the weights agree to rounding."""
    plain = _trained_weights(lambda cfg, data, wrap: loops.plain_loop(cfg, data, CPU, wrap=wrap))
    suite = _trained_weights(lambda cfg, data, wrap: loops.suite_loop(cfg, data, CPU, wrap=wrap))
    start = loops.UNet2D(2, 2, seed=_config().seed).state_dict()
    moved = [k for k in plain if k.endswith("weight") and not torch.equal(plain[k], start[k])]
    assert moved  # the loops trained
    for key in plain:
        torch.testing.assert_close(plain[key], suite[key], rtol=0, atol=1e-5, msg=key)


def test_loops_follow_the_configs_loss_reduction(monkeypatch):
    seen = []
    real = loops.soft_dice_loss
    monkeypatch.setattr(loops, "soft_dice_loss", lambda *a, **kw: seen.append(kw["reduction"]) or real(*a, **kw))
    cfg = _config()
    loops.plain_loop(cfg, loops.phantom_like(4, 16), CPU)()
    loops.step_flops(cfg, CPU)
    assert seen == [cfg.loss_reduction] * 2


def test_step_flops_count_a_backward_of_about_twice_the_forward():
    forward, total = loops.step_flops(_config(), CPU)
    assert 2.5 * forward < total < 3.5 * forward
