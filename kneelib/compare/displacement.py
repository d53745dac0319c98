"""A random displacement with a real fine-tune's size: the null model of "fine-tuning moved the net".

A fine-tuned net B|A(s) differs from its base A(s) by a displacement w_{B|A} - w_{A(s)} per weight tensor.
Its *null* keeps the size of that displacement, tensor by tensor, and draws its direction at random:
for each convolution weight (the 4-D ``*.weight`` tensors every kernel distance reads,
:func:`kneelib.compare.distances.conv_weights`) a standard Gaussian tensor of the same shape, rescaled
to the Frobenius norm ||w_{B|A} - w_{A(s)}||. Whatever a distance claim finds in such a net is owed to
how far each layer moved, not to where it moved.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from kneelib.compare.distances import conv_weights

State = Mapping[str, torch.Tensor]


def gaussian_direction(shape: torch.Size, norm: float, generator: torch.Generator) -> torch.Tensor:
    """A tensor of ``shape`` (float64) in a uniformly random direction with Frobenius norm ``norm``.

    A standard Gaussian tensor's direction is uniform on the sphere; drawn in float64 so that the
    rescaled norm is exact to far below float32 rounding. ``norm`` 0 gives zeros.
    """
    z = torch.randn(shape, generator=generator, dtype=torch.float64)
    return z * (norm / z.norm()) if norm > 0 else torch.zeros(shape, dtype=torch.float64)


def displacement_norms(tuned: State, base: State) -> dict[str, float]:
    """||w_tuned - w_base|| (Frobenius, float64) of every convolution weight, in state_dict order."""
    base_weights = conv_weights(base)
    return {k: float((w.double() - base_weights[k][0].double()).norm()) for k, (w, _) in conv_weights(tuned).items()}


def matched_displacement(start: State, tuned: State, base: State, seed: int) -> dict[str, torch.Tensor]:
    """``start`` moved, convolution weight by weight, by a random displacement of the real fine-tune's size.

    Every convolution weight w becomes ``start[w] + u``, u in a random Gaussian direction with
    ||u|| = ||tuned[w] - base[w]|| (:func:`gaussian_direction`, drawn in state_dict order from one
    generator seeded with ``seed``: the same seed gives the same directions whatever ``start`` is).
    Every other tensor (biases, batch-norm affine parameters and running statistics) is ``start``'s:
    no distance reads them, and a null fine-tune should not inherit what the real one learned there.

    Args:
        start: state_dict the null fine-tune starts from (the base's trained weights, or its init).
        tuned, base: state_dicts of the real fine-tuned net and of the net it started from; only their
            convolution weights are read.
        seed: seed of the random directions.

    Returns:
        a new state_dict with ``start``'s keys, dtypes and shapes.
    """
    gen = torch.Generator().manual_seed(int(seed))
    norms = displacement_norms(tuned, base)
    out = {k: v.detach().clone() for k, v in start.items()}
    for key, norm in norms.items():
        w = out[key]
        out[key] = (w.double() + gaussian_direction(w.shape, norm, gen)).to(w.dtype)
    return out
