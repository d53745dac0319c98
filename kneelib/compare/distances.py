"""Distances between the convolution weights of two networks of the same architecture.

The paper reports "the average Euclidean (L2) distance between learned convolution kernel
weights of two networks", for the whole network and per depth. No code of the paper is
public; ``reduction="kernel"`` (the default) is the one reading on the paper's scale (the paper's trained
scratch-vs-scratch 6.45e-2 lies 12-23% below its untrained null; docs/reference.md, "The distance and its
null"): for every (output channel, input
channel) pair of every convolution, the L2 norm of the difference of the two k x k kernels, averaged over all
kernels of a layer group. Two other readings (``"weight"``, ``"filter"``) and two scale-free
variants (``scale="relative"``, ``"cosine"``) are options of the same function.

Only 4-D ``*.weight`` tensors (Conv2d and ConvTranspose2d weights) enter any distance:
biases, batch-norm affine parameters and running statistics are left out.

Under He initialization the per-kernel distance of two *untrained* nets already shrinks like
2 / sqrt(C_in) with depth; ``he_null_distances`` and ``empirical_null`` give that baseline,
against which a depth trend (claim C1) has to be read, for PyTorch's ``he_normal`` or the authors' Keras
2.1.6 init (``init="keras_he_2_1_6"``: 0.883 of it for 3x3 kernels, ``truncated_pair_norm_mean``).

Nets are named as in the paper: ``"F(s)"`` is the femoral-cartilage net trained from scratch,
``"T|F(s)"`` the tibial-cartilage net fine-tuned from ``F(s)``. The table helpers at the end
take ``states``, a dict from such names to state_dicts, and skip any pair whose nets are absent; their
``tissues`` (names or codes, e.g. ``Profile.tissues``) fix which tissues are compared and in what order
(default: those with a scratch net in ``states``, in ``kneelib.names.ALL_TISSUES`` order: F, T, M first).
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from scipy import special
from torch import nn

from kneelib.core.profiles import INITS
from kneelib.names import (
    ALL_TISSUES,
    PAPER_HEADLINE,
    base_of,
    finetuned_nets,
    net_name,
    parse_net_name,
    tissue_code,
    tissue_pairs,
)
from kneelib.nets.unet import UNet2D, group_of

REDUCTIONS = ("kernel", "weight", "filter")
SCALES = ("absolute", "relative", "cosine")
NETWORK = "network"  # the key of the whole-network value in every result


StateLike = Mapping[str, torch.Tensor] | nn.Module

# Columns of the per-unit statistics: squared difference, squared norms of a and b, their
# dot product, and the number of scalars in the unit.
_DIFF, _AA, _BB, _AB, _N = range(5)


# ----------------------------------------------------------------------------- weights


def _transposed_keys(state: StateLike) -> set[str] | None:
    """Keys of ConvTranspose2d weights when a module is given; None for a bare state_dict."""
    if not isinstance(state, nn.Module):
        return None
    return {f"{name}.weight" for name, m in state.named_modules() if isinstance(m, nn.ConvTranspose2d)}


def _is_transposed(key: str, known: set[str] | None) -> bool:
    if known is not None:
        return key in known
    # A bare state_dict carries no module types: UNet2D names its only transposed conv `up`.
    parts = key.split(".")
    return len(parts) >= 2 and parts[-2] == "up"


def _state_dict(state: StateLike) -> Mapping[str, torch.Tensor]:
    return state.state_dict() if isinstance(state, nn.Module) else state


def check_same_architecture(state_a: StateLike, state_b: StateLike) -> None:
    """Raise ValueError unless both state_dicts have the same keys with the same shapes.

    Args:
        state_a, state_b: state_dicts (or modules) of the two networks.

    Raises:
        ValueError: naming the first mismatched key and both shapes (``missing`` if absent).
    """
    sa, sb = _state_dict(state_a), _state_dict(state_b)
    for key in list(sa) + [k for k in sb if k not in sa]:
        shape_a = tuple(sa[key].shape) if key in sa else "missing"
        shape_b = tuple(sb[key].shape) if key in sb else "missing"
        if shape_a != shape_b:
            raise ValueError(f"architectures differ at {key!r}: {shape_a} in state_a vs {shape_b} in state_b")


def conv_weights(state: StateLike) -> dict[str, tuple[torch.Tensor, bool]]:
    """The convolution weights of a network, in state_dict order.

    Args:
        state: a state_dict or a module. With a module, transposed convolutions are found by
            type; with a state_dict, by UNet2D's naming (``*.up.weight``).

    Returns:
        key -> (weight, is_transposed) for every 4-D ``*.weight`` tensor. Conv2d weights are
        (out, in, kH, kW); ConvTranspose2d weights are (in, out, kH, kW).
    """
    known = _transposed_keys(state)
    return {k: (v, _is_transposed(k, known)) for k, v in _state_dict(state).items()
            if k.endswith(".weight") and v.ndim == 4}


# ----------------------------------------------------------------------------- distances


def _units(w: torch.Tensor, transposed: bool, reduction: str) -> torch.Tensor:
    """Reshape a weight to (n_units, unit_size): one row per kernel, filter, or the whole tensor."""
    if reduction == "kernel":
        return w.reshape(-1, w.shape[-2] * w.shape[-1])  # any (channel, channel) pair; layout-free
    if reduction == "filter":
        w = w.transpose(0, 1) if transposed else w  # output filters along dim 0
        return w.reshape(w.shape[0], -1)
    return w.reshape(1, -1)


def _unit_stats(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-row statistics (n_units, 5) in float64: see the ``_DIFF.._N`` columns."""
    a, b = a.detach().double(), b.detach().double()
    n = torch.full((a.shape[0],), float(a.shape[1]), dtype=torch.float64)
    return torch.stack([((a - b) ** 2).sum(1), (a * a).sum(1), (b * b).sum(1), (a * b).sum(1), n], dim=1)


