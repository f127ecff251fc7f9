"""Gray-Scott reaction-diffusion on a periodic square grid, the pattern-forming use case.

Two species ``u`` (the substrate, fed in) and ``v`` (the autocatalyst) react as ``u + 2v -> 3v`` and
``v -> P``. Depending on the feed rate ``F``, the kill rate ``k`` and the diffusivity ratio ``Du / Dv``
the autocatalyst dies out, forms separate spots or forms stripes and labyrinths (Pearson, "Complex
patterns in a simple system", Science 261, 1993). The initial condition is Pearson's: the trivial state
``u = 1, v = 0`` with a centred square at ``u = 1/2, v = 1/4``, perturbed by 1 % random noise.
"""

from __future__ import annotations

from collections.abc import Iterator
from numbers import Integral, Real

import numpy as np

from kit.seeding import rng
from kit.simulators.base import Simulator, Step
from kit.space import ParameterSpace

#: Diffusivity of ``v`` in grid units (``dx = 1``); ``Du = ratio * DV``.
DV = 0.08
#: Relative amplitude of the random perturbation of the initial condition.
NOISE = 0.01


class GrayScott(Simulator):
    """``u_t = Du lap(u) - u v^2 + F (1 - u)``, ``v_t = Dv lap(v) + u v^2 - (F + k) v`` on a torus.

    Cell-centred ``n x n`` grid with ``dx = 1`` and periodic walls, 5-point Laplacian, explicit Euler
    with time step ``dt``; ``Dv = 0.08`` and ``Du = ratio * Dv``. Each yielded :class:`Step` is the
    state after ``substeps`` more iterations, so a run is ``steps * substeps`` iterations long and
    ends at ``t_end = steps * substeps * dt``. The yielded field is ``v`` (dimensionless).

    The initial condition is ``u = 1, v = 0`` except in a centred square of side ``n // 5`` where
    ``u = 1/2, v = 1/4``; both are then multiplied by ``1 + 0.01 xi`` with ``xi`` uniform in
    ``[-1, 1]``, drawn from the run's seed (``v`` stays 0 outside the square, ``u`` within 1 % of 1).

    Parameters
    ----------
    n
        Cells per direction (>= 5, so that the initial square is not empty).
    steps
        Number of yielded steps (>= 1).
    substeps
        Euler iterations per yielded step (>= 1).
    dt
        Time step of one iteration, ``0 < dt <= 0.885``: explicit Euler must stay stable everywhere in
        the space, and the fastest diffusion (``ratio = 3``) with the largest feed and smallest kill
        sets the limit (see :func:`_max_stable_dt`; at ``dt = 0.9`` checkerboards grow there).

    Attributes
    ----------
    space
        :class:`~kit.space.ParameterSpace` of ``feed`` (0.01, 0.08), ``kill`` (0.04, 0.07) and
        ``ratio`` (1.5, 3.0), the ratio ``Du / Dv``.
    x, y
        Cell centres ``0, 1, ..., n - 1``; fields are indexed ``field[iy, ix]``.
    t_end
        Simulated time of the last step, ``steps * substeps * dt``.

    Examples
    --------
    >>> sim = GrayScott(n=20, steps=3, substeps=10, dt=0.5)
    >>> sim
    GrayScott(n=20, steps=3, substeps=10, dt=0.5)
    >>> last = list(sim.run({"feed": 0.04, "kill": 0.065, "ratio": 2.0}, seed=0))[-1]
    >>> last.index, last.time, last.field.shape, sim.t_end
    (3, 15.0, (20, 20), 15.0)
    """

    field_name = "v"
    units = "1"
    #: Range of v over the space (it stays in [0, 1]): for scaling and image metrics.
    field_range = (0.0, 1.0)

    def __init__(self, n: int = 64, steps: int = 50, substeps: int = 100, dt: float = 0.8):
        for name, value, low in (("n", n, 5), ("steps", steps, 1), ("substeps", substeps, 1)):
            if isinstance(value, bool) or not isinstance(value, Integral) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        if isinstance(dt, bool) or not isinstance(dt, Real) or not 0 < dt < np.inf:
            raise ValueError(f"dt must be a finite number > 0, got {dt!r}")
        self.space = ParameterSpace({"feed": (0.01, 0.08), "kill": (0.04, 0.07), "ratio": (1.5, 3.0)})
        largest = _max_stable_dt(self.space)
        if dt > largest:
            raise ValueError(
                f"dt = {dt:g} makes explicit Euler unstable in part of the parameter space (largest feed "
                f"and ratio, smallest kill); the largest stable dt is {largest:.4f}"
            )
        self.n, self.steps, self.substeps, self.dt = int(n), int(steps), int(substeps), float(dt)
        self.t_end = self.steps * self.substeps * self.dt
        self.x = np.arange(self.n, dtype=float)
        self.y = self.x.copy()

    def __repr__(self) -> str:
        return f"GrayScott(n={self.n}, steps={self.steps}, substeps={self.substeps}, dt={self.dt:g})"

    def run(self, params, seed=None) -> Iterator[Step]:
        """Validate ``params`` and draw the initial state now; return a generator of steps ``1..steps``.

        Parameters
        ----------
        params
            ``{name: value}`` or an array in ``space.names`` order (``feed, kill, ratio``).
        seed
            Seed of the initial perturbation: an int, a ``numpy.random.SeedSequence`` or ``Generator``
            (see :func:`kit.seeding.rng`). The same int seed gives the same fields bit for bit; None
            draws fresh entropy, so the fields differ from run to run.

        Examples
        --------
        >>> steps = GrayScott(n=10, steps=3, substeps=4, dt=0.5).run([0.03, 0.06, 2.0], seed=1)
        >>> [(s.index, s.time) for s in steps]
        [(1, 2.0), (2, 4.0), (3, 6.0)]
        """
        p = self.space.to_dict(params)
        u, v = self._initial_state(seed)
        return self._march(u, v, p["feed"], p["kill"], p["ratio"] * DV)

    def _initial_state(self, seed) -> tuple[np.ndarray, np.ndarray]:
        """Pearson's initial ``(u, v)``, each ``(n, n)``, perturbed by 1 % noise drawn from ``seed``."""
        n = self.n
        u, v = np.ones((n, n)), np.zeros((n, n))
        side = n // 5
        lo = (n - side) // 2
        square = (slice(lo, lo + side), slice(lo, lo + side))
        u[square], v[square] = 0.5, 0.25
        xi = rng(seed).uniform(-1.0, 1.0, size=(2, n, n))
        return u * (1.0 + NOISE * xi[0]), v * (1.0 + NOISE * xi[1])

    def _march(self, u: np.ndarray, v: np.ndarray, feed: float, kill: float, du: float) -> Iterator[Step]:
        """Yield the steps from ``(u, v)``, advancing ``substeps`` iterations between yields."""
        state = np.stack([u, v])
        for k in range(1, self.steps + 1):
            for _ in range(self.substeps):
                state = self._advance(state, feed, kill, du)
            yield Step(index=k, time=k * self.substeps * self.dt, field=state[1].copy())

    def _iterate(self, u: np.ndarray, v: np.ndarray, feed: float, kill: float, du: float):
        """One explicit Euler iteration with diffusivity ``du`` for ``u``: new arrays ``(u, v)``."""
        u_new, v_new = self._advance(np.stack([u, v]), feed, kill, du)
        return u_new, v_new

    def _advance(self, state: np.ndarray, feed: float, kill: float, du: float) -> np.ndarray:
        """:meth:`_iterate` on ``state = (u, v)`` stacked ``(2, n, n)``, both Laplacians in one pass (numpy's
        per-call cost dominates on small grids): a new array."""
        u, v = state
        laplacian = _laplacian(state)
        uvv = u * v * v
        new = np.empty_like(state)
        np.add(u, self.dt * (du * laplacian[0] - uvv + feed * (1.0 - u)), out=new[0])
        np.add(v, self.dt * (DV * laplacian[1] + uvv - (feed + kill) * v), out=new[1])
        return new


