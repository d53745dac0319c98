"""kneelib.nets.run: the net specs (names, folders, seeds) and the training config built from a profile."""

from __future__ import annotations

import pytest

from kneelib import names
from kneelib.nets import run
from kneelib.study import nine_nets


def test_net_names_and_folders():
    assert [s.name for s in nine_nets.all_specs()] == ["F(s)", "T(s)", "M(s)", "T|F(s)", "M|F(s)", "F|T(s)", "M|T(s)",
                                                  "F|M(s)", "T|M(s)"]
    spec = run.NetSpec("meniscus", "tibial_cartilage", seed=2)
    assert spec.folder == "seed2/meniscus__from_tibial_cartilage"
    assert spec.base == run.NetSpec("tibial_cartilage", None, 2)
    seeds = [s.run_seed for seed in (0, 1) for s in nine_nets.all_specs(seed)]
    assert len(set(seeds)) == 18  # independent He inits and shuffles for every net of every seed


def test_finetune_config_uses_finetune_lr():
    from kneelib.core.profiles import get_profile

    p = get_profile("demo", lr=2e-3, finetune_lr=5e-4)
    assert run.train_config(p, run.NetSpec("meniscus")).lr == 2e-3
    cfg = run.train_config(p, run.NetSpec("meniscus", "femoral_cartilage"))
    assert cfg.lr == 5e-4 and cfg.base_net == "F(s)"
    assert run.train_config(get_profile("demo", loss_reduction="sample"), run.NetSpec("meniscus")
                              ).loss_reduction == "sample"
    capped = get_profile("demo", max_epochs=9, finetune_max_epochs=3)
    assert run.train_config(capped, run.NetSpec("meniscus")).max_epochs == 9
    assert run.train_config(capped, run.NetSpec("meniscus", "femoral_cartilage")).max_epochs == 3


def test_run_seeds_of_the_paper_nets_are_unchanged():
    # 1000 * seed + 10 * i(tissue) + (0 or 1 + i(base)) over F, T, M: the seeds every earlier net was trained with.
    expected = {"F(s)": 0, "T(s)": 10, "M(s)": 20, "T|F(s)": 11, "M|F(s)": 21, "F|T(s)": 2, "M|T(s)": 22,
                "F|M(s)": 3, "T|M(s)": 13}
    for seed in (0, 1, 2):
        seeds = {s.name: s.run_seed for s in nine_nets.all_specs(seed)}
        assert seeds == {n: 1000 * seed + v for n, v in expected.items()}
    assert run.NetSpec("tibial_cartilage", "femoral_cartilage", seed=1).run_seed == 1011
    assert run.NetSpec("femoral_cartilage").run_seed == 0
    # a net's seed does not depend on the other tissues of the study, nor on their order
    two = nine_nets.all_specs(0, ("patellar_cartilage", "femoral_cartilage"))
    assert {s.name: s.run_seed for s in two} == {"P(s)": 50, "F(s)": 0, "F|P(s)": 6, "P|F(s)": 51}


def test_nets_of_any_tissues():
    tissues = ("lateral_tibial_cartilage", "medial_tibial_cartilage", "patellar_cartilage", "femoral_cartilage")
    specs = nine_nets.all_specs(3, tissues)
    assert len(specs) == 4 + 4 * 3
    assert [s.name for s in specs[:4]] == ["TL(s)", "TM(s)", "P(s)", "F(s)"]
    assert specs[4].name == "TM|TL(s)"
    assert specs[4].folder == "seed3/medial_tibial_cartilage__from_lateral_tibial_cartilage"
    every = [s.run_seed for seed in (0, 1) for s in nine_nets.all_specs(seed, names.ALL_TISSUES)]
    assert len(every) == 2 * 64 and len(set(every)) == len(every)  # all eight tissues: still one seed per net


@pytest.mark.parametrize("tissue, base, match", [
    ("F", None, "names, not codes"), ("femoral_cartilage", "T", "names, not codes"),
    ("kneecap", None, "'kneecap'"), ("meniscus", "meniscus", "own tissue")])
def test_net_spec_rejects_bad_tissues(tissue, base, match):
    with pytest.raises(ValueError, match=match):
        run.NetSpec(tissue, base)