def _unit_values(stats: torch.Tensor, reduction: str, scale: str) -> torch.Tensor:
    """One value per unit; units whose norm the scale divides by is zero are dropped."""
    if scale == "absolute":
        # "weight" is an RMS over scalars; "kernel"/"filter" are L2 norms of the unit.
        denom = stats[:, _N] if reduction == "weight" else torch.ones_like(stats[:, _N])
        return torch.sqrt(stats[:, _DIFF] / denom)
    if scale == "relative":
        keep = stats[:, _AA] > 0
        return torch.sqrt(stats[keep, _DIFF] / stats[keep, _AA])
    keep = (stats[:, _AA] > 0) & (stats[:, _BB] > 0)
    return 1.0 - stats[keep, _AB] / torch.sqrt(stats[keep, _AA] * stats[keep, _BB])


def _reduce(stats: torch.Tensor, reduction: str, scale: str) -> float:
    """Mean of the unit values of one group (or the network); nan if no unit is usable."""
    if reduction == "weight":
        stats = stats.sum(0, keepdim=True)  # the unit is the whole group
    values = _unit_values(stats, reduction, scale)
    return float(values.mean()) if values.numel() else float("nan")


def kernel_distances(state_a: StateLike, state_b: StateLike, reduction: str = "kernel",
                     scale: str = "absolute") -> dict[str, float]:
    """Distance between the convolution weights of two nets, per layer group and overall.

    Only 4-D ``*.weight`` tensors (Conv2d, ConvTranspose2d) are compared. Biases, batch-norm
    weight/bias and running statistics are excluded: the paper speaks of convolution kernels.
    Groups are the first dotted component of the key (``enc_layer1``, ``dec_layer1``, ``head``).

    Args:
        state_a, state_b: state_dicts (or modules) of two nets of identical architecture.
        reduction: what one unit of comparison is.

            - ``"kernel"`` (default, the paper's most likely reading): each k x k kernel, i.e.
              one per (output, input) channel pair; value = L2 norm of the kernel difference.
            - ``"weight"``: the whole group; value = RMS of the per-scalar differences,
              sqrt(mean((a - b)^2)) over every weight of the group.
            - ``"filter"``: each output filter, the (in, k, k) block (dim 1 of a transposed
              conv weight is its output); value = L2 norm of the filter difference.
        scale: how a unit's value is measured.

            - ``"absolute"``: as above (weight units, i.e. no normalization).
            - ``"relative"``: ||a - b|| / ||a|| per unit. Not symmetric: ``state_a`` is the
              reference. Units with ||a|| = 0 are left out of the mean.
            - ``"cosine"``: 1 - cos(a, b) per unit, in [0, 2]. Units where either norm is zero
              are left out of the mean.

    Returns:
        group -> mean unit value over all units of the group's weights, in state_dict order,
        then ``"network"``: the mean over all units of the net (a unit-weighted mean, not the
        mean of the group values). For ``"weight"`` the network is one unit: the RMS (or
        relative norm, or cosine) over every convolution weight of the net at once.
        A group with no usable unit (only possible for relative/cosine) is nan.

    Raises:
        ValueError: on an unknown option or mismatched keys/shapes (names key and shapes).
    """
    if reduction not in REDUCTIONS or scale not in SCALES:
        raise ValueError(f"reduction must be one of {REDUCTIONS} and scale one of {SCALES}; "
                         f"got {reduction!r}, {scale!r}")
    check_same_architecture(state_a, state_b)
    wb = conv_weights(state_b)
    groups: dict[str, list[torch.Tensor]] = {}
    for key, (a, transposed) in conv_weights(state_a).items():
        rows = _unit_stats(_units(a, transposed, reduction), _units(wb[key][0], transposed, reduction))
        groups.setdefault(group_of(key), []).append(rows)
    if not groups:
        raise ValueError("no 4-D convolution weights (*.weight) found in the state_dicts")
    out = {g: _reduce(torch.cat(rows), reduction, scale) for g, rows in groups.items()}
    out[NETWORK] = _reduce(torch.cat([r for rows in groups.values() for r in rows]), reduction, scale)
    return out


