"""kneelib.study.null_world and kneelib.compare.displacement: the regenerated inits are the ones training
starts from, the null fine-tunes keep the real displacement's size and nothing of its direction, and the
null tables have the real tables' format."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from kneelib.compare import distances
from kneelib.compare.displacement import displacement_norms, matched_displacement
from kneelib.core.profiles import get_profile
from kneelib.names import base_of, net_name
from kneelib.nets import train
from kneelib.nets.run import NetSpec, train_config
from kneelib.study import analyses, nine_nets
from kneelib.study import null_world as nw

pytestmark = pytest.mark.usefixtures("one_thread")


def fake_trained(profile, seeds=(0,), scratch_step: float = 0.05, tune_step: float = 0.01) -> nw.States:
    """The study's nets "trained" without data: each scratch net its real init plus Gaussian noise of
    ``scratch_step`` per weight, each fine-tuned net its base plus noise of ``tune_step`` (all float tensors)."""
    gen = torch.Generator().manual_seed(42)

    def moved(state, step):
        return {k: v + step * torch.randn(v.shape, generator=gen) if v.is_floating_point() else v.clone()
                for k, v in state.items()}

    out: nw.States = {}
    for seed in seeds:
        specs = nine_nets.all_specs(seed, profile.tissues)
        out[seed] = {s.name: moved(nw.scratch_init(profile, s), scratch_step) for s in specs if s.base is None}
        out[seed] |= {s.name: moved(out[seed][s.base.name], tune_step) for s in specs if s.base is not None}
    return out


class _Started(Exception):
    def __init__(self, state):
        self.state = state


class _Slices(torch.utils.data.Dataset):
    """A preloaded slice set like kneelib.data.slices.SliceDataset: noise images, random masks."""

    preload = True

    def __init__(self, n: int, size: int) -> None:
        gen = torch.Generator().manual_seed(3)
        self.images = torch.randn(n, 1, size, size, generator=gen)
        self.masks = (torch.rand(n, 1, size, size, generator=gen) > 0.9).to(torch.uint8)

    def __len__(self) -> int:
        return len(self.images)


def start_of_fit(monkeypatch, tmp_path, profile, spec: NetSpec, base_state=None) -> dict[str, torch.Tensor]:
    """The weights ``fit`` holds when it builds its optimizer, i.e. just before the first step."""
    def capture(model, cfg):
        raise _Started({k: v.detach().cpu().clone() for k, v in model.state_dict().items()})

    monkeypatch.setattr(train, "make_optimizer", capture)
    ds = _Slices(8, profile.slice_size)
    with pytest.raises(_Started) as started:
        train.fit(train_config(profile, spec), ds, ds, tmp_path / spec.folder, "manifest", base_state=base_state,
                  progress=False)
    return started.value.state


@pytest.mark.parametrize("name", ["tiny", "demo"])  # demo: a head bias of -3, depth 6
def test_regenerated_init_is_bitwise_what_fit_starts_from(name, monkeypatch, tmp_path):
    profile = get_profile(name, seeds=(2,))
    spec = NetSpec("meniscus", None, 2)
    regenerated = nw.init_states(profile, {2: {spec.name: {}}})[2][spec.name]
    started = start_of_fit(monkeypatch, tmp_path, profile, spec)
    assert list(regenerated) == list(started)
    assert all(torch.equal(regenerated[k], started[k]) for k in started)
    assert regenerated["head.bias"].item() == profile.head_bias
    other = nw.init_states(profile, {2: {"F(s)": {}}})[2]["F(s)"]  # another net of the seed: another draw
    assert not torch.equal(other["enc_layer1.conv1.weight"], regenerated["enc_layer1.conv1.weight"])


def test_a_fine_tuned_net_starts_from_its_trained_base(monkeypatch, tmp_path):
    profile = get_profile("demo")
    states = fake_trained(profile)
    inits = nw.init_states(profile, states)
    assert inits[0]["T|F(s)"] is states[0]["F(s)"]
    started = start_of_fit(monkeypatch, tmp_path, profile, NetSpec("tibial_cartilage", "femoral_cartilage", 0),
                           base_state=states[0]["F(s)"])
    # fit calibrates the head bias on the training slices before the first step; everything else is the base
    assert all(torch.equal(inits[0]["T|F(s)"][k], started[k]) for k in started if k != "head.bias")
    with pytest.raises(KeyError, match="'TL\\(s\\)' is not a net"):
        nw.init_states(profile, {0: {"TL(s)": {}}})


def test_matched_displacement_keeps_each_norm_and_draws_an_unrelated_direction():
    gen = torch.Generator().manual_seed(0)
    base = {"a.conv.weight": torch.randn(64, 64, 3, 3, generator=gen), "a.conv.bias": torch.randn(64, generator=gen),
            "a.bn.running_var": torch.rand(64, generator=gen), "b.up.weight": torch.randn(8, 4, 3, 3, generator=gen)}
    tuned = {k: v + 0.1 * torch.randn(v.shape, generator=gen) for k, v in base.items()}
    start = {k: torch.randn(v.shape, generator=gen) for k, v in base.items()}
    null = matched_displacement(start, tuned, base, seed=5)
    real = displacement_norms(tuned, base)
    assert set(real) == {"a.conv.weight", "b.up.weight"}  # convolution weights only
    for key, norm in real.items():
        assert (null[key].double() - start[key].double()).norm().item() == pytest.approx(norm, rel=1e-5)
    # biases and batch-norm statistics stay at the start
    assert torch.equal(null["a.conv.bias"], start["a.conv.bias"])
    assert torch.equal(null["a.bn.running_var"], start["a.bn.running_var"])
    moved, real_move = (null["a.conv.weight"] - start["a.conv.weight"]).flatten(), (tuned["a.conv.weight"]
                                                                                  - base["a.conv.weight"]).flatten()
    cosine = torch.nn.functional.cosine_similarity(moved, real_move, dim=0).item()
    assert abs(cosine) < 4 / math.sqrt(moved.numel())  # 36864 weights: a random direction has |cos| ~ 0.005
    again = matched_displacement(base, tuned, base, seed=5)  # same seed, other start: same directions
    assert torch.allclose(again["a.conv.weight"] - base["a.conv.weight"], moved.reshape(64, 64, 3, 3), atol=1e-5)


def test_the_worlds_keep_every_fine_tunes_size_per_tensor():
    profile = get_profile("tiny")
    states = fake_trained(profile)
    inits = nw.init_states(profile, states)
    untrained, displaced = nw.untrained_world(profile, states, inits), nw.displaced_world(profile, states)
    for name in states[0]:
        if base_of(name) is None:
            assert untrained[0][name] is inits[0][name] and displaced[0][name] is states[0][name]
            continue
        base = net_name(base_of(name))
        real = displacement_norms(states[0][name], states[0][base])
        for world, start in ((untrained, inits[0][base]), (displaced, states[0][base])):
            got = displacement_norms(world[0][name], start)
            assert got.keys() == real.keys()
            assert all(got[k] == pytest.approx(real[k], rel=1e-5) for k in real), name
            assert torch.equal(world[0][name]["enc_layer1.bn.running_mean"], start["enc_layer1.bn.running_mean"])


def test_untrained_scratch_pairs_follow_the_he_null_at_moderate_width():
    profile = get_profile("tiny", base_filters=32)
    states = {0: {n: {} for n in ("F(s)", "T(s)", "M(s)")}}
    inits = nw.init_states(profile, states)
    pairs = distances.scratch_pairs_table(inits[0])
    expected = distances.he_null_distances(inits[0]["F(s)"])
    measured = pairs.groupby("group").distance.mean()
    for group in ("enc_layer2", "enc_layer3", "dec_layer1", "dec_layer2", "network"):
        assert measured[group] == pytest.approx(expected[group], rel=0.03), group


def _columns(tables: dict) -> dict:
    return {k: (sorted(v["by_seed"]), sorted(next(iter(v["by_seed"].values())))) if k == "headline"
            else list(v.columns) for k, v in tables.items()}


def test_null_claim_tables_have_the_real_tables_names_and_columns(tiny):
    profile, ctx = tiny
    states = fake_trained(profile)
    dist = analyses.distances(profile, states)
    real = analyses.claim_tables(pd.DataFrame(), dist, analyses.activations(profile, ctx, states).overlap,
                                 analyses.controls(profile, ctx, states, dist), pd.DataFrame(), pd.DataFrame())
    null = nw.null_claim_tables(profile, ctx, states, dist)
    assert set(null) == set(real) - {"per_scan", "policy", "history_all"}  # Dice and training length: no null
    assert _columns(null) == {k: c for k, c in _columns(real).items() if k in null}
    # scratch pairs are the inits' distances; the displaced world's fine-tunes are as far from their bases
    inits = nw.init_states(profile, states)
    at_init = distances.kernel_distances(inits[0]["F(s)"], inits[0]["T(s)"])
    row = null["scratch_pairs"].query("pair == 'F(s) vs T(s)' and group == 'network'")
    assert row.distance.item() == pytest.approx(at_init["network"])
    network = null["null_ratio"].query("group == 'network'")
    assert network.ratio.between(0.8, 1.2).all()  # an untrained pair sits at the He null
    assert null["headline"]["by_seed"]["0"]["to_own_scratch"] == pytest.approx(
        real["headline"]["by_seed"]["0"]["to_own_scratch"], rel=0.05)
