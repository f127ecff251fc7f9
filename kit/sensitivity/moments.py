"""One-pass moments per field cell: count, mean, variance, min and max, mergeable exactly.

Batches are reduced with numpy and merged with the pairwise formulas of Chan, Golub and LeVeque (1979)
as generalised by Pebay (2008, "Formulas for robust, one-pass parallel computation of covariances and
arbitrary-order statistical moments", Sandia report SAND2008-6212, doi:10.2172/1028931): no Python loop
over samples, and merging two accumulators gives the moments of the union of their samples.
"""

from __future__ import annotations

from collections.abc import Sequence
from math import comb

import numpy as np

__all__ = ["IterativeMoments"]


class IterativeMoments:
    """Running count, mean, variance, min and max of samples of shape ``shape`` (one value per cell).

    Memory is that of a few arrays of shape ``shape``, whatever the number of samples.

    Parameters
    ----------
    shape
        Shape of one sample, e.g. ``()`` for a scalar output or ``(100, 100)`` for a field.

    Notes
    -----
    :attr:`variance` is the unbiased sample variance (``ddof=1``, as ``numpy.var(..., ddof=1)``);
    :meth:`var` takes ``ddof=0`` for the population variance. Before any sample, :attr:`mean`,
    :attr:`min` and :attr:`max` are NaN; so is a variance whose denominator ``count - ddof`` is not
    positive (no warning is raised). NaN or infinite samples are refused with ``ValueError``.

    Examples
    --------
    >>> moments = IterativeMoments()
    >>> moments.update(np.array([1.0, 2.0, 3.0]))  # a batch of three scalars
    >>> moments.update(4.0)  # one scalar sample
    >>> moments.count, float(moments.mean), float(moments.variance), float(moments.max)
    (4, 2.5, 1.6666666666666667, 4.0)
    """

    def __init__(self, shape: Sequence[int] = ()):
        self.shape = _check_shape(shape)
        self.count = 0
        self._mean = np.zeros(self.shape)
        self._m2 = np.zeros(self.shape)
        self._min = np.full(self.shape, np.inf)
        self._max = np.full(self.shape, -np.inf)

    def update(self, values) -> None:
        """Add one sample of shape ``shape`` or a batch of shape ``(m, *shape)``."""
        expected = f"{self.shape} (one sample) or {_batch_shape(self.shape)} (a batch)"
        values = _as_batch(values, self.shape, "values", expected)
        if values is None:
            return
        mean, m2 = _batch_moments(values)
        self._merge(values.shape[0], mean, m2, values.min(axis=0), values.max(axis=0))

    def merge(self, other: IterativeMoments) -> IterativeMoments:
        """Add the samples seen by ``other`` (exactly, as if this accumulator had seen them); returns self."""
        if not isinstance(other, IterativeMoments):
            raise TypeError(f"can only merge another IterativeMoments, got {type(other).__name__}")
        if other.shape != self.shape:
            raise ValueError(f"cannot merge moments of shape {other.shape} into moments of shape {self.shape}")
        if other.count:
            self._merge(other.count, other._mean, other._m2, other._min, other._max)
        return self

    def _merge(self, count, mean, m2, minimum, maximum) -> None:
        self._mean, self._m2 = _chan_merge(self.count, self._mean, self._m2, count, mean, m2)
        self._min = np.minimum(self._min, minimum)
        self._max = np.maximum(self._max, maximum)
        self.count += int(count)

    @property
    def mean(self) -> np.ndarray:
        """Mean per cell (NaN before any sample)."""
        return self._mean.copy() if self.count else np.full(self.shape, np.nan)

    @property
    def variance(self) -> np.ndarray:
        """Unbiased sample variance per cell (``ddof=1``); see :meth:`var` for the population variance."""
        return self.var(ddof=1)

    def var(self, ddof: int = 1) -> np.ndarray:
        """Variance per cell, ``M2 / (count - ddof)``: ``ddof=1`` sample, ``ddof=0`` population variance."""
        if self.count - ddof <= 0:
            return np.full(self.shape, np.nan)
        return self._m2 / (self.count - ddof)

    @property
    def min(self) -> np.ndarray:
        """Smallest value per cell (NaN before any sample)."""
        return self._min.copy() if self.count else np.full(self.shape, np.nan)

    @property
    def max(self) -> np.ndarray:
        """Largest value per cell (NaN before any sample)."""
        return self._max.copy() if self.count else np.full(self.shape, np.nan)

    def state_dict(self) -> dict:
        """The accumulator as a dict of plain values and numpy arrays (copies)."""
        return {
            "shape": list(self.shape),
            "count": self.count,
            "mean": self._mean.copy(),
            "m2": self._m2.copy(),
            "min": self._min.copy(),
            "max": self._max.copy(),
        }

    def load_state_dict(self, state: dict) -> IterativeMoments:
        """Restore what :meth:`state_dict` returned (shapes must match); returns self."""
        shape = tuple(int(s) for s in state["shape"])
        if shape != self.shape:
            raise ValueError(f"state has shape {shape}, this accumulator has shape {self.shape}")
        self.count = int(state["count"])
        for key in ("mean", "m2", "min", "max"):
            setattr(self, f"_{key}", np.array(state[key], dtype=float).reshape(self.shape))
        return self

    def __repr__(self) -> str:
        return f"IterativeMoments(shape={self.shape}, count={self.count})"