# ----------------------------------------------------------------------------- null model


def _chi_mean(n: int) -> float:
    """E||z|| for z ~ N(0, I_n): sqrt(2) Gamma((n+1)/2) / Gamma(n/2)."""
    return math.sqrt(2.0) * math.exp(math.lgamma((n + 1) / 2) - math.lgamma(n / 2))


# Keras 2.1.6's he_normal cuts its normal at this many of its stds (kneelib.nets.unet.keras_he_2_1_6_).
KERAS_CUT = 2.0


def truncated_std(cut: float = KERAS_CUT) -> float:
    """The std of a standard normal truncated to [-cut, cut]: 0.87962566 for cut = 2."""
    z = math.erf(cut / math.sqrt(2))
    return math.sqrt(1 - 2 * cut * math.exp(-cut * cut / 2) / (math.sqrt(2 * math.pi) * z))


def _difference_density(s: np.ndarray, cut: float) -> np.ndarray:
    """Density at s >= 0 of x - y, x and y independent standard normals truncated to [-cut, cut].

    The product of the two normal densities is exp(-s^2 / 4) exp(-(x - s/2)^2) / (2 pi); integrating x over
    [s - cut, cut] gives sqrt(pi) erf(cut - s/2). Divided by Z^2, Z = erf(cut / sqrt 2) the mass kept.
    """
    z = math.erf(cut / math.sqrt(2))
    return np.exp(-s * s / 4) * special.erf(cut - s / 2) / (2 * math.sqrt(math.pi) * z * z)


