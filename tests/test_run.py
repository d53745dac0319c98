"""kneelib.nets.run: the net specs (names, folders, seeds) and the training config built from a profile."""

from __future__ import annotations

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
