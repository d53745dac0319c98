"""Linear centered kernel alignment (CKA) between activations of two nets (Kornblith et al., 2019).

Weight distances depend on how hidden channels happen to be ordered; CKA compares what two
layers compute instead: it is invariant to orthogonal transforms (hence to channel
permutations) and to isotropic scaling of the features.

For examples x_1..x_n with features flattened, K = X X^T and L = Y Y^T are the linear Gram
matrices and CKA = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)).

- ``debiased=True`` (default) uses the unbiased HSIC estimator of Song et al. (2012). The
  biased estimator tr(KHLH) / (n-1)^2 is far from 0 for independent features when the feature
  dimension is large relative to n (about 0.2 at n = 32), the usual case for image activations.
- Memory: only the n x n Gram matrices are kept (n = the profile's ``cka_slices``, 64 or fewer),
  whatever the feature size; a minibatch estimator is not needed at these n.

Everything is computed in float64 with NumPy (Gram matrices of the centered features, built in
feature chunks so a float64 copy of a large activation tensor is never made at once).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import torch

ArrayLike = torch.Tensor | np.ndarray
_CHUNK_ELEMENTS = 2**22  # float64 elements of one feature chunk (32 MiB)


def _min_examples(debiased: bool) -> int:
    return 4 if debiased else 2


def _check_examples(n: int, debiased: bool) -> None:
    need = _min_examples(debiased)
    if n < need:
        kind = "unbiased HSIC needs n >= 4 (it divides by n - 3)" if debiased else "HSIC needs n >= 2"
        raise ValueError(f"{kind}; got a (mini)batch of {n} examples")


def _chunk(x: ArrayLike, start: int, stop: int) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x[:, start:stop].detach().to("cpu", torch.float64).numpy()
    return np.asarray(x[:, start:stop], dtype=np.float64)


def gram(x: ArrayLike) -> np.ndarray:
    """Linear Gram matrix of the centered, flattened examples.

    Args:
        x: (n_examples, ...) activations; everything after dim 0 is one feature vector.

    Returns:
        (n, n) float64 array K = Xc Xc^T with Xc the feature-centered (n, d) matrix.
    """
    n = x.shape[0]
    flat = x.reshape(n, -1)
    step = max(1, _CHUNK_ELEMENTS // max(n, 1))
    k = np.zeros((n, n))
    for start in range(0, flat.shape[1], step):
        c = _chunk(flat, start, start + step)
        # centering is per feature, so each chunk is centered on its own; it changes neither
        # estimator's value but avoids cancellation with large post-ReLU means
        c -= c.mean(axis=0, keepdims=True)
        k += c @ c.T
    return k


def hsic(gram_x: np.ndarray, gram_y: np.ndarray, debiased: bool = True) -> float:
    """HSIC of two n x n Gram matrices.

    Args:
        gram_x, gram_y: symmetric (n, n) Gram matrices of the same examples (see ``gram``).
        debiased: the unbiased estimator (Song et al., 2012; needs n >= 4) or the biased
            tr(K H L H) / (n - 1)^2 (H the centering matrix; needs n >= 2).

    Returns:
        the estimate (the unbiased one can be slightly negative).
    """
    n = gram_x.shape[0]
    _check_examples(n, debiased)
    if not debiased:
        centered = gram_x - gram_x.mean(0, keepdims=True) - gram_x.mean(1, keepdims=True) + gram_x.mean()
        return float((centered * gram_y).sum() / (n - 1) ** 2)
    # the unbiased estimator works on the Gram matrices with their diagonals set to zero
    kx, ky = gram_x.copy(), gram_y.copy()
    np.fill_diagonal(kx, 0.0)
    np.fill_diagonal(ky, 0.0)
    trace = (kx * ky).sum()
    sums = kx.sum() * ky.sum() / ((n - 1) * (n - 2))
    cross = kx.sum(0) @ ky.sum(1)
    return float((trace + sums - 2.0 * cross / (n - 2)) / (n * (n - 3)))


def cka_from_grams(gram_x: np.ndarray, gram_y: np.ndarray, debiased: bool = True) -> float:
    """Linear CKA from the (n, n) Gram matrices of two representations of the same n examples.

    Returns nan when the product of the self-HSICs is not positive: a representation without
    variance over the examples (e.g. a dead layer), or a non-positive unbiased self-HSIC from very
    few examples, has no defined CKA.
    """
    denom = hsic(gram_x, gram_x, debiased) * hsic(gram_y, gram_y, debiased)
    return float(hsic(gram_x, gram_y, debiased) / np.sqrt(denom)) if denom > 0 else float("nan")


def linear_cka(x: ArrayLike, y: ArrayLike, debiased: bool = True) -> float:
    """Linear CKA between two representations of the same examples.

    Args:
        x: (n_examples, ...) activations of one layer; flattened per example.
        y: (n_examples, ...) activations of another layer (any feature size).
        debiased: unbiased HSIC estimator (needs n >= 4) or the biased one (n >= 2).

    Returns:
        CKA in [0, 1] for the biased estimator (the debiased one can dip slightly below 0);
        nan when a representation has no variance over the examples.
    """
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y need the same number of examples, got {x.shape[0]} and {y.shape[0]}")
    _check_examples(x.shape[0], debiased)
    return cka_from_grams(gram(x), gram(y), debiased)


def cka_matrix(acts_a: Mapping[str, ArrayLike], acts_b: Mapping[str, ArrayLike],
               debiased: bool = True) -> pd.DataFrame:
    """Linear CKA of every layer group of net a against every layer group of net b.

    Args:
        acts_a: layer name -> (n_examples, ...) activations of net a.
        acts_b: layer name -> (n_examples, ...) activations of net b on the same examples.
        debiased: as in ``linear_cka``.

    Returns:
        DataFrame (index: layers of a, columns: layers of b) of CKA values.
    """
    sizes = {v.shape[0] for v in list(acts_a.values()) + list(acts_b.values())}
    if len(sizes) != 1:
        raise ValueError(f"all activations need the same number of examples; got {sorted(sizes)}")
    _check_examples(sizes.pop(), debiased)
    grams_a, grams_b = {k: gram(v) for k, v in acts_a.items()}, {k: gram(v) for k, v in acts_b.items()}
    return pd.DataFrame([[cka_from_grams(ga, gb, debiased) for gb in grams_b.values()] for ga in grams_a.values()],
                        index=list(acts_a), columns=list(acts_b))