@functools.lru_cache(maxsize=64)
def truncated_pair_norm_mean(n: int, cut: float = KERAS_CUT) -> float:
    """E||x - y|| for x, y independent n-vectors of standard normals truncated to [-cut, cut] (iid entries).

    No closed form; an exact integral, evaluated numerically to about 1e-9 relative. With S = ||x - y||^2,
    sqrt(S) = (1 / (2 sqrt(pi))) int_0^inf (1 - exp(-t S)) t^(-3/2) dt, so
    E sqrt(S) = (1 / (2 sqrt(pi))) int_0^inf (1 - L(t)^n) t^(-3/2) dt with L(t) = E exp(-t d^2) for one entry's
    difference d (:func:`_difference_density`). L is a Gauss-Legendre sum over d in [0, min(2 cut, 12 / sqrt t)]
    (beyond, exp(-t d^2) < e^-144), the outer integral a trapezoid in u = log t over [-60, 60] (the integrand
    falls like exp(-|u| / 2) at both ends). ``cut = inf`` gives the plain normal's sqrt(2) E[chi_n].

    Args:
        n: entries per unit (k * k for a kernel).
        cut: the truncation, in stds of the normal before the cut.

    Returns:
        the expected distance, in units of the std before the cut.
    """
    if n < 1 or not cut > 0:
        raise ValueError(f"need n >= 1 and cut > 0, got {n}, {cut}")
    nodes, weights = np.polynomial.legendre.leggauss(200)
    u = np.arange(-60.0, 60.0 + 1e-9, 0.02)
    t = np.exp(u)[:, None]
    support = min(2 * cut, 40.0)  # beyond 40 the density (at most exp(-d^2 / 4)) is below e^-400
    upper = np.minimum(support, 12 / np.sqrt(t))
    d = (nodes[None, :] + 1) / 2 * upper
    w = weights[None, :] / 2 * upper
    density = _difference_density(d, cut)
    # 1 - L(t): as the integral of density * (1 - exp(-t d^2)) while the nodes span the support (small t, no
    # cancellation); else 1 minus the integral of density * exp(-t d^2), whose mass lies within the nodes
    whole = 2 * (w * density * -np.expm1(-t * d * d)).sum(1)
    peak = 1 - 2 * (w * density * np.exp(-t * d * d)).sum(1)
    one_minus_l = np.where(upper[:, 0] >= support, whole, peak)
    integrand = -np.expm1(n * np.log1p(-one_minus_l)) / np.sqrt(t[:, 0])  # (1 - L^n) t^(-1/2): dt = t du
    return float(np.trapezoid(integrand, u) / (2 * math.sqrt(math.pi)))


def _pair_norm_mean(n: int, fan_in: int, init: str) -> float:
    """E||a - b|| for the n weights of one unit of two independent inits ``init`` of a weight with ``fan_in``."""
    he_std = math.sqrt(2.0 / fan_in)
    if init == "he_normal":
        return he_std * math.sqrt(2.0) * _chi_mean(n)
    return he_std * truncated_pair_norm_mean(n, KERAS_CUT)


def _check_init(init: str) -> None:
    if init not in INITS:
        raise ValueError(f"init={init!r}: use {' or '.join(INITS)}")


