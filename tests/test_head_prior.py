"""A fine-tuned net's output prior: calibrated to sigmoid(head_bias) (default) or to its target's prevalence."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from kneelib.core.profiles import PROFILES, get_profile
from kneelib.nets import train
from kneelib.nets.train import TrainConfig
from kneelib.nets.unet import UNet2D


class Masks(torch.utils.data.Dataset):
    """Preloaded slices whose masks hold ``counts[i]`` foreground pixels (the first ones of slice i)."""

    def __init__(self, counts: list[int], size: int = 16, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.images = torch.randn(len(counts), 1, size, size, generator=g)
        flat = torch.zeros(len(counts), size * size, dtype=torch.uint8)
        for i, c in enumerate(counts):
            flat[i, :c] = 1
        self.masks = flat.reshape(len(counts), 1, size, size)
        self.preload = True

    def __len__(self) -> int:
        return len(self.images)


def finetune_config(prior: str, **overrides) -> TrainConfig:
    p = PROFILES["tiny"].replace(head_bias=-3.0, finetune_head_prior=prior)
    return TrainConfig.from_profile(p, "tibial_cartilage", base_net="F(s)", **overrides)


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def test_spread_indices_are_fixed_evenly_spaced_and_all_when_few():
    assert train.spread_indices(5, 64).tolist() == [0, 1, 2, 3, 4]
    assert train.spread_indices(10, 4).tolist() == [0, 3, 6, 9]
    assert train.spread_indices(288, 64).tolist() == train.spread_indices(288, 64).tolist()
    assert len(set(train.spread_indices(288, 64).tolist())) == 64


def test_prevalence_of_a_hand_built_dataset():
    ds = Masks([0, 5, 10, 25, 0, 256], size=16)  # 296 of 6 * 256 pixels
    assert train.mask_prevalence(ds) == pytest.approx(296 / (6 * 256), abs=1e-12)
    # over a fixed subset: slices 0 and 5 only (2 evenly spaced of 6)
    assert train.mask_prevalence(ds, n=2) == pytest.approx(256 / (2 * 256), abs=1e-12)
    assert train.mask_prevalence(Masks([0, 0, 0])) == 0.0


def test_prior_logit_is_the_prevalence_floored_or_the_fixed_head_bias():
    ds = Masks([0, 5, 10, 25], size=16)
    p = 40 / (4 * 256)
    assert train.head_prior_logit(finetune_config("prevalence"), ds) == pytest.approx(logit(p), abs=1e-12)
    assert train.head_prior_logit(finetune_config("fixed"), ds) == -3.0
    empty = train.head_prior_logit(finetune_config("prevalence"), Masks([0, 0]))
    assert empty == pytest.approx(logit(train.PREVALENCE_FLOOR)) and math.isfinite(empty)
    scratch = TrainConfig.from_profile(PROFILES["tiny"].replace(head_bias=-3.0), "tibial_cartilage")
    with pytest.raises(ValueError, match="finetune_head_prior=None: use fixed or prevalence"):
        train.head_prior_logit(scratch, ds)


def mean_probability(model: UNet2D, images: torch.Tensor, dtype: torch.dtype | None) -> float:
    model.eval()
    with torch.no_grad(), train.autocast(torch.device("cpu"), dtype):
        return torch.sigmoid(model(images).float()).mean().item()


def bf16_neighbours(value: float) -> list[float]:
    """The bf16 numbers either side of ``value``'s bf16 rounding (8 significant bits)."""
    v = torch.tensor(value).bfloat16().float().item()
    ulp = 2.0 ** (math.floor(math.log2(abs(v))) - 7)
    return [v - ulp, v + ulp]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_after_calibration_the_mean_probability_is_the_prevalence(precision):
    ds = Masks([3, 40, 0, 12, 7, 100, 0, 9] * 10, size=16, seed=1)  # 80 slices: 64 evenly spaced calibrate
    model = UNet2D(depth=2, base_filters=4, seed=2)
    with torch.no_grad():
        model.head.bias.fill_(-11.0)  # a base net confidently negative on the new tissue
    prevalence = train.mask_prevalence(ds)
    dtype = train.autocast_dtype(precision, torch.device("cpu"))
    images = train.calibration_images(ds)
    assert images.shape == (64, 1, 16, 16)
    train.calibrate_head_bias(model, images, train.head_prior_logit(finetune_config("prevalence"), ds), dtype)
    mean_p = mean_probability(model, images, dtype)
    assert abs(mean_p - 1 / (1 + math.exp(3))) > 1e-2  # the fixed prior would be elsewhere
    if dtype is None:
        assert mean_p == pytest.approx(prevalence, abs=1e-4)
        return
    # bf16 autocast rounds the bias to bf16, so the mean takes discrete values: the calibrated bias is the
    # bf16 number whose mean is nearest the prevalence (here 2e-4 away, a step being 1.2e-3)
    assert mean_p == pytest.approx(prevalence, abs=1e-3)
    chosen = model.head.bias.item()
    for other in bf16_neighbours(chosen):
        with torch.no_grad():
            model.head.bias.fill_(other)
        assert abs(mean_probability(model, images, dtype) - prevalence) > abs(mean_p - prevalence)


def test_fit_calibrates_fine_tuned_nets_to_the_prior_of_their_setting(tmp_path, monkeypatch):
    ds, val = Masks([0, 20, 40, 4] * 4, size=16), Masks([10, 0], size=16, seed=3)
    base = UNet2D(2, 4, seed=5).state_dict()
    seen = []
    original = train.calibrate_head_bias
    monkeypatch.setattr(train, "calibrate_head_bias",
                        lambda model, images, lg, dtype=None: seen.append(lg) or original(model, images, lg, dtype))
    small = {"depth": 2, "base_filters": 4, "slice_size": 16, "max_epochs": 1, "precision": "fp32"}
    for prior in ("prevalence", "fixed"):
        train.fit(finetune_config(prior, **small), ds, val, tmp_path / prior, "m", base_state=base, progress=False)
    scratch = TrainConfig.from_profile(PROFILES["tiny"].replace(head_bias=-3.0), "tibial_cartilage", **small)
    train.fit(scratch, ds, val, tmp_path / "scratch", "m", progress=False)
    assert seen == [pytest.approx(logit(64 / (4 * 256))), -3.0]  # the scratch net is not calibrated


def test_the_prior_setting_keys_fine_tuned_nets_only():
    fixed, prevalence = (PROFILES["demo"].replace(finetune_head_prior=v) for v in ("fixed", "prevalence"))
    scratch = [train.run_key(TrainConfig.from_profile(p, "meniscus"), "m", None) for p in (fixed, prevalence)]
    assert scratch[0] == scratch[1]  # both settings share the scratch nets
    tuned = [train.run_key(TrainConfig.from_profile(p, "meniscus", base_net="F(s)"), "m", None)
             for p in (fixed, prevalence)]
    assert tuned[0] != tuned[1]


def test_the_prior_option_is_validated():
    assert get_profile("demo").finetune_head_prior == "fixed"
    assert get_profile("demo", finetune_head_prior="prevalence").finetune_head_prior == "prevalence"
    with pytest.raises(ValueError, match="finetune_head_prior='median': use fixed or prevalence"):
        get_profile("demo", finetune_head_prior="median")


def test_a_fixed_prior_is_the_old_behaviour():
    ds = Masks([0, 20, 40, 4], size=16)
    cfg = dataclasses.replace(finetune_config("fixed"), head_bias=-2.5)
    assert train.head_prior_logit(cfg, ds) == -2.5
