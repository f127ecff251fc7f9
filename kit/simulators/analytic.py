"""Analytic test functions with exact Sobol indices: Ishigami and Sobol' G.

They follow the simulator interface (``space``, ``run`` yielding one :class:`Step` with a scalar field)
and add ``evaluate(points)`` for whole designs and ``exact_indices()`` for validation.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from kit.simulators.base import Step
from kit.space import ParameterSpace


class _Analytic:
    steps = 1
    t_end = 1.0
    units = "1"

    def run(self, params, seed=None) -> Iterator[Step]:
        """One step whose field is the scalar value at ``params`` (``seed`` is ignored)."""
        value = self.evaluate(self.space.validate(params)[None])[0]
        return iter([Step(1, self.t_end, np.array(value))])

    def evaluate(self, points) -> np.ndarray:
        """Values ``(n,)`` at points ``(n, d)`` of the space."""
        x = self.space.validate(points)
        if x.ndim != 2:
            raise ValueError(f"evaluate takes points of shape (n, {self.space.dim}), got {x.shape}")
        return self._f(x)


class Ishigami(_Analytic):
    """``f = sin x1 + a sin^2 x2 + b x3^4 sin x1`` with ``x_i ~ U(-pi, pi)`` (Ishigami and Homma 1990).

    >>> Ishigami().exact_indices()[0].round(6).tolist()
    [0.313905, 0.442411, 0.0]
    """

    field_name = "ishigami"

    def __init__(self, a: float = 7.0, b: float = 0.1):
        self.a, self.b = float(a), float(b)
        self.space = ParameterSpace({name: (-np.pi, np.pi) for name in ("x1", "x2", "x3")})

    def __repr__(self) -> str:
        return f"Ishigami(a={self.a:g}, b={self.b:g})"

    def _f(self, x: np.ndarray) -> np.ndarray:
        return np.sin(x[:, 0]) + self.a * np.sin(x[:, 1]) ** 2 + self.b * x[:, 2] ** 4 * np.sin(x[:, 0])

    def exact_indices(self) -> tuple[np.ndarray, np.ndarray]:
        """(first order, total) indices of (x1, x2, x3)."""
        a, b, pi = self.a, self.b, np.pi
        v1 = 0.5 * (1 + b * pi**4 / 5) ** 2
        v2 = a**2 / 8
        v13 = b**2 * pi**8 * (1 / 18 - 1 / 50)
        total = v1 + v2 + v13
        return np.array([v1, v2, 0.0]) / total, np.array([v1 + v13, v2, v13]) / total


class SobolG(_Analytic):
    """``g = prod_i (|4 x_i - 2| + a_i) / (1 + a_i)`` with ``x_i ~ U(0, 1)`` (Sobol' 1993).

    >>> SobolG().exact_indices()[0][:4].round(4).tolist()
    [0.7162, 0.179, 0.0237, 0.0072]
    """

    field_name = "g"

    def __init__(self, a=(0.0, 1.0, 4.5, 9.0, 99.0, 99.0, 99.0, 99.0)):
        self.a = np.asarray(a, dtype=float)
        if self.a.ndim != 1 or len(self.a) < 1 or (self.a < 0).any():
            raise ValueError(f"a must be a non-empty list of numbers >= 0, got {a!r}")
        self.space = ParameterSpace({f"x{i + 1}": (0.0, 1.0) for i in range(len(self.a))})

    def __repr__(self) -> str:
        return f"SobolG(a={self.a.tolist()})"

    def _f(self, x: np.ndarray) -> np.ndarray:
        return np.prod((np.abs(4 * x - 2) + self.a) / (1 + self.a), axis=1)

    def exact_indices(self) -> tuple[np.ndarray, np.ndarray]:
        """(first order, total) indices of each x_i."""
        partial = 1 / (3 * (1 + self.a) ** 2)
        total = np.prod(1 + partial) - 1
        others = np.array([np.prod(np.delete(1 + partial, i)) for i in range(len(partial))])
        return partial / total, partial * others / total