def he_null_kernel_distance(c_in_fan: int, k: int = 3, init: str = "he_normal") -> float:
    """Expected L2 distance between corresponding k x k kernels of two independent He inits.

    ``"he_normal"``: each weight is N(0, 2 / fan_in) with fan_in = c_in_fan * k * k, so the difference of two
    independent draws is N(0, 4 / fan_in) per weight and the norm of the k*k-dim difference
    is sigma * sqrt(2) * Gamma((k*k + 1) / 2) / Gamma(k*k / 2), sigma = sqrt(4 / fan_in).
    For 3x3 kernels that is about 1.95 / sqrt(c_in_fan), i.e. roughly 2 / sqrt(C_in).
    ``"keras_he_2_1_6"``: each weight is that normal truncated at 2 of its stds (std 0.8796 sqrt(2 / fan_in)):
    sqrt(2 / fan_in) * :func:`truncated_pair_norm_mean` (k * k), about 1.70 / sqrt(c_in_fan) for 3x3 kernels.

    Args:
        c_in_fan: the channel count PyTorch takes fan_in from (dim 1 of the weight: the input
            channels of a Conv2d, the output channels of a ConvTranspose2d).
        k: kernel size (square kernels).
        init: ``"he_normal"`` or ``"keras_he_2_1_6"`` (``kneelib.nets.unet.init_he``).

    Returns:
        the expected distance, in weight units.
    """
    if c_in_fan < 1 or k < 1:
        raise ValueError(f"c_in_fan and k must be >= 1, got {c_in_fan}, {k}")
    _check_init(init)
    return _pair_norm_mean(k * k, c_in_fan * k * k, init)


