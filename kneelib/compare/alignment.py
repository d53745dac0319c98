"""Permutation alignment of two UNet2D nets by weight matching (Ainsworth et al., "Git Re-Basin", 2022).

Hidden channels of a net can be reordered without changing its function, so two nets that
compute the same thing may still be far apart in raw weight distance. ``align`` reorders the
hidden channels of net b to best match net a, after which ``kernel_distances`` measures
differences that permutations cannot explain.

Permutation groups of a UNet2D (one permutation per group, applied to every tensor axis the
channel touches):

- ``{level}.conv1``: conv1's output channels; consumed by the level's conv2 (input dim).
- ``{level}.conv2``: conv2's output channels, which are also the bn channels and the level's
  output (conv2 -> ReLU -> BN is per channel, so permuting is exact). ``enc_layer{i}`` output
  feeds ``enc_layer{i+1}.conv1`` (after max pooling) and the skip half of
  ``dec_layer{i}.conv1``'s input, i.e. the second block of channels since the decoder
  concatenates [up(x), skip]. The latent level and every ``dec_layer{i}`` feed the input dim
  (dim 0) of the next ``up`` weight; ``dec_layer1`` feeds the head.
- ``dec_layer{i}.up``: the transposed conv's output channels (dim 1 of its (in, out, k, k)
  weight); they fill the first block of ``dec_layer{i}.conv1``'s input.

The image channels (input of ``enc_layer1.conv1``) and the head's output are never permuted.
A permutation ``perm`` maps new channel j to old channel ``perm[j]`` (``index_select``).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from kneelib.compare.distances import check_same_architecture
from kneelib.nets.unet import UNet2D


@dataclass(frozen=True)
class Axis:
    """One block of one tensor axis that a permutation acts on.

    Attributes:
        key: state_dict key of the tensor.
        axis: the tensor dimension.
        start: first index of the permuted block along ``axis`` (the block has the group's size).
        match: whether the tensor enters the similarity matrix; running statistics are permuted
            but not matched (they describe the data, not learned weights).
    """

    key: str
    axis: int
    start: int = 0
    match: bool = True


@dataclass
class PermGroup:
    """A permutation group: its size and the tensor axes it permutes (producer first)."""

    name: str
    size: int
    axes: list[Axis] = field(default_factory=list)


def _depth(state: Mapping[str, torch.Tensor]) -> int:
    depth = 0
    while f"enc_layer{depth + 1}.conv1.weight" in state:
        depth += 1
    if depth == 0 or "head.weight" not in state:
        raise ValueError("not a UNet2D state_dict: enc_layer1.conv1.weight or head.weight missing")
    return depth


def _producer(state: Mapping[str, torch.Tensor], prefix: str, transposed: bool = False) -> list[Axis]:
    axes = [Axis(f"{prefix}.weight", 1 if transposed else 0), Axis(f"{prefix}.bias", 0)]
    return [a for a in axes if a.key in state]


def _batch_norm(state: Mapping[str, torch.Tensor], level: str) -> list[Axis]:
    axes = [Axis(f"{level}.bn.{p}", 0, match=p in ("weight", "bias"))
            for p in ("weight", "bias", "running_mean", "running_var")]
    return [a for a in axes if a.key in state]


def _level_output_consumers(level: str, depth: int, skip_start: dict[int, int]) -> list[Axis]:
    """Where a level's output (its conv2/bn channels) goes."""
    kind, i = level[:3], int(level.rsplit("layer", 1)[1])
    if kind == "enc" and i < depth:
        return [Axis(f"enc_layer{i + 1}.conv1.weight", 1),
                Axis(f"dec_layer{i}.conv1.weight", 1, skip_start[i])]
    if (kind == "enc" and i == depth and depth > 1) or (kind == "dec" and i > 1):
        below = depth - 1 if kind == "enc" else i - 1
        return [Axis(f"dec_layer{below}.up.weight", 0)]
    return [Axis("head.weight", 1)]


def permutation_spec(state: Mapping[str, torch.Tensor]) -> dict[str, PermGroup]:
    """The permutation groups of a UNet2D, read from its state_dict (see the module docstring).

    Args:
        state: a UNet2D state_dict (any depth and width).

    Returns:
        group name (``"enc_layer1.conv1"``, ``"dec_layer2.up"``, ...) -> PermGroup.
    """
    depth = _depth(state)
    levels = [f"enc_layer{i}" for i in range(1, depth + 1)] + [f"dec_layer{i}" for i in range(1, depth)]
    # the skip block of dec_layer{i}.conv1's input starts after the `up` channels
    skip_start = {i: state[f"dec_layer{i}.up.weight"].shape[1] for i in range(1, depth)}
    spec = {}
    for lv in levels:
        width = state[f"{lv}.conv1.weight"].shape[0]
        spec[f"{lv}.conv1"] = PermGroup(f"{lv}.conv1", width, _producer(state, f"{lv}.conv1")
                                        + [Axis(f"{lv}.conv2.weight", 1)])
        spec[f"{lv}.conv2"] = PermGroup(f"{lv}.conv2", width, _producer(state, f"{lv}.conv2")
                                        + _batch_norm(state, lv)
                                        + _level_output_consumers(lv, depth, skip_start))
    for i in range(1, depth):
        spec[f"dec_layer{i}.up"] = PermGroup(f"dec_layer{i}.up", skip_start[i],
                                             _producer(state, f"dec_layer{i}.up", transposed=True)
                                             + [Axis(f"dec_layer{i}.conv1.weight", 1, 0)])
    return spec


def _axes_by_key(spec: Mapping[str, PermGroup]) -> dict[str, list[tuple[str, Axis]]]:
    out: dict[str, list[tuple[str, Axis]]] = {}
    for name, group in spec.items():
        for ax in group.axes:
            out.setdefault(ax.key, []).append((name, ax))
    return out


def _take(t: torch.Tensor | np.ndarray, axis: int, idx: np.ndarray) -> torch.Tensor | np.ndarray:
    if isinstance(t, torch.Tensor):
        return t.index_select(axis, torch.from_numpy(idx))
    return np.take(t, idx, axis=axis)


def _permute_tensor(t: torch.Tensor | np.ndarray, entries: list[tuple[str, Axis]],
                    perms: Mapping[str, torch.Tensor | np.ndarray], skip: str | None = None
                    ) -> torch.Tensor | np.ndarray:
    """Apply every permutation in ``entries`` (except ``skip``) to its block of ``t``."""
    for name, ax in entries:
        if name == skip:
            continue
        perm = np.asarray(perms[name], dtype=np.int64)
        idx = np.arange(t.shape[ax.axis])
        idx[ax.start:ax.start + perm.size] = perm + ax.start
        t = _take(t, ax.axis, idx)
    return t


def permute_state(state: Mapping[str, torch.Tensor],
                  perms: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A UNet2D state_dict with hidden channels permuted; the function of the net is unchanged.

    Args:
        state: a UNet2D state_dict.
        perms: group name -> LongTensor permutation (new channel j = old channel perm[j]);
            groups left out stay in place.

    Returns:
        a new state_dict (tensors not touched by any permutation are shared, not copied).
    """
    spec = permutation_spec(state)
    unknown = set(perms) - set(spec)
    if unknown:
        raise ValueError(f"unknown permutation groups {sorted(unknown)}; known: {sorted(spec)}")
    full = {n: perms.get(n, torch.arange(g.size)) for n, g in spec.items()}
    by_key = _axes_by_key(spec)
    return {k: _permute_tensor(v, by_key[k], full) if k in by_key else v for k, v in state.items()}


def permute(model: UNet2D, perms: Mapping[str, torch.Tensor]) -> UNet2D:
    """A copy of a UNet2D with hidden channels permuted (same outputs up to rounding).

    Args:
        model: a UNet2D.
        perms: group name -> permutation, as in ``permute_state``.
    """
    out = copy.deepcopy(model)
    out.load_state_dict(permute_state(model.state_dict(), perms))
    return out


def random_permutations(state: Mapping[str, torch.Tensor], seed: int = 0) -> dict[str, torch.Tensor]:
    """One random permutation per group of a UNet2D state_dict (for tests and null models)."""
    gen = torch.Generator().manual_seed(seed)
    return {n: torch.randperm(g.size, generator=gen) for n, g in permutation_spec(state).items()}


def _channel_rows(t: np.ndarray, ax: Axis, n: int) -> np.ndarray:
    """The block of ``t`` along ``ax`` as an (n, rest) matrix: one row per channel."""
    return np.moveaxis(t, ax.axis, 0)[ax.start:ax.start + n].reshape(n, -1)


def _similarity(group: PermGroup, rows_a: list[np.ndarray], state_b: Mapping[str, np.ndarray],
                by_key: Mapping[str, list[tuple[str, Axis]]], perms: Mapping[str, np.ndarray]) -> np.ndarray:
    """(size, size) matrix: entry (i, j) is the dot product of a's channel i and b's channel j
    over every matched tensor of the group, with b's other permutations applied.

    ``rows_a`` holds a's channel rows of the matched axes (they never change, so they are cached).
    """
    n = group.size
    sim = np.zeros((n, n))
    for ax, a in zip([x for x in group.axes if x.match], rows_a, strict=True):
        wb = _permute_tensor(state_b[ax.key], by_key[ax.key], perms, skip=group.name)
        sim += a @ _channel_rows(wb, ax, n).T
    return sim


def _dependencies(spec: Mapping[str, PermGroup],
                  by_key: Mapping[str, list[tuple[str, Axis]]]) -> dict[str, tuple[str, ...]]:
    """For each group, the other groups whose permutations enter its similarity matrix."""
    deps = {}
    for name, group in spec.items():
        others = {other for ax in group.axes if ax.match for other, _ in by_key[ax.key] if other != name}
        deps[name] = tuple(sorted(others))
    return deps


def weight_matching(state_a: Mapping[str, torch.Tensor], state_b: Mapping[str, torch.Tensor],
                    max_iter: int = 100, seed: int = 0, skip_unchanged: bool = True) -> dict[str, torch.Tensor]:
    """Permutations of b's hidden channels that maximize the summed weight dot products with a.

    Coordinate ascent: each sweep visits the groups in a random order and solves one linear
    assignment per group with the others held fixed; it stops after a sweep without change
    (a fixed point) or after ``max_iter`` sweeps.

    A group none of whose neighbours' permutations changed since its last visit would get the
    same similarity matrix and the same assignment again, so with ``skip_unchanged`` it is not
    recomputed: the result is the same, bit for bit, and the sweeps that confirm the fixed
    point cost little (at 1024 channels one similarity matrix costs ~20 GFLOP in float64).

    Args:
        state_a: the reference UNet2D state_dict.
        state_b: the state_dict to permute; same architecture as a.
        max_iter: maximum number of sweeps over all groups.
        seed: seed of the visiting order.
        skip_unchanged: skip groups whose inputs are unchanged since their last visit (exact).

    Returns:
        group name -> LongTensor permutation, for ``permute_state(state_b, perms)``.
    """
    check_same_architecture(state_a, state_b)
    spec = permutation_spec(state_a)
    by_key = _axes_by_key(spec)
    # float64 numpy copies: similarity sums are long, and numpy's BLAS is quicker than torch's
    # threaded matmul for the many small matrices of a narrow net
    a = {k: v.detach().double().numpy() for k, v in state_a.items() if k in by_key}
    b = {k: v.detach().double().numpy() for k, v in state_b.items() if k in by_key}
    rows_a = {n: [_channel_rows(a[x.key], x, g.size) for x in g.axes if x.match] for n, g in spec.items()}
    perms = {n: np.arange(g.size) for n, g in spec.items()}
    names = list(spec)
    deps = _dependencies(spec, by_key)
    version = dict.fromkeys(names, 0)  # bumped whenever a group's permutation changes
    seen: dict[str, tuple[int, ...]] = {}  # the neighbours' versions at each group's last visit
    rng = np.random.default_rng(seed)
    for _ in range(max_iter):
        changed = False
        for i in rng.permutation(len(names)):
            name = names[i]
            inputs = tuple(version[d] for d in deps[name])
            if skip_unchanged and seen.get(name) == inputs:
                continue
            seen[name] = inputs
            sim = _similarity(spec[name], rows_a[name], b, by_key, perms)
            _, cols = linear_sum_assignment(sim, maximize=True)
            rows = np.arange(spec[name].size)
            old, new = sim[rows, perms[name]].sum(), sim[rows, cols].sum()
            # only strict improvements count, so ties cannot make the loop cycle
            if new > old + 1e-12 * (abs(old) + abs(new)):
                perms[name] = cols.astype(np.int64)
                version[name] += 1
                changed = True
        if not changed:
            break
    return {n: torch.from_numpy(p) for n, p in perms.items()}


def align(model_a: UNet2D, model_b: UNet2D, max_iter: int = 100, seed: int = 0) -> UNet2D:
    """A copy of model_b with hidden channels permuted to best match model_a (weight matching).

    The returned net computes the same function as model_b (exactly, up to float rounding);
    only the order of its hidden channels changes.

    Args:
        model_a: the reference UNet2D.
        model_b: the UNet2D to align; same architecture.
        max_iter: maximum sweeps of ``weight_matching``.
        seed: seed of the group visiting order.
    """
    perms = weight_matching(model_a.state_dict(), model_b.state_dict(), max_iter, seed)
    return permute(model_b, perms)
