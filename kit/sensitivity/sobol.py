"""One-pass Sobol' indices per field cell from pick-freeze groups (Martinez or Jansen estimators).

A pick-freeze group (``kit.sampling.pick_freeze``) holds the outputs ``Y_A``, ``Y_B`` and ``Y_Ek``
(``A`` with column ``k`` taken from ``B``) of ``d + 2`` simulations. :class:`IterativeSobol` keeps, per
cell, the count, the means and centred sums of squares of the ``d + 2`` outputs and the co-moments
``sum (Y_A - mean)(Y_Ek - mean)`` and ``sum (Y_B - mean)(Y_Ek - mean)``: memory does not grow with the
number of groups, batches are reduced with numpy and merged with Pebay's pairwise formulas (SAND2008-6212,
doi:10.2172/1028931), so the indices equal those of the batch estimator on all groups seen, to rounding.
For Martinez it also keeps the centred co-moments of each pair up to order 4, which give the asymptotic
variance of a sample correlation whatever the outputs' distribution (the delta method): confidence intervals
that hold where Fisher's normal-theory ones under-cover (``kit.sensitivity.coverage`` measures both).

References: Martinez (2011), "Analyse de sensibilite globale par decomposition de la variance", JUS;
Baudin, Boumhaout, Delage, Iooss, Martinez (2016), "Numerical stability of Sobol' indices estimation
formula", SAMO, and Terraz, Ribes, Fournier, Iooss, Raffin (2017), "Melissa: large scale in transit
sensitivity analysis avoiding intermediate files", SC17, doi:10.1145/3126908.3126922; Jansen (1999),
doi:10.1016/S0010-4655(98)00154-4; Gamboa, Janon, Klein, Lagnoux (2014), "Sensitivity analysis for
multidimensional and functional outputs", doi:10.1214/14-EJS895.
"""

from __future__ import annotations

from collections.abc import Sequence
from statistics import NormalDist
from typing import NamedTuple

import numpy as np

from kit.sensitivity.moments import _as_batch, _batch_centre, _batch_shape, _central_merge, _chan_merge, _check_shape

__all__ = ["ESTIMATORS", "Intervals", "IterativeSobol"]

#: Estimators understood by :class:`IterativeSobol`.
ESTIMATORS = ("martinez", "jansen")

#: Co-moment orders of (Y_A, Y_B) Jansen keeps: Var((Y_A - mean)^2 + (Y_B - mean)^2) needs (2, 2).
AB_ORDERS = ((1, 1), (2, 1), (1, 2), (2, 2))
#: Co-moment orders of the pairs (A or B, E_k) each estimator keeps: to 4 for Martinez's interval variance.
PAIR_ORDERS = {"martinez": [(p, q) for p in range(1, 4) for q in range(1, 5 - p)], "jansen": [(1, 1)]}

#: A cell counts as constant when its standard deviation is below this fraction of its mean's magnitude.
CONSTANT_RTOL = 1e-12


class Intervals(NamedTuple):
    """Confidence intervals: ``first_order`` and ``total_order`` are each a pair ``(low, high)`` of arrays."""

    first_order: tuple[np.ndarray, np.ndarray]
    total_order: tuple[np.ndarray, np.ndarray]