def _null_unit(w: torch.Tensor, transposed: bool, reduction: str, init: str) -> tuple[float, float]:
    """(number of units, expected value per unit) of one weight under two inits ``init``."""
    fan_in = w.shape[1] * w.shape[2] * w.shape[3]  # PyTorch's fan_in: dim 1 for both conv kinds
    if reduction == "kernel":
        return w.shape[0] * w.shape[1], _pair_norm_mean(w.shape[2] * w.shape[3], fan_in, init)
    if reduction == "filter":
        n_out = w.shape[1] if transposed else w.shape[0]
        return n_out, _pair_norm_mean(w.numel() // n_out, fan_in, init)
    shrink = 1.0 if init == "he_normal" else truncated_std(KERAS_CUT)
    return w.numel(), 4.0 / fan_in * shrink**2  # "weight": the mean square difference; its root per group


def he_null_distances(model_a_like: StateLike, reduction: str = "kernel", init: str = "he_normal") -> dict[str, float]:
    """Expected ``kernel_distances`` (absolute scale) of two independent inits of an architecture.

    Each weight's expectation follows ``he_null_kernel_distance`` with PyTorch's fan_in
    (Conv2d: in * k * k; ConvTranspose2d: dim 1, i.e. out * k * k). A group's value is the
    unit-weighted mean of its weights' expectations, as ``kernel_distances`` averages.
    For ``"weight"`` it is sqrt(E[mean square difference]), the large-group limit of E[RMS].

    Args:
        model_a_like: a module or state_dict with the architecture (values are not used).
        reduction: ``"kernel"``, ``"weight"`` or ``"filter"``.
        init: the init of both nets, ``"he_normal"`` or ``"keras_he_2_1_6"`` (``kneelib.nets.unet.init_he``).

    Returns:
        group -> expected distance, then ``"network"``.
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    _check_init(init)
    sums: dict[str, list[float]] = {}  # group -> [units, sum of unit expectations]
    for key, (w, transposed) in conv_weights(model_a_like).items():
        n, e = _null_unit(w, transposed, reduction, init)
        acc = sums.setdefault(group_of(key), [0.0, 0.0])
        acc[0], acc[1] = acc[0] + n, acc[1] + n * e
    total = [sum(v[0] for v in sums.values()), sum(v[1] for v in sums.values())]
    finish = (lambda n, s: math.sqrt(s / n)) if reduction == "weight" else (lambda n, s: s / n)
    out = {g: finish(n, s) for g, (n, s) in sums.items()}
    out[NETWORK] = finish(*total)
    return out


def empirical_null(depth: int, base_filters: int, seeds: Iterable[int], reduction: str = "kernel",
                   scale: str = "absolute", init: str = "he_normal") -> dict[str, float]:
    """Mean distance between untrained ``UNet2D(seed=s, init=init)`` nets over all pairs of ``seeds``.

    Args:
        depth, base_filters: the UNet2D architecture.
        seeds: at least two initialization seeds; every unordered pair is compared.
        reduction, scale: as in ``kernel_distances``.
        init: the nets' init (``kneelib.nets.unet.init_he``).

    Returns:
        group -> mean over seed pairs, then ``"network"``.
    """
    seeds = list(seeds)
    if len(seeds) < 2:
        raise ValueError(f"need at least two seeds, got {seeds}")
    states = {s: UNet2D(depth=depth, base_filters=base_filters, seed=s, init=init).state_dict() for s in seeds}
    runs = [kernel_distances(states[a], states[b], reduction, scale)
            for a, b in itertools.combinations(seeds, 2)]
    return {g: sum(r[g] for r in runs) / len(runs) for g in runs[0]}


# ----------------------------------------------------------------------------- named nets


def study_codes(states: Mapping[str, StateLike], tissues: Sequence[str] | None = None) -> list[str]:
    """The codes of the tissues a table compares: ``tissues`` (names or codes) in their order, or, when
    None, every tissue with a scratch net in ``states``, in ``ALL_TISSUES`` order."""
    if tissues is not None:
        return [tissue_code(t) for t in tissues]
    present = {parse_net_name(n)[0] for n in states if base_of(n) is None}
    return [tissue_code(t) for t in ALL_TISSUES if tissue_code(t) in present]


def _pair_rows(states: Mapping[str, StateLike], a: str, b: str, reduction: str, scale: str) -> list[dict]:
    dist = kernel_distances(states[a], states[b], reduction, scale)
    return [{"pair": f"{a} vs {b}", "net_a": a, "net_b": b, "group": g, "distance": d}
            for g, d in dist.items()]


def _table(states: Mapping[str, StateLike], pairs: list[tuple[str, str]], reduction: str,
           scale: str) -> pd.DataFrame:
    pairs = [(a, b) for a, b in pairs if a in states and b in states]
    if not pairs:
        raise ValueError(f"no pair of the needed nets is present; got nets {sorted(states)}")
    rows = [r for a, b in pairs for r in _pair_rows(states, a, b, reduction, scale)]
    return pd.DataFrame(rows, columns=["pair", "net_a", "net_b", "group", "distance"])


def scratch_pairs_table(states: Mapping[str, StateLike], reduction: str = "kernel",
                        scale: str = "absolute", tissues: Sequence[str] | None = None) -> pd.DataFrame:
    """Distances between every pair of scratch nets (Fig. 3a), per group and ``"network"``.

    Args:
        states: net name (``"F(s)"``, ``"T|F(s)"``, ...) -> state_dict; missing nets are skipped.
        reduction, scale: as in ``kernel_distances``.
        tissues: the tissues compared, in order (:func:`study_codes`); pairs as ``itertools.combinations``.

    Returns:
        DataFrame with columns pair, net_a, net_b, group, distance; one row per pair x group.
    """
    names = [net_name(c) for c in study_codes(states, tissues)]
    return _table(states, list(itertools.combinations(names, 2)), reduction, scale)


def finetune_table(states: Mapping[str, StateLike], reduction: str = "kernel",
                   scale: str = "absolute", tissues: Sequence[str] | None = None) -> pd.DataFrame:
    """Distances between each scratch net A(s) and each net B|A(s) fine-tuned from it (Fig. 3b).

    Args:
        states: net name -> state_dict; pairs with a missing net are skipped.
        reduction, scale: as in ``kernel_distances``.
        tissues: the tissues compared, in order (:func:`study_codes`); grouped by A, then B.

    Returns:
        DataFrame with columns pair, net_a (the scratch net), net_b (the fine-tuned net),
        group, distance.
    """
    pairs = [(net_name(base_of(tuned)), tuned) for tuned in finetuned_nets(study_codes(states, tissues))]
    return _table(states, pairs, reduction, scale)


def tissue_distances(states: Mapping[str, StateLike], reduction: str = "kernel",
                     scale: str = "absolute", tissues: Sequence[str] | None = None) -> pd.DataFrame:
    """Bidirectional network-level distances per tissue pair (Fig. 4; claims C4, C5).

    For every unordered pair of tissues, its codes A, B in alphabetical order
    (``kneelib.names.tissue_pairs``; the paper's order F-T, F-M, M-T for its three):
    d_ab = d(A(s), B|A(s)) and d_ba = d(B(s), A|B(s)); the tissue distance is their mean and the
    asymmetry is |d_ab - d_ba| / tissue_distance (0: symmetric).

    Args:
        states: net name -> state_dict; a tissue pair with any of its four nets missing is skipped.
        reduction, scale: as in ``kernel_distances``.
        tissues: the tissues whose pairs are compared, in order (:func:`study_codes`).

    Returns:
        DataFrame with columns pair ("F-T"), tissue_a, tissue_b, d_ab, d_ba, tissue_distance,
        asymmetry; one row per tissue pair.
    """
    rows = []
    for a, b in tissue_pairs(study_codes(states, tissues)):
        nets = [net_name(a), net_name(b, a), net_name(b), net_name(a, b)]
        if not all(n in states for n in nets):
            continue
        d_ab = kernel_distances(states[nets[0]], states[nets[1]], reduction, scale)[NETWORK]
        d_ba = kernel_distances(states[nets[2]], states[nets[3]], reduction, scale)[NETWORK]
        mean = (d_ab + d_ba) / 2
        rows.append({"pair": f"{a}-{b}", "tissue_a": a, "tissue_b": b, "d_ab": d_ab, "d_ba": d_ba,
                     "tissue_distance": mean, "asymmetry": abs(d_ab - d_ba) / mean if mean else float("nan")})
    if not rows:
        raise ValueError(f"no tissue pair has all four nets; got nets {sorted(states)}")
    return pd.DataFrame(rows)


def headline(states: Mapping[str, StateLike], reduction: str = "kernel", scale: str = "absolute",
             tissues: Sequence[str] | None = None) -> dict:
    """Claim C3: is a fine-tuned net closer to its base than to the scratch net of its own tissue?

    For every fine-tuned net B|A(s) present with both A(s) and B(s): to_base = d(B|A(s), A(s)),
    to_own_scratch = d(B|A(s), B(s)), network level. The paper reports 8.17e-3 vs 6.45e-2.

    Args:
        states: net name -> state_dict.
        reduction, scale: as in ``kernel_distances``.
        tissues: the tissues whose fine-tuned nets are averaged (:func:`study_codes`).

    Returns:
        dict with ``to_base`` and ``to_own_scratch`` (means over the fine-tuned nets),
        ``ratio`` (to_own_scratch / to_base), ``n_nets``, ``per_net`` (name -> the two
        distances) and the paper's values ``paper_to_base``, ``paper_to_own_scratch``.
    """
    per_net = {}
    for a, b in itertools.permutations(study_codes(states, tissues), 2):
        tuned, base, own = net_name(b, a), net_name(a), net_name(b)
        if all(n in states for n in (tuned, base, own)):
            per_net[tuned] = {
                "to_base": kernel_distances(states[tuned], states[base], reduction, scale)[NETWORK],
                "to_own_scratch": kernel_distances(states[tuned], states[own], reduction, scale)[NETWORK]}
    if not per_net:
        raise ValueError("no fine-tuned net has both its base and its own-tissue scratch net; "
                         f"got {sorted(states)}")
    to_base = sum(v["to_base"] for v in per_net.values()) / len(per_net)
    to_own = sum(v["to_own_scratch"] for v in per_net.values()) / len(per_net)
    return {"to_base": to_base, "to_own_scratch": to_own,
            "ratio": to_own / to_base if to_base else float("nan"), "n_nets": len(per_net),
            "per_net": per_net, "paper_to_base": PAPER_HEADLINE["to_base"],
            "paper_to_own_scratch": PAPER_HEADLINE["to_own_scratch"]}
