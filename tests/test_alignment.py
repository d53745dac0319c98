"""Weight matching keeps the function of a net and undoes channel permutations."""

from __future__ import annotations

import pytest
import torch

from kneelib.compare import alignment
from kneelib.compare.alignment import align, permutation_spec, permute, random_permutations, weight_matching
from kneelib.compare.distances import kernel_distances
from kneelib.nets.unet import UNet2D


def busy_net(depth: int, base_filters: int, seed: int) -> UNet2D:
    """A He-initialized net with nonzero biases and batch-norm parameters/statistics, in eval mode,
    so every permuted tensor matters for the output."""
    torch.manual_seed(seed)
    net = UNet2D(depth=depth, base_filters=base_filters, seed=seed)
    for m in net.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
            torch.nn.init.normal_(m.bias, std=0.1)
        elif isinstance(m, torch.nn.BatchNorm2d):
            torch.nn.init.uniform_(m.weight, 0.5, 1.5)
            torch.nn.init.normal_(m.bias, std=0.1)
            m.running_mean.normal_(std=0.1)
            m.running_var.uniform_(0.5, 2.0)
    return net.eval()


def test_spec_groups_depth3() -> None:
    spec = permutation_spec(UNet2D(depth=3, base_filters=4).state_dict())
    assert len(spec) == 3 * 2 + 2 * 3  # conv1, conv2 per level; up per decoder level
    skip = [ax for ax in spec["enc_layer1.conv2"].axes if ax.key == "dec_layer1.conv1.weight"]
    assert [(ax.axis, ax.start) for ax in skip] == [(1, 4)]  # second half: concat is [up(x), skip]
    up = spec["dec_layer1.up"].axes
    assert (up[0].key, up[0].axis) == ("dec_layer1.up.weight", 1)  # (in, out, k, k): out is dim 1
    assert "dec_layer2.up.weight" in [ax.key for ax in spec["enc_layer3.conv2"].axes]  # latent level
    assert "head.weight" in [ax.key for ax in spec["dec_layer1.conv2"].axes]


@pytest.mark.parametrize("depth", [3, 4])
def test_align_preserves_outputs(depth: int) -> None:
    a, b = busy_net(depth, 4, 0), busy_net(depth, 4, 1)
    aligned = align(a, b).eval()
    x = torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(aligned(x), b(x), atol=1e-5)
    assert kernel_distances(a, aligned)["network"] < kernel_distances(a, b)["network"]


def test_permutation_is_recovered() -> None:
    net = busy_net(3, 4, 0)
    shuffled = permute(net, random_permutations(net.state_dict(), seed=1)).eval()
    x = torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.allclose(shuffled(x), net(x), atol=1e-5)
    assert kernel_distances(net, shuffled)["network"] > 0.1
    recovered = align(net, shuffled)
    assert all(v < 1e-6 for v in kernel_distances(net, recovered).values())
    # batch-norm statistics travel with their channels
    assert torch.equal(recovered.enc_layer2.bn.running_var, net.enc_layer2.bn.running_var)


def test_align_reduces_distance_of_independent_inits() -> None:
    a, b = UNet2D(depth=3, base_filters=8, seed=0), UNet2D(depth=3, base_filters=8, seed=1)
    raw, aligned = kernel_distances(a, b), kernel_distances(a, align(a, b))
    assert aligned["network"] < raw["network"]


def test_unknown_group_and_mismatch_raise() -> None:
    net = UNet2D(depth=2, base_filters=2)
    with pytest.raises(ValueError, match="unknown permutation groups"):
        permute(net, {"enc_layer9.conv1": torch.arange(2)})
    with pytest.raises(ValueError):
        align(net, UNet2D(depth=2, base_filters=4))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_skipping_unchanged_groups_gives_the_same_permutations(seed: int, monkeypatch) -> None:
    a, b = busy_net(4, 6, 10 + seed).state_dict(), busy_net(4, 6, 20 + seed).state_dict()
    calls = {"n": 0}
    similarity = alignment._similarity

    def counted(*args, **kwargs):
        calls["n"] += 1
        return similarity(*args, **kwargs)

    monkeypatch.setattr(alignment, "_similarity", counted)
    full = weight_matching(a, b, seed=seed, skip_unchanged=False)
    n_full, calls["n"] = calls["n"], 0
    fast = weight_matching(a, b, seed=seed)
    assert set(full) == set(fast) and all(torch.equal(full[k], fast[k]) for k in full)
    assert any(not torch.equal(p, torch.arange(len(p))) for p in fast.values())  # something was permuted
    groups = len(permutation_spec(a))
    assert n_full >= 2 * groups and n_full % groups == 0  # at least one improving sweep, then the fixed point
    assert calls["n"] < n_full  # the confirming sweep at least was mostly skipped