class IterativeSobol:
    """First-order and total Sobol' indices per output cell, updated one pick-freeze group (or batch) at a time.

    Parameters
    ----------
    n_params
        Number ``d`` of parameters; a group holds ``d + 2`` outputs (rows A, B, E_1 ... E_d).
    shape
        Shape of one output, ``()`` for a scalar or e.g. ``(100, 100)`` for a field.
    estimator
        ``"martinez"`` (default; correlation estimators): ``S_k = corr(Y_B, Y_Ek)`` and
        ``ST_k = 1 - corr(Y_A, Y_Ek)``. ``"jansen"``:
        ``ST_k = sum (Y_A - Y_Ek)^2 / (2n) / V`` and ``S_k = 1 - sum (Y_B - Y_Ek)^2 / (2n) / V``
        where ``V`` is the sample variance (``ddof=1``) of the ``2n`` pooled outputs ``Y_A`` and ``Y_B``.

    Notes
    -----
    Constant cells: an index whose denominator holds a zero variance (Martinez: ``Var(Y_B)`` or
    ``Var(Y_Ek)`` for ``S_k``, ``Var(Y_A)`` or ``Var(Y_Ek)`` for ``ST_k``; Jansen: ``V``) is 0, and so is
    its confidence interval, without a warning. A variance counts as zero when the standard deviation is
    at most ``CONSTANT_RTOL`` (1e-12) times the magnitude of the mean. Correlations are clipped to
    [-1, 1]. Before any group, every index is 0.

    Examples
    --------
    >>> from kit.sampling import pick_freeze
    >>> from kit.space import ParameterSpace
    >>> space = ParameterSpace({"x1": (0.0, 1.0), "x2": (0.0, 1.0)})
    >>> groups = pick_freeze(space, 1024, seed=0)  # (n, d + 2, d)
    >>> outputs = 4 * groups[..., 0] + groups[..., 1]  # Y = 4 x1 + x2: S = (16/17, 1/17)
    >>> sobol = IterativeSobol(2)
    >>> sobol.update(outputs[:1000])  # a batch of groups
    >>> for group in outputs[1000:]:
    ...     sobol.update(group)  # one group at a time
    >>> np.round(sobol.first_order, 2).tolist(), sobol.n_groups
    ([0.94, 0.06], 1024)
    """

    def __init__(self, n_params: int, shape: Sequence[int] = (), estimator: str = "martinez"):
        if isinstance(n_params, bool) or not isinstance(n_params, (int, np.integer)) or n_params < 1:
            raise ValueError(f"n_params must be an int >= 1 (the number of parameters), got {n_params!r}")
        if not isinstance(estimator, str) or estimator not in ESTIMATORS:
            raise ValueError(f"unknown estimator {estimator!r}; choose one of {list(ESTIMATORS)}")
        self.n_params = int(n_params)
        self.shape = _check_shape(shape)
        self.estimator = estimator
        self.n_groups = 0
        d, shape = self.n_params, self.shape
        self._mean = np.zeros((d + 2, *shape))  # rows A, B, E_1..E_d
        # Centred sums per row, sum (Y_row - mean)^p to order 4, and per pair (A or B, E_k),
        # sum (Y_A|B - mean)^p (Y_Ek - mean)^q (to order 4 for Martinez's intervals).
        self._rows = {p: np.zeros((d + 2, *shape)) for p in (2, 3, 4)}
        self._pairs = {pq: np.zeros((2, d, *shape)) for pq in PAIR_ORDERS[estimator]}
        # Jansen: the squared differences (Y_A|B - Y_Ek)^2 per group, their mean, centred sum of squares and
        # centred co-moments with Y_A and Y_B (orders (1, 1) and (1, 2)), for its intervals.
        self._squares = {}
        if estimator == "jansen":
            self._squares = {"mean": np.zeros((2, d, *shape)), (2, 0): np.zeros((2, d, *shape))}
            self._squares |= {pq: np.zeros((2, d, 2, *shape)) for pq in ((1, 1), (1, 2))}
            self._squares |= {("ab", *pq): np.zeros(shape) for pq in AB_ORDERS}  # Y_A with Y_B

    # ----------------------------------------------------------------------------------------- updates

    def update(self, outputs) -> None:
        """Add one group of outputs ``(d + 2, *shape)`` or a batch of groups ``(n, d + 2, *shape)``."""
        group = (self.n_params + 2, *self.shape)
        expected = (
            f"(d + 2, *shape) = {group} for one group or {_batch_shape(group)} for a "
            f"batch (d = {self.n_params} parameters, shape = {self.shape})"
        )
        outputs = _as_batch(outputs, group, "outputs", expected)
        if outputs is None:
            return
        squares = (outputs[:, :2, None] - outputs[:, None, 2:]) ** 2 if self._squares else None  # (n, 2, d, ...)
        if outputs.shape[0] == 1:  # one group: its centred sums are zero
            self._merge(1, outputs[0], {}, {}, {} if squares is None else {"mean": squares[0]})
            return
        mean, deviations = _batch_centre(outputs)
        n, rows, cells = outputs.shape[0], self.n_params + 2, int(np.prod(self.shape, dtype=int))
        powers = {1: deviations.reshape(n, rows, cells)}
        for p in range(2, max(self._rows) + 1):
            powers[p] = powers[p - 1] * powers[1]
        sums = {p: powers[p].sum(axis=0).reshape(rows, *self.shape) for p in self._rows}
        pairs = {
            (p, q): np.einsum("nac,nkc->akc", powers[p][:, :2], powers[q][:, 2:]).reshape(2, rows - 2, *self.shape)
            for p, q in self._pairs
        }
        batch_squares = {}
        if squares is not None:
            square_mean, square_deviations = _batch_centre(squares)
            dx = square_deviations.reshape(n, 2 * (rows - 2), cells)
            shaped = (2, rows - 2, 2, *self.shape)
            batch_squares = {"mean": square_mean, (2, 0): np.einsum("nrc,nrc->rc", dx, dx).reshape(squares.shape[1:])}
            for q in (1, 2):
                batch_squares[1, q] = np.einsum("nrc,nxc->rxc", dx, powers[q][:, :2]).reshape(shaped)
            batch_squares |= {
                ("ab", p, q): np.einsum("nc,nc->c", powers[p][:, 0], powers[q][:, 1]).reshape(self.shape)
                for p, q in AB_ORDERS
            }
        self._merge(n, mean, sums, pairs, batch_squares)

    def merge(self, other: IterativeSobol) -> IterativeSobol:
        """Add the groups seen by ``other`` exactly (Pebay's pairwise formulas); returns self."""
        if not isinstance(other, IterativeSobol):
            raise TypeError(f"can only merge another IterativeSobol, got {type(other).__name__}")
        for name in ("n_params", "shape", "estimator"):
            if getattr(other, name) != getattr(self, name):
                raise ValueError(
                    f"cannot merge: {name} differs ({getattr(other, name)!r} in other, {getattr(self, name)!r} here)"
                )
        if other.n_groups:
            self._merge(other.n_groups, other._mean, other._rows, other._pairs, other._squares)
        return self

    def _merge(self, n_b: int, mean_b, rows_b: dict, pairs_b: dict, squares_b: dict) -> None:
        n_a = self.n_groups
        delta = mean_b - self._mean
        rows_a = {(p, 0): sums for p, sums in self._rows.items()}
        rows = _central_merge(rows_a, rows_a, n_a, {(p, 0): v for p, v in rows_b.items()}, n_b, delta, 0.0)
        pairs_a, pairs_b = self._pair_sums(self._rows, self._pairs), self._pair_sums(rows_b, pairs_b)
        self._pairs = _central_merge(self._pairs, pairs_a, n_a, pairs_b, n_b, delta[:2, None], delta[None, 2:])
        if self._squares:
            self._squares = self._merged_squares(n_a, rows_b, n_b, squares_b, delta[:2])
        self._rows = {p: rows[p, 0] for p in self._rows}
        self._mean = self._mean + delta * (n_b / (n_a + n_b))
        self.n_groups = n_a + n_b

    def _merged_squares(self, n_a: int, rows_b: dict, n_b: int, squares_b: dict, delta_ab) -> dict:
        """Jansen's squared differences merged: their means and M2, and their co-moments with Y_A and Y_B."""
        shift = squares_b["mean"] - self._squares["mean"]
        own = ((2, 0),)
        a = {(2, 0): self._squares[2, 0]}
        b = {(2, 0): squares_b.get((2, 0))}
        merged = _central_merge(own, a, n_a, b, n_b, shift, 0.0)
        a = {pq: self._squares[pq] for pq in ((1, 1), (1, 2))} | {(0, 2): self._rows[2][None, None, :2]}
        b = {pq: squares_b.get(pq) for pq in ((1, 1), (1, 2))} | {(0, 2): rows_b.get(2, np.zeros(1))[None, None, :2]}
        merged |= _central_merge(((1, 1), (1, 2)), a, n_a, b, n_b, shift[:, :, None], delta_ab[None, None])
        a = {pq: self._squares["ab", *pq] for pq in AB_ORDERS} | {(2, 0): self._rows[2][0], (0, 2): self._rows[2][1]}
        b = {pq: squares_b.get(("ab", *pq)) for pq in AB_ORDERS}
        b |= {(2, 0): rows_b.get(2, np.zeros((2,)))[0], (0, 2): rows_b.get(2, np.zeros((2,)))[1]}
        pairs = _central_merge(AB_ORDERS, a, n_a, b, n_b, delta_ab[0], delta_ab[1])
        merged |= {("ab", *pq): sums for pq, sums in pairs.items()}
        merged["mean"] = self._squares["mean"] + shift * (n_b / (n_a + n_b))
        return merged

    @staticmethod
    def _pair_sums(rows: dict, pairs: dict) -> dict:
        """Every centred sum of the pairs (A or B, E_k), marginal ones included, broadcast to ``(2, d, *shape)``."""
        sums = dict(pairs)
        for p, row in rows.items():
            sums[p, 0], sums[0, p] = row[:2, None], row[None, 2:]
        return sums

    # ----------------------------------------------------------------------------------------- indices

    @property
    def first_order(self) -> np.ndarray:
        """First-order indices ``S_k``, array ``(d, *shape)``."""
        if self.estimator == "martinez":
            return _ratio(self._pairs[1, 1][1], self._sd_product(1), default=0.0, clip=True)
        return 1.0 - _ratio(self._squared_differences(1), 2 * self._pooled_variance(), default=1.0)

    @property
    def total_order(self) -> np.ndarray:
        """Total indices ``ST_k``, array ``(d, *shape)``."""
        if self.estimator == "martinez":
            return 1.0 - _ratio(self._pairs[1, 1][0], self._sd_product(0), default=1.0, clip=True)
        return _ratio(self._squared_differences(0), 2 * self._pooled_variance(), default=0.0)

    def aggregated(self) -> tuple[np.ndarray, np.ndarray]:
        """Whole-field indices ``(S, ST)``, arrays ``(d,)``: sums over cells of the numerators over sums of the
        denominators (Gamboa et al. 2014), from the same accumulators.

        Martinez: ``S_k = sum_cells Cov(Y_B, Y_Ek) / sum_cells sd(Y_B) sd(Y_Ek)`` and
        ``ST_k = 1 - sum_cells Cov(Y_A, Y_Ek) / sum_cells sd(Y_A) sd(Y_Ek)`` (each is a variance-weighted
        mean of per-cell correlations, and the per-cell index when there is one cell). Jansen:
        ``ST_k = sum_cells sum_groups (Y_A - Y_Ek)^2 / (2n) / sum_cells V`` and likewise for ``S_k``.
        Indices are 0 where every cell is constant.
        """
        d = self.n_params
        if self.estimator == "martinez":
            num_s, den_s = self._pairs[1, 1][1], self._sd_product(1)
            num_t, den_t = self._pairs[1, 1][0], self._sd_product(0)
            first = _ratio(_cell_sum(num_s, d), _cell_sum(den_s, d), default=0.0, clip=True)
            total = 1.0 - _ratio(_cell_sum(num_t, d), _cell_sum(den_t, d), default=1.0, clip=True)
            return first, total
        variance = 2 * np.broadcast_to(self._pooled_variance(), (d, *self.shape))
        den = _cell_sum(variance, d)
        first = 1.0 - _ratio(_cell_sum(self._squared_differences(1), d), den, default=1.0)
        total = _ratio(_cell_sum(self._squared_differences(0), d), den, default=0.0)
        return first, total

    def confidence_interval(self, level: float = 0.95) -> Intervals:
        """Confidence intervals of :attr:`first_order` and :attr:`total_order`, from the delta method.

        Martinez: the correlation ``r`` is transformed by Fisher's ``atanh``, whose variance is taken from the
        asymptotic variance of a sample correlation for any distribution with finite fourth moments
        (the delta method on the centred co-moments up to order 4, kept in one pass):
        ``tau^2 = E[(u v - r (u^2 + v^2) / 2)^2]`` with ``u``, ``v`` the standardised outputs, so that
        ``Var(atanh r) = tau^2 / ((1 - r^2)^2 (n - 3))``. For normal outputs ``tau^2 = (1 - r^2)^2`` and this
        is Fisher's ``1 / (n - 3)``; outputs with heavy or light tails (Ishigami's, most simulators') get
        wider or narrower intervals. The bounds are ``tanh(atanh(r) +- z sqrt(Var))`` with ``z`` the normal
        quantile of ``(1 + level) / 2``; for ``ST = 1 - r`` they swap. With fewer than 4 groups the
        interval is the whole range of a correlation. Constant cells get the interval (0, 0).

        Jansen: ``ST_k = N / V`` with ``N = mean (Y_A - Y_Ek)^2 / 2`` and ``V`` the pooled variance; its
        asymptotic variance is ``Var(D - ST Q) / (4 V^2 n)`` with ``D = (Y_A - Y_Ek)^2`` and
        ``Q = (Y_A - mean)^2 + (Y_B - mean)^2``, the sample variance of ``D - ST Q`` over groups, likewise for
        ``1 - S_k`` with ``Y_B``; the bounds are the index ``+- z`` standard errors. With fewer than 4 groups
        the interval is unbounded; constant cells get (0, 0).
        """
        if not isinstance(level, (float, int)) or not 0 < level < 1:
            raise ValueError(f"level must be a probability strictly between 0 and 1, got {level!r}")
        z = NormalDist().inv_cdf((1 + level) / 2)
        if self.estimator == "jansen":
            return Intervals(self._jansen_interval(1, z), self._jansen_interval(0, z))
        s_low, s_high = self._correlation_interval(1, z, constant=0.0)
        r_low, r_high = self._correlation_interval(0, z, constant=1.0)
        return Intervals((s_low, s_high), (1.0 - r_high, 1.0 - r_low))

    def widest_interval(self, level: float = 0.95) -> float:
        """The largest confidence-interval width over cells, parameters and both indices (a stop rule)."""
        (s_low, s_high), (t_low, t_high) = self.confidence_interval(level)
        return float(max(np.max(s_high - s_low, initial=0.0), np.max(t_high - t_low, initial=0.0)))

    def _jansen_interval(self, row: int, z: float) -> tuple[np.ndarray, np.ndarray]:
        """Bounds of Jansen's total (``row`` 0) or first-order (``row`` 1) indices, per k."""
        index = self.total_order if row == 0 else self.first_order
        n, variance = self.n_groups, self._pooled_variance()
        if n < 4:
            return np.full(index.shape, -np.inf), np.full(index.shape, np.inf)
        ratio = index if row == 0 else 1.0 - index  # mean (Y_row - Y_Ek)^2 / (2 V)
        squares, m2, m4 = self._squares, self._rows[2][:2] / n, self._rows[4][:2] / n
        var_d = squares[2, 0][row] / n
        cov_dq = (squares[1, 2][row, :, 0] + squares[1, 2][row, :, 1]) / n
        cov_ab = squares["ab", 2, 2] / n - m2[0] * m2[1]  # zero in expectation: Y_A and Y_B are independent
        var_q = (m4[0] - m2[0] ** 2) + (m4[1] - m2[1] ** 2) + 2 * cov_ab
        tau2 = np.maximum(var_d - 2 * ratio * cov_dq + ratio**2 * var_q, 0.0)
        half = z * _ratio(np.sqrt(tau2 / n), 2 * variance, default=0.0)
        return index - half, index + half

    def _correlation_interval(self, row: int, z: float, *, constant: float) -> tuple[np.ndarray, np.ndarray]:
        """Bounds of ``corr(Y_row, Y_Ek)`` per k; ``constant`` where a variance is zero."""
        sd_product = self._sd_product(row)
        degenerate = sd_product == 0
        if self.n_groups < 4:
            low, high = np.full(sd_product.shape, -1.0), np.full(sd_product.shape, 1.0)
        else:
            r = np.clip(_ratio(self._pairs[1, 1][row], sd_product, default=0.0, clip=True), -1 + 1e-15, 1 - 1e-15)
            half = z * np.sqrt(self._correlation_variance(row, r) / (self.n_groups - 3)) / (1 - r**2)
            low, high = np.tanh(np.arctanh(r) - half), np.tanh(np.arctanh(r) + half)
        return np.where(degenerate, constant, low), np.where(degenerate, constant, high)

    def _correlation_variance(self, row: int, r: np.ndarray) -> np.ndarray:
        """``tau^2``, n times the asymptotic variance of ``r = corr(Y_row, Y_Ek)`` (delta method), per k."""
        shape, n = self._pairs[1, 1].shape, self.n_groups
        sums = {pq: np.broadcast_to(v, shape)[row] for pq, v in self._pair_sums(self._rows, self._pairs).items()}

        def scaled(p, q):  # E[u^p v^q] from the centred sums
            return _ratio(n * sums[p, q], np.sqrt(sums[2, 0] ** p * sums[0, 2] ** q), default=0.0)

        tau2 = (
            scaled(2, 2) * (1 + r**2 / 2) + r**2 / 4 * (scaled(4, 0) + scaled(0, 4)) - r * (scaled(3, 1) + scaled(1, 3))
        )
        return np.maximum(tau2, 0.0)

    # ---------------------------------------------------------------------------------------- helpers

    def _variance_or_zero(self, rows) -> np.ndarray:
        """Centred sums of squares of ``rows``, with cells that are constant to rounding set to 0."""
        m2, mean = self._rows[2][rows], self._mean[rows]
        return np.where(m2 <= self.n_groups * (CONSTANT_RTOL * mean) ** 2, 0.0, m2)

    def _sd_product(self, row: int) -> np.ndarray:
        """``sqrt(M2_row) * sqrt(M2_Ek)`` per k, 0 where either is constant."""
        return np.sqrt(self._variance_or_zero(slice(row, row + 1))) * np.sqrt(self._variance_or_zero(slice(2, None)))

    def _squared_differences(self, row: int) -> np.ndarray:
        """``sum_groups (Y_row - Y_Ek)^2`` / n per k, from the moments: M2_row + M2_Ek - 2 C + n (mean diff)^2."""
        if self.n_groups == 0:
            return np.zeros((self.n_params, *self.shape))
        comoment = self._pairs[1, 1][row]
        diff = self._mean[row : row + 1] - self._mean[2:]
        total = self._rows[2][row : row + 1] + self._rows[2][2:] - 2 * comoment + self.n_groups * diff**2
        return np.maximum(total, 0.0) / self.n_groups

    def _pooled_variance(self) -> np.ndarray:
        """Sample variance (``ddof=1``) of the ``2n`` pooled outputs ``Y_A`` and ``Y_B``, 0 where constant."""
        n = self.n_groups
        if n == 0:
            return np.zeros(self.shape)
        mean, m2 = _chan_merge(n, self._mean[0], self._rows[2][0], n, self._mean[1], self._rows[2][1])
        m2 = np.where(m2 <= 2 * n * (CONSTANT_RTOL * mean) ** 2, 0.0, m2)
        return m2 / (2 * n - 1)

    # ------------------------------------------------------------------------------------------- state

    def state_dict(self) -> dict:
        """The accumulators as a dict of plain values and numpy arrays (copies); memory independent of n.

        ``mean`` and ``m<p>`` per row (A, B, E_1 ... E_d), ``c<p><q>`` per pair (A or B, E_k); for Jansen,
        ``squares_*``: the squared differences' mean, sums and co-moments with Y_A and Y_B (``ab<p><q>``).
        """
        state = {
            "n_params": self.n_params,
            "shape": list(self.shape),
            "estimator": self.estimator,
            "n_groups": self.n_groups,
            "mean": self._mean.copy(),
        }
        state.update({f"m{p}": sums.copy() for p, sums in self._rows.items()})
        state.update({f"c{p}{q}": sums.copy() for (p, q), sums in self._pairs.items()})
        state.update({f"squares_{_key(key)}": sums.copy() for key, sums in self._squares.items()})
        return state

    def load_state_dict(self, state: dict) -> IterativeSobol:
        """Restore what :meth:`state_dict` returned; ``n_params``, ``shape`` and ``estimator`` must match."""
        received = {"n_params": int(state["n_params"]), "shape": _check_shape(state["shape"])}
        received["estimator"] = str(state["estimator"])
        for name, value in received.items():
            if value != getattr(self, name):
                raise ValueError(f"state has {name}={value!r}, this accumulator has {name}={getattr(self, name)!r}")
        arrays = {"mean": self._mean} | {f"m{p}": v for p, v in self._rows.items()}
        arrays |= {f"c{p}{q}": v for (p, q), v in self._pairs.items()}
        arrays |= {f"squares_{_key(key)}": v for key, v in self._squares.items()}
        missing = sorted(set(arrays) - set(state))
        if missing:
            raise ValueError(f"state lacks the accumulators {missing} (saved by another version of IterativeSobol?)")
        loaded = {key: np.array(state[key], dtype=float).reshape(current.shape) for key, current in arrays.items()}
        self.n_groups = int(state["n_groups"])
        self._mean = loaded["mean"]
        self._rows = {p: loaded[f"m{p}"] for p in self._rows}
        self._pairs = {(p, q): loaded[f"c{p}{q}"] for p, q in self._pairs}
        self._squares = {key: loaded[f"squares_{_key(key)}"] for key in self._squares}
        return self

    @classmethod
    def from_state_dict(cls, state: dict) -> IterativeSobol:
        """A new accumulator holding ``state``."""
        return cls(int(state["n_params"]), tuple(state["shape"]), str(state["estimator"])).load_state_dict(state)

    def to_dataset(self, names: Sequence[str] | None = None, dims: Sequence[str] | None = None, *, level=0.95):
        """The indices as an ``xarray.Dataset``: ``S1`` and ``ST`` with dims ``("parameter", *dims)``, and
        ``S1_low``, ``S1_high``, ``ST_low``, ``ST_high`` at ``level``; attrs ``n_groups``, ``estimator`` and
        ``confidence_level``.

        ``names`` label the parameters (default ``x1 ... xd``); ``dims`` name the output axes (default
        ``dim_0 ...``).
        """
        import xarray as xr

        names = [f"x{k + 1}" for k in range(self.n_params)] if names is None else [str(n) for n in names]
        if len(names) != self.n_params:
            raise ValueError(f"names must hold {self.n_params} parameter names, got {len(names)}: {names!r}")
        dims = [f"dim_{i}" for i in range(len(self.shape))] if dims is None else [str(d) for d in dims]
        if len(dims) != len(self.shape):
            raise ValueError(f"dims must name the {len(self.shape)} output axes of shape {self.shape}, got {dims!r}")
        axes = ("parameter", *dims)
        data = {"S1": (axes, self.first_order), "ST": (axes, self.total_order)}
        attrs = {"n_groups": self.n_groups, "estimator": self.estimator}
        (s_low, s_high), (t_low, t_high) = self.confidence_interval(level)
        data.update(S1_low=(axes, s_low), S1_high=(axes, s_high), ST_low=(axes, t_low), ST_high=(axes, t_high))
        attrs["confidence_level"] = float(level)
        return xr.Dataset(data, coords={"parameter": names}, attrs=attrs)

    def __repr__(self) -> str:
        return (
            f"IterativeSobol(n_params={self.n_params}, shape={self.shape}, estimator={self.estimator!r}, "
            f"n_groups={self.n_groups})"
        )


def _key(key) -> str:
    """A state_dict name for a sum: ``mean``, ``c12`` for order (1, 2), ``ab22`` for (Y_A, Y_B) order (2, 2)."""
    if isinstance(key, str):
        return key
    return f"ab{key[1]}{key[2]}" if key[0] == "ab" else f"c{key[0]}{key[1]}"


def _ratio(numerator, denominator, *, default: float, clip: bool = False) -> np.ndarray:
    """``numerator / denominator`` where the denominator is positive, ``default`` elsewhere (no warning)."""
    numerator, denominator = np.broadcast_arrays(np.asarray(numerator, float), np.asarray(denominator, float))
    out = np.full(numerator.shape, float(default))
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return np.clip(out, -1.0, 1.0) if clip else out


def _cell_sum(values: np.ndarray, d: int) -> np.ndarray:
    return np.asarray(values).reshape(d, -1).sum(axis=1)
