from __future__ import annotations

import re

import pytest

from kneelib.core.profiles import PROFILES, get_profile


def test_paper_profile_is_the_reference_recipe():
    p = get_profile("paper")
    assert (p.depth, p.base_filters, p.slice_size, p.volume_shape) == (6, 32, 384, (384, 384, 160))
    assert (p.lr, p.max_epochs, p.patience, p.min_delta, p.lr_decay, p.lr_decay_every) == (1e-3, 100, 8, 1e-5, 0.9, 2)
    assert p.subjects == {"train": 60, "valid": 14, "test": 14}
    assert (p.adam_betas, p.adam_eps, p.finetune_lr) == ((0.99, 0.995), 1e-8, 1e-3)


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_profiles_are_valid(name):
    p = get_profile(name)
    assert p.slice_size % 2 ** (p.depth - 1) == 0


def test_overrides_and_their_errors():
    assert get_profile("demo", max_epochs=3, seeds=[1, 2]).seeds == (1, 2)
    assert get_profile("demo", lr=1).lr == 1.0
    with pytest.raises(ValueError, match="unknown profile parameter.*'epochs'"):
        get_profile("demo", epochs=3)
    with pytest.raises(ValueError, match="slice_size=100 must be divisible"):
        get_profile("demo", slice_size=100)
    with pytest.raises(ValueError, match="max_epochs='5' should be int"):
        get_profile("demo", max_epochs="5")
    with pytest.raises(ValueError, match="precision"):
        get_profile("tiny", precision="fp8")


@pytest.mark.parametrize("overrides, message", [
    ({"max_epochs": None}, "max_epochs=None is not allowed"),          # None where a value is needed
    ({"lr": None}, "lr=None is not allowed"),
    ({"steps_per_epoch": "all"}, "steps_per_epoch='all' should be int"),  # wrong type, field default None
    ({"finetune_max_epochs": 2.5}, "finetune_max_epochs=2.5 should be int"),
    ({"parallel_nets": True}, "parallel_nets=True should be int"),
    ({"seeds": [0, "one"]}, "seeds='one' should be int"),
    ({"adam_betas": [0.9, 1.0]}, "adam_betas=(0.9, 1.0) must be two numbers in [0, 1)"),
    ({"adam_betas": [0.9]}, "adam_betas=(0.9,) must be two numbers"),
    ({"adam_eps": 0}, "adam_eps=0.0 > 0"),
])
def test_bad_override_raises_naming_the_parameter(overrides, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        get_profile("tiny", **overrides)


def test_optional_fields_take_none_and_values_are_coerced():
    p = get_profile("tiny", steps_per_epoch=3, finetune_max_epochs=None, seeds=[0, 2], lr=1)
    assert p.steps_per_epoch == 3 and p.finetune_max_epochs is None
    assert p.seeds == (0, 2) and isinstance(p.lr, float) and p.lr == 1.0
    assert get_profile("tiny", steps_per_epoch=3).replace(steps_per_epoch=None).steps_per_epoch is None


def test_executor_parameters_and_their_errors():
    assert get_profile("tiny").executor == "local"
    assert get_profile("tiny", executor="submitit", slurm_mem_gb=4).slurm_mem_gb == 4.0
    with pytest.raises(ValueError, match="executor='dask': use one of local, submitit"):
        get_profile("tiny", executor="dask")
    with pytest.raises(ValueError, match="gpus_per_net=2: a net trains on one device"):
        get_profile("tiny", gpus_per_net=2)
    with pytest.raises(ValueError, match="slurm_time_min=0 must be >= 1"):
        get_profile("tiny", slurm_time_min=0)


def test_paper_smoke_keeps_the_paper_shapes_and_cuts_only_counts():
    paper, smoke = get_profile("paper"), get_profile("paper_smoke")
    # what can break at scale is the paper's
    shapes = ("depth", "base_filters", "slice_size", "lr", "finetune_lr", "lr_decay", "lr_decay_every",
              "min_delta", "patience", "loss_reduction", "head_bias", "precision", "policy_depth_decay")
    assert {k: getattr(smoke, k) for k in shapes} == {k: getattr(paper, k) for k in shapes}
    assert (smoke.depth, smoke.base_filters, smoke.slice_size) == (6, 32, 384)
    assert smoke.volume_shape[:2] == (384, 384) and smoke.volume_shape[2] >= 4
    assert smoke.lazy_slices and not paper.lazy_slices
    # what costs time is cut
    assert smoke.subjects == {"train": 2, "valid": 1, "test": 1}
    assert (smoke.max_epochs, smoke.steps_per_epoch, smoke.batch_size, smoke.seeds) == (1, 1, 2, (0,))
    assert smoke.cka_slices >= 4 and smoke.policy_pairs == ("T|F",) and smoke.policy_fractions == (0.5, 1.0)


def test_paper_smoke_net_is_the_34_6_million_parameter_unet():
    from kneelib.nets.unet import UNet2D

    p = get_profile("paper_smoke")
    net = UNet2D(p.depth, p.base_filters, seed=0)
    assert sum(t.numel() for t in net.parameters()) == 34_591_777  # about 34.6 M, docs/reference.md
    assert net.enc_layer6.conv2.weight.shape == (1024, 1024, 3, 3)


def test_tissues_default_to_the_papers_three_and_take_names_or_codes():
    assert get_profile("paper").tissues == ("femoral_cartilage", "tibial_cartilage", "meniscus")
    p = get_profile("tiny", tissues=["F", "patellar_cartilage", "TL"])
    assert p.tissues == ("femoral_cartilage", "patellar_cartilage", "lateral_tibial_cartilage")


@pytest.mark.parametrize("tissues, message", [
    (["femoral_cartilage"], "at least two tissues"),
    ("femoral_cartilage", "tissues='femoral_cartilage' should be tuple"),
    (["femoral_cartilage", "fibula"], "'fibula'"),
    (["meniscus", "femoral_cartilage", "M"], "['meniscus'] more than once"),
    ([], "at least two tissues"),
])
def test_bad_tissues_raise_naming_the_value(tissues, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        get_profile("tiny", tissues=tissues)


def test_policy_pairs_follow_the_tissues():
    # overriding tissues alone keeps the pairs that still fit ...
    assert get_profile("demo", tissues=["F", "T", "P"]).policy_pairs == ("T|F", "F|T")
    assert get_profile("paper", tissues=["M", "T"]).policy_pairs == ("M|T", "T|M")
    # ... and, when none does, fine-tunes the second tissue from the first
    assert get_profile("tiny", tissues=["femoral_cartilage", "patellar_cartilage"]).policy_pairs == ("P|F",)
    assert get_profile("tiny", tissues=["TM", "TL"]).policy_pairs == ("TL|TM",)
    # pairs given with the tissues are checked against them
    assert get_profile("tiny", tissues=["F", "P"], policy_pairs=["F|P"]).policy_pairs == ("F|P",)
    with pytest.raises(ValueError, match=re.escape("policy_pairs entry 'T|F'")):
        get_profile("tiny", tissues=["F", "P"], policy_pairs=["T|F"])
    with pytest.raises(ValueError, match=re.escape("policy_pairs entry 'P|F'")):
        get_profile("tiny", policy_pairs=["P|F"])  # P is not among the default tissues
    with pytest.raises(ValueError, match=re.escape("policy_pairs entry 'T|T'")):
        get_profile("tiny", policy_pairs=["T|T"])
