"""2D heat equation on the unit square, the heat use case of Melissa.

The parameters and their ranges follow the heat PDE use case of Melissa (Meyer et al., "Training Deep
Surrogate Models with Large Scale Online Learning", ICML 2023): an initial temperature and four wall
temperatures, each in [100, 500] K.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import cached_property
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import splu

from kit.simulators.base import Simulator, Step
from kit.space import ParameterSpace

WALLS = ("left", "right", "top", "bottom")


class Heat2D(Simulator):
    """``u_t = alpha (u_xx + u_yy)`` on the unit square with Dirichlet walls.

    Vertex-centred grid of ``n x n`` interior nodes ``x_i = i h`` (``i = 1..n``, ``h = 1/(n+1)``, same
    for ``y``), 5-point Laplacian ``L``, backward Euler with ``dt = t_end / steps``: each step solves
    ``(I - dt alpha L) u_new = u + dt alpha b`` (``b`` carries the walls), with ``I - dt alpha L``
    factorised once per instance. Unconditionally stable; obeys the discrete maximum principle.

    Parameters
    ----------
    n
        Interior nodes per direction (>= 3).
    steps
        Number of time steps (>= 1).
    t_end
        Final time (> 0).
    alpha
        Diffusivity (> 0).

    Attributes
    ----------
    space
        :class:`~kit.space.ParameterSpace` of ``initial, left, right, top, bottom``, each (100, 500) K.
    x, y
        Node coordinates, arrays ``(n,)``; fields are indexed ``field[iy, ix]``.

    Examples
    --------
    >>> sim = Heat2D(n=16, steps=10)
    >>> params = {"initial": 300.0, "left": 500.0, "right": 100.0, "top": 300.0, "bottom": 300.0}
    >>> last = list(sim.run(params))[-1]
    >>> last.index, round(last.time, 12), last.field.shape
    (10, 0.1, (16, 16))
    """

    field_name = "temperature"
    units = "K"
    #: Physical range of the field over the whole space (maximum principle): for scaling and image metrics.
    field_range = (100.0, 500.0)

    def __init__(self, n: int = 64, steps: int = 100, t_end: float = 0.1, alpha: float = 1.0):
        for name, value, low in (("n", n, 3), ("steps", steps, 1)):
            if isinstance(value, bool) or not isinstance(value, Integral) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        for name, value in (("t_end", t_end), ("alpha", alpha)):
            if isinstance(value, bool) or not isinstance(value, Real) or not 0 < value < np.inf:
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
        self.n, self.steps, self.t_end, self.alpha = int(n), int(steps), float(t_end), float(alpha)
        self.h = 1.0 / (self.n + 1)
        self.dt = self.t_end / self.steps
        self.x = self.h * np.arange(1, self.n + 1)
        self.y = self.x.copy()
        self.space = ParameterSpace({name: (100.0, 500.0) for name in ("initial", *WALLS)})

    def example(self) -> dict[str, float]:
        """A cold plate warmed by a hot left wall: the centre of the space (all 300 K) is a uniform field.

        Examples
        --------
        >>> Heat2D(n=8, steps=4).example()
        {'initial': 100.0, 'left': 500.0, 'right': 100.0, 'top': 300.0, 'bottom': 300.0}
        """
        return {"initial": 100.0, "left": 500.0, "right": 100.0, "top": 300.0, "bottom": 300.0}

    def __repr__(self) -> str:
        return f"Heat2D(n={self.n}, steps={self.steps}, t_end={self.t_end:g}, alpha={self.alpha:g})"

    def run(self, params, seed=None) -> Iterator[Step]:
        """Validate ``params`` now and return a generator of steps ``1..steps``.

        Parameters
        ----------
        params
            ``{name: value}`` or an array in ``space.names`` order (kelvin).
        seed
            Ignored: the model is deterministic (accepted for a uniform simulator interface).

        Examples
        --------
        >>> steps = Heat2D(n=8, steps=3).run([300.0, 100.0, 100.0, 100.0, 100.0])
        >>> [s.index for s in steps]
        [1, 2, 3]
        """
        p = self.space.to_dict(params)
        u0 = np.full((self.n, self.n), p["initial"])
        return self._march(u0, {wall: p[wall] for wall in WALLS})

    def exact_sobol_maps(self) -> np.ndarray:
        """Exact Sobol' indices per cell and step, an array ``(d, steps, n, n)``: first order equals total.

        The field is linear in the five temperatures, ``T = sum_k c_k p_k`` with ``c_k`` the response to
        temperature ``k`` at 1 K and the others at 0, so with independent uniform parameters of widths
        ``w_k``: ``S_k = ST_k = (c_k w_k)^2 / sum_j (c_j w_j)^2``.

        Examples
        --------
        >>> maps = Heat2D(n=6, steps=2).exact_sobol_maps()
        >>> maps.shape, bool(np.allclose(maps.sum(axis=0), 1.0))
        ((5, 2, 6, 6), True)
        """
        responses = []
        for name in self.space.names:
            u0 = np.full((self.n, self.n), float(name == "initial"))
            steps = self._march(u0, {wall: float(wall == name) for wall in WALLS})
            responses.append(np.stack([step.field for step in steps]))
        widths = self.space.bounds[:, 1] - self.space.bounds[:, 0]
        weighted = (np.array(responses) * widths[:, None, None, None]) ** 2
        return weighted / weighted.sum(axis=0)

    def __getstate__(self) -> dict:
        """Pickle without the factorisation (rebuilt on first use where the simulator lands)."""
        state = self.__dict__.copy()
        state.pop("_lu", None)
        return state

    @cached_property
    def _lu(self):
        """Sparse LU of ``I - dt alpha L``, built on first use."""
        n = self.n
        second = sp.diags([1.0, -2.0, 1.0], [-1, 0, 1], shape=(n, n)) / self.h**2
        eye = sp.identity(n)
        laplacian = sp.kron(eye, second) + sp.kron(second, eye)  # row-major: x varies fastest
        matrix = (sp.identity(n * n) - self.dt * self.alpha * laplacian).tocsc()
        return splu(matrix, permc_spec="MMD_AT_PLUS_A")  # ordering suited to a symmetric matrix

    def _march(self, u0: np.ndarray, walls: Mapping[str, float]) -> Iterator[Step]:
        """Yield the steps from the interior field ``u0`` ``(n, n)`` with wall temperatures ``walls``."""
        u0 = np.asarray(u0, dtype=float)
        if u0.shape != (self.n, self.n):
            raise ValueError(f"u0 must have shape ({self.n}, {self.n}), got {u0.shape}")
        b = np.zeros((self.n, self.n))
        b[:, 0] += walls["left"]
        b[:, -1] += walls["right"]
        b[0, :] += walls["bottom"]
        b[-1, :] += walls["top"]
        source = (self.dt * self.alpha / self.h**2) * b.ravel()
        u = u0.ravel()
        for k in range(1, self.steps + 1):
            u = self._lu.solve(u + source)
            yield Step(index=k, time=k * self.dt, field=u.reshape(self.n, self.n).copy())
