"""Linear centered kernel alignment (CKA) between activations of two nets (Kornblith et al., 2019).

Weight distances depend on how hidden channels happen to be ordered; CKA compares what two
layers compute instead: it is invariant to orthogonal transforms (hence to channel
permutations) and to isotropic scaling of the features.

For examples x_1..x_n with features flattened, K = X X^T and L = Y Y^T are the linear Gram
matrices and CKA = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)).

- ``debiased=True`` (default) uses the unbiased HSIC estimator of Song et al. (2012). The
  biased estimator tr(KHLH) / (n-1)^2 is far from 0 for independent features when the feature
  dimension is large relative to n (about 0.2 at n = 32), the usual case for image activations.
- Many examples: ``MinibatchCKA`` / ``CKAMatrix`` average each HSIC over minibatches and take
  the ratio at the end (Nguyen et al., 2021), so memory stays at one minibatch's n x n Grams.
  This estimates the same quantity as the full-batch value but is not numerically identical to it.

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


def _cka(hxy: float, hxx: float, hyy: float) -> float:
    # A representation without variance over the examples (e.g. a dead layer), or a non-positive
    # unbiased self-HSIC from very few examples, has no defined CKA: report nan, not inf.
    denom = hxx * hyy
    return float(hxy / np.sqrt(denom)) if denom > 0 else float("nan")


def _split(n: int, batch_size: int | None) -> list[np.ndarray]:
    """Contiguous index chunks of at least ``batch_size`` examples (sizes differ by at most 1)."""
    if batch_size is None or batch_size >= n:
        return [np.arange(n)]
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return np.array_split(np.arange(n), n // batch_size)


class CKAMatrix:
    """Accumulates minibatch HSIC between every layer of net a and every layer of net b.

    Args:
        debiased: use the unbiased HSIC estimator (each minibatch needs n >= 4).

    Call ``update(acts_a, acts_b)`` once per minibatch with dicts layer -> (n, ...) activations
    of the same n examples (the same layers each time), then ``compute()``.
    """

    def __init__(self, debiased: bool = True) -> None:
        self.debiased = debiased
        self.reset()

    def reset(self) -> None:
        self.names_a: list[str] = []
        self.names_b: list[str] = []
        self._self_a = self._self_b = self._cross = None
        self.batches = 0

    def update(self, acts_a: Mapping[str, ArrayLike], acts_b: Mapping[str, ArrayLike]) -> None:
        sizes = {v.shape[0] for v in list(acts_a.values()) + list(acts_b.values())}
        if len(sizes) != 1:
            raise ValueError(f"all activations of a minibatch need the same n; got sizes {sorted(sizes)}")
        _check_examples(sizes.pop(), self.debiased)
        if self.batches and (list(acts_a) != self.names_a or list(acts_b) != self.names_b):
            raise ValueError("update() got different layers than the first minibatch")
        ga, gb = [gram(v) for v in acts_a.values()], [gram(v) for v in acts_b.values()]
        self_a = np.array([hsic(g, g, self.debiased) for g in ga])
        self_b = np.array([hsic(g, g, self.debiased) for g in gb])
        cross = np.array([[hsic(g, h, self.debiased) for h in gb] for g in ga])
        # running sums: the 1 / batches of the averages cancels in the CKA ratio
        if not self.batches:
            self.names_a, self.names_b = list(acts_a), list(acts_b)
            self._self_a, self._self_b, self._cross = self_a, self_b, cross
        else:
            self._self_a, self._self_b = self._self_a + self_a, self._self_b + self_b
            self._cross = self._cross + cross
        self.batches += 1

    def compute(self) -> pd.DataFrame:
        """CKA of the minibatch-averaged HSICs; rows: layers of a, columns: layers of b (nan: see module)."""
        if not self.batches:
            raise ValueError("no minibatch accumulated yet")
        values = [[_cka(self._cross[i, j], self._self_a[i], self._self_b[j])
                   for j in range(len(self.names_b))] for i in range(len(self.names_a))]
        return pd.DataFrame(values, index=self.names_a, columns=self.names_b)


class MinibatchCKA:
    """Linear CKA of one pair of representations accumulated over minibatches (Nguyen et al., 2021).

    Args:
        debiased: use the unbiased HSIC estimator (each minibatch needs n >= 4, else ValueError).

    ``update(x, y)`` takes (n, ...) activations of the same n examples; ``compute()`` returns
    hsic_xy / sqrt(hsic_xx hsic_yy) of the per-batch HSICs averaged, or nan if the denominator
    is not positive.
    """

    def __init__(self, debiased: bool = True) -> None:
        self._acc = CKAMatrix(debiased)

    def update(self, x: ArrayLike, y: ArrayLike) -> None:
        self._acc.update({"x": x}, {"y": y})

    def compute(self) -> float:
        return float(self._acc.compute().iloc[0, 0])

    def reset(self) -> None:
        self._acc.reset()


def linear_cka(x: ArrayLike, y: ArrayLike, debiased: bool = True, batch_size: int | None = None) -> float:
    """Linear CKA between two representations of the same examples.

    Args:
        x: (n_examples, ...) activations of one layer; flattened per example.
        y: (n_examples, ...) activations of another layer (any feature size).
        debiased: unbiased HSIC estimator (n >= 4 per batch) or the biased one.
        batch_size: None for the full batch; otherwise the examples are cut into contiguous
            minibatches of at least ``batch_size`` and the HSICs averaged (``MinibatchCKA``).

    Returns:
        CKA in [0, 1] for the biased estimator (the debiased one can dip slightly below 0);
        nan when a representation has no variance over the examples.
    """
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y need the same number of examples, got {x.shape[0]} and {y.shape[0]}")
    acc = MinibatchCKA(debiased)
    for idx in _split(x.shape[0], batch_size):
        acc.update(_rows(x, idx), _rows(y, idx))
    return acc.compute()


def _rows(x: ArrayLike, idx: np.ndarray) -> ArrayLike:
    return x[int(idx[0]):int(idx[-1]) + 1]  # chunks are contiguous: a view, no copy


def cka_matrix(acts_a: Mapping[str, ArrayLike], acts_b: Mapping[str, ArrayLike], debiased: bool = True,
               batch_size: int | None = None) -> pd.DataFrame:
    """Linear CKA of every layer group of net a against every layer group of net b.

    Args:
        acts_a: layer name -> (n_examples, ...) activations of net a.
        acts_b: layer name -> (n_examples, ...) activations of net b on the same examples.
        debiased, batch_size: as in ``linear_cka``.

    Returns:
        DataFrame (index: layers of a, columns: layers of b) of CKA values.
    """
    sizes = {v.shape[0] for v in list(acts_a.values()) + list(acts_b.values())}
    if len(sizes) != 1:
        raise ValueError(f"all activations need the same number of examples; got {sorted(sizes)}")
    acc = CKAMatrix(debiased)
    for idx in _split(sizes.pop(), batch_size):
        acc.update({k: _rows(v, idx) for k, v in acts_a.items()},
                   {k: _rows(v, idx) for k, v in acts_b.items()})
    return acc.compute()