def _laplacian(a: np.ndarray) -> np.ndarray:
    """Periodic 5-point Laplacian of ``a`` ``(..., n, n)`` over its last two axes, with ``dx = 1``."""
    out = a * -4.0
    out[..., 1:, :] += a[..., :-1, :]
    out[..., 0, :] += a[..., -1, :]
    out[..., :-1, :] += a[..., 1:, :]
    out[..., -1, :] += a[..., 0, :]
    out[..., 1:] += a[..., :-1]
    out[..., 0] += a[..., -1]
    out[..., :-1] += a[..., 1:]
    out[..., -1] += a[..., 0]
    return out


def _uniform_v(feed, kill):
    """``v`` of the non-trivial uniform steady state; NaN where there is none (past the saddle-node)."""
    rate = np.add(feed, kill)
    with np.errstate(invalid="ignore"):
        return feed * (1.0 + np.sqrt(1.0 - 4.0 * rate**2 / feed)) / (2.0 * rate)


def _max_stable_dt(space: ParameterSpace) -> float:
    """Largest explicit Euler ``dt`` that keeps the checkerboard mode from growing anywhere in ``space``.

    The periodic 5-point Laplacian (``dx = 1``) has eigenvalues down to ``-8``, reached by the
    checkerboard mode. Linearised about a uniform state ``(u, v)``, the ``u`` equation damps that mode
    at the rate ``8 Du + F + v^2``; one iteration multiplies it by ``1 - dt (8 Du + F + v^2)``, so
    stability needs ``dt <= 2 / (8 Du + F + v^2)``. The trivial state has ``v = 0``; the non-trivial
    uniform state has the largest ``v`` at the smallest kill (about 0.51 at ``F = 0.08, k = 0.04``),
    which with ``ratio = 3`` gives ``dt <= 0.885``. The ``v`` equation (rate at most ``8 Dv + F + k``)
    gives a looser limit. The diffusion-only limit ``dt <= 1 / (4 Du) = 1.04`` is not enough: ``dt = 1``
    grows checkerboards in ``u`` wherever ``v`` is large.

    >>> round(_max_stable_dt(ParameterSpace({"feed": (0.01, 0.08), "kill": (0.04, 0.07), "ratio": (1.5, 3)})), 4)
    0.885
    """
    (f_low, f_high), (k_low, k_high), (_, ratio) = space.bounds
    feed = np.linspace(f_low, f_high, 1001)
    v = np.nan_to_num(_uniform_v(feed, k_low), nan=0.0)  # the uniform v decreases with kill
    rate_u = 8.0 * ratio * DV + feed + v**2
    rate_v = 8.0 * DV + f_high + k_high
    return float(2.0 / max(rate_u.max(), rate_v))
