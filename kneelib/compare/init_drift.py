"""How far training moves a net from its init, per layer group, and how much of a distance the init explains.

Two quantities, both over a group's convolution weights (the 4-D ``*.weight`` tensors,
:func:`kneelib.compare.distances.conv_weights`) taken together as one vector, with the Frobenius norm:

- the **drift** of a net from where it started, w0 (its He init, or for a fine-tuned net its base's
  trained weights): ||w0||, ||w - w0|| and the norm growth ||w|| / ||w0|| (:func:`group_drift`);
- for two nets a and b that started from w0a and w0b and drifted by da = wa - w0a and db = wb - w0b,
  the **decomposition of their squared distance**

      ||wa - wb||^2 = ||w0a - w0b||^2 + ||da - db||^2 + 2 <w0a - w0b, da - db>

  into an init term, a drift term and a cross term (:func:`d2_decomposition`). It is exact only on
  squares, which is why it is stated on d^2: norms do not add. And it is a Frobenius norm over the
  whole group, not the suite's kernel distance (the mean over kernels of each kernel's L2 norm,
  :func:`kneelib.compare.distances.kernel_distances`), which has no such additive split. Within one
  conv layer the two are tied: the mean of the kernels' norms is at most their root mean square, the
  layer's Frobenius distance / sqrt(kernels), and close to it when the kernels differ by similar
  amounts. So the shares say which term sets the distance's scale in a group, not its exact value.

Groups are the first dotted component of a key (``enc_layer1`` ... ``head``), in state_dict order,
then ``"network"`` for all convolution weights of the net.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pandas as pd
import torch

from kneelib.compare.distances import NETWORK, conv_weights
from kneelib.nets.unet import group_of

State = Mapping[str, torch.Tensor]


def _group_sums(fn: Callable[..., dict[str, float]], *states: State) -> dict[str, dict[str, float]]:
    """group -> sums over the group's conv weights of ``fn(*tensors)`` (a dict of float64 sums, one entry
    per quantity), then ``"network"``: the sums over every conv weight."""
    weights = [conv_weights(s) for s in states]
    out: dict[str, dict[str, float]] = {}
    for key in weights[0]:
        parts = fn(*(w[key][0].detach().double() for w in weights))
        for group in (group_of(key), NETWORK):
            acc = out.setdefault(group, dict.fromkeys(parts, 0.0))
            for name, value in parts.items():
                acc[name] += float(value)
    network = out.pop(NETWORK)
    return {**out, NETWORK: network}


def group_drift(state: State, start: State) -> pd.DataFrame:
    """Per layer group: ||w0||, ||w - w0||, ||w|| / ||w0|| over the group's convolution weights.

    Args:
        state: the net's weights w (state_dict).
        start: the weights it started from, w0 (same architecture).

    Returns:
        columns group, init_norm (||w0||), drift (||w - w0||), norm_growth (||w|| / ||w0||; nan when
        ||w0|| = 0); one row per group, then ``"network"``. Weight units.
    """
    sums = _group_sums(lambda w, w0: {"w0": (w0 * w0).sum(), "w": (w * w).sum(), "d": ((w - w0) ** 2).sum()},
                       state, start)
    rows = [{"group": g, "init_norm": s["w0"] ** 0.5, "drift": s["d"] ** 0.5,
             "norm_growth": (s["w"] / s["w0"]) ** 0.5 if s["w0"] > 0 else float("nan")} for g, s in sums.items()]
    return pd.DataFrame(rows, columns=["group", "init_norm", "drift", "norm_growth"])


def d2_decomposition(init_a: State, init_b: State, state_a: State, state_b: State) -> pd.DataFrame:
    """The squared Frobenius distance of two nets split into init, drift and cross terms, per group.

    With D0 = w0a - w0b (the inits' difference) and Dd = da - db (the drifts' difference):
    d2 = ||wa - wb||^2 = init_term + drift_term + cross_term, init_term = ||D0||^2,
    drift_term = ||Dd||^2, cross_term = 2 <D0, Dd>; each share is its term / d2 and the three sum to 1.
    The cross term is negative when training moved the nets towards each other along their inits'
    difference, so a share can exceed 1 or be negative.

    Args:
        init_a, init_b: the two nets' inits (state_dicts of one architecture).
        state_a, state_b: their trained weights.

    Returns:
        columns group, d2, init_term, drift_term, cross_term, init_share, drift_share, cross_share
        (squared weight units for the terms); one row per group, then ``"network"``.
    """
    def terms(w0a, w0b, wa, wb):
        d0, dd = w0a - w0b, (wa - w0a) - (wb - w0b)
        return {"d2": ((wa - wb) ** 2).sum(), "init_term": (d0 * d0).sum(), "drift_term": (dd * dd).sum(),
                "cross_term": 2 * (d0 * dd).sum()}

    rows = []
    for group, s in _group_sums(terms, init_a, init_b, state_a, state_b).items():
        shares = {f"{t}_share": s[f"{t}_term"] / s["d2"] if s["d2"] > 0 else float("nan")
                  for t in ("init", "drift", "cross")}
        rows.append({"group": group, **s, **shares})
    return pd.DataFrame(rows)