def _check_shape(shape) -> tuple[int, ...]:
    try:
        shape = tuple(int(s) for s in ((shape,) if np.isscalar(shape) else shape))
    except (TypeError, ValueError):
        raise TypeError(f"shape must be a tuple of non-negative ints, got {shape!r}") from None
    if any(s < 0 for s in shape):
        raise ValueError(f"shape must be a tuple of non-negative ints, got {shape!r}")
    return shape


def _batch_shape(shape: tuple[int, ...]) -> str:
    """The shape of a batch of ``m`` samples of ``shape``, as text: ``(m, 100, 100)``."""
    return "(" + ", ".join(["m", *map(str, shape)]) + ")"


def _as_batch(values, item: tuple[int, ...], name: str, expected: str) -> np.ndarray | None:
    """``values`` as a finite batch ``(m, *item)`` (one item gets a leading axis); None for an empty batch."""
    values = np.asarray(values, dtype=float)
    if values.shape == item:
        values = values[None]
    elif values.shape[1:] != item:
        raise ValueError(f"{name} must have shape {expected}; received {values.shape}")
    if values.shape[0] == 0:
        return None
    _check_finite(values, name)
    return values


def _check_finite(values: np.ndarray, name: str) -> None:
    if not np.isfinite(values).all():
        bad = np.argwhere(~np.isfinite(values))[0]
        raise ValueError(f"{name} contain NaN or inf (first at index {tuple(int(i) for i in bad)})")


def _batch_moments(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and centred sum of squares (M2) along axis 0."""
    mean, deviations = _batch_centre(values)
    return mean, (deviations**2).sum(axis=0)


def _batch_centre(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean along axis 0 and the deviations from it, computed after shifting by the first sample.

    The shift keeps constant cells exact: their mean is their value and their deviations are exactly zero.
    """
    shifted = values - values[0]
    offset = shifted.mean(axis=0)
    return values[0] + offset, shifted - offset


def _chan_merge(n_a: int, mean_a, m2_a, n_b: int, mean_b, m2_b):
    """Mean and M2 of the union of two sample sets (Chan et al. 1979; Pebay 2008, eq. 1.1-1.2)."""
    n = n_a + n_b
    delta = mean_b - mean_a
    mean = mean_a + delta * (n_b / n)
    m2 = m2_a + m2_b + delta**2 * (n_a * n_b / n)
    return mean, m2


def _central_merge(orders, sums_a: dict, n_a: int, sums_b: dict, n_b: int, delta_x, delta_y) -> dict:
    """Centred co-moment sums ``M_pq = sum (x - mean_x)^p (y - mean_y)^q`` of the union of two sample sets.

    ``sums_a`` and ``sums_b`` map ``(p, q)`` to each set's sums about its own means, for every order below
    the requested ``orders`` (``(0, 0)``, ``(1, 0)`` and ``(0, 1)`` are implied; a set of one sample has
    none); ``delta_x`` and ``delta_y`` are ``mean_b - mean_a``. Each set's deviations from the union's means
    are shifted by a constant, so the binomial expansion gives the union's sums exactly (Pebay 2008, section 3).
    """
    n = n_a + n_b
    top = max(p + q for p, q in orders)
    merged = {pq: 0.0 for pq in orders}
    for sums, count, weight in ((sums_a, n_a, -n_b / n), (sums_b, n_b, n_a / n)):
        if count == 0:
            continue
        shift_x, shift_y = [1.0, weight * delta_x], [1.0, weight * delta_y]
        for _ in range(top - 1):
            shift_x.append(shift_x[-1] * shift_x[1])
            shift_y.append(shift_y[-1] * shift_y[1])
        for p, q in orders:
            for i in range(p + 1):
                for j in range(q + 1):
                    r, s = p - i, q - j
                    if (r, s) == (0, 0):
                        lower = count
                    elif r + s == 1 or count == 1:
                        continue  # centred first-order sums, and every sum of one sample, are zero
                    else:
                        lower = sums[r, s]
                    merged[p, q] = merged[p, q] + comb(p, i) * comb(q, j) * lower * (shift_x[i] * shift_y[j])
    return merged
