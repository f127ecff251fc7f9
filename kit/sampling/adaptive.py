"""Adaptive ask/tell samplers: where the surrogate's training loss is high, simulate more.

Both samplers work in the unit hypercube of the space (``space.unscale`` / ``space.scale``), keep a loss
score per point told and record, for every point asked, its sampling density relative to the space's own
measure (``densities``), so that errors measured at the sampled points can be reweighted by
``1 / density`` into an estimate under the space's measure: adaptivity must not hide a worse mean.
:class:`LossDensitySampler` normalises its density over a finite pool of candidates, so each recorded
density is approximate (within a few tens of percent for a pool of 1024); weighted means stay unbiased.

The score (``signal``) is, by default (``"first"``), the loss of a point's samples the first time they are
told, before the model trained on them, divided by a moving average of such first losses over the points
told before: how much harder than its contemporaries the point is to predict. The latest training loss
(``"recent"``, a moving average per point, as Breed) favours whatever simulation arrived last, since the
model has not fitted it yet, whatever its difficulty.

- :class:`BreedSampler`: loss-driven breeding (Dymchenko & Raffin 2023, the "Breed" sampler of Melissa):
  parents drawn in proportion to their loss, children from a Gaussian around the parent truncated to the
  bounds, mixed with scrambled-Sobol draws whose share moves from ``uniform_start`` to ``uniform_end``.
- :class:`LossDensitySampler`: residual-based adaptive distribution, RAD (Wu, Zhu, Tan, Kartha & Lu 2023,
  doi:10.1016/j.cma.2022.115671): points drawn from a density proportional to ``loss(x)^k / E[loss^k] + c``,
  the loss at untried points estimated by kernel regression over the points told.

Default settings were chosen on Gray-Scott studies of 48 simulations with seeds 0 to 5 (papers/sampling);
the paper's figures are measured on other seeds (100 to 107).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kit.sampling.designs import _check_n, _engine_seed, _sobol_draw, _sobol_engine
from kit.sampling.samplers import SAMPLERS, _BaseSampler, _generator_from_state, _generator_state, check_tell
from kit.seeding import SeedLike, rng
from kit.space import ParameterSpace

__all__ = ["SIGNALS", "BreedSampler", "LossDensitySampler"]

#: Loss scores a sampler can use (see the module docstring).
SIGNALS = ("first", "recent")


class _LossDrivenSampler(_BaseSampler):
    """Shared plumbing: a loss per point told, a scrambled-Sobol stream for uniform draws, densities."""

    def __init__(self, space: ParameterSpace, seed: SeedLike, *, signal: str, decay: float, min_points: int):
        super().__init__(space)
        if signal not in SIGNALS:
            raise ValueError(f"unknown signal {signal!r}; choose one of {SIGNALS}")
        if not 0 < decay <= 1:
            raise ValueError(f"decay must be in (0, 1] (weight of the newest loss), got {decay!r}")
        self.signal, self.decay, self.min_points = signal, float(decay), _check_n(min_points, name="min_points")
        self._stage: float | None = None  # moving average of first losses
        self._rng = rng(seed)
        self._engine_seed = _engine_seed(self._rng)
        self._engine = _sobol_engine(space.dim, self._engine_seed)
        self._index: dict[bytes, int] = {}  # point (space units) -> row of _units / _losses
        self._units = np.empty((0, space.dim))
        self._losses = np.empty(0)
        self.densities: list[float] = []  # one per point asked, relative to the space's measure

    def tell(self, params, losses) -> None:
        """Score points ``params`` from their per-sample ``losses`` (see the module's note on ``signal``)."""
        params, losses = check_tell(self.space, params, losses)
        if not len(losses):
            return
        points, inverse = np.unique(params, axis=0, return_inverse=True)
        inverse = inverse.ravel()
        means = np.bincount(inverse, weights=losses) / np.bincount(inverse)
        new_points, new_losses = [], []
        for point, mean in zip(points, means, strict=True):
            row = self._index.get(point.tobytes())
            if row is None:  # first exposure: samples the model has not trained on yet
                relative = 1.0 if self._stage is None else mean / max(self._stage, 1e-12)
                self._stage = mean if self._stage is None else self._stage + self.decay * (mean - self._stage)
                self._index[point.tobytes()] = len(self._index)
                new_points.append(point)
                new_losses.append(mean if self.signal == "recent" else relative)
            elif self.signal == "recent":
                self._losses[row] += self.decay * (mean - self._losses[row])
        if new_points:
            self._units = np.concatenate([self._units, self.space.unscale(np.array(new_points))])
            self._losses = np.concatenate([self._losses, new_losses])

    @property
    def n_known(self) -> int:
        """Points with a loss."""
        return len(self._losses)

    def _uniform(self) -> np.ndarray:
        return _sobol_draw(self._engine, 1)[0]

    def state_dict(self) -> dict[str, Any]:
        """Random state, Sobol' position, points told with their losses, densities of the points asked."""
        return {
            **self._header(),
            "rng": _generator_state(self._rng),
            "engine_seed": self._engine_seed,
            "generated": int(self._engine.num_generated),
            "points": [list(map(float, np.frombuffer(key))) for key in self._index],
            "units": self._units.tolist(),
            "losses": self._losses.tolist(),
            "stage": self._stage,
            "densities": list(self.densities),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` (the following asks are identical)."""
        self._check_header(state)
        self._rng = _generator_from_state(state["rng"])
        self._engine_seed = int(state["engine_seed"])
        self._engine = _sobol_engine(self.space.dim, self._engine_seed)
        if state["generated"]:
            self._engine.fast_forward(int(state["generated"]))
        points = np.asarray(state["points"], dtype=float).reshape(-1, self.space.dim)
        self._index = {point.tobytes(): i for i, point in enumerate(points)}
        self._units = np.asarray(state["units"], dtype=float).reshape(-1, self.space.dim)
        self._losses = np.asarray(state["losses"], dtype=float)
        self._stage = state["stage"]
        self.densities = [float(v) for v in state["densities"]]


class BreedSampler(_LossDrivenSampler):
    """Loss-driven breeding: children near the points the surrogate learns worst, mixed with uniform draws.

    Each asked point is, with probability ``share``, the next scrambled-Sobol point; otherwise a parent is
    drawn among the points told with probability proportional to its loss and the child is drawn from a
    Gaussian of standard deviation ``sigma`` (unit-cube coordinates) around it, truncated to the bounds
    (Breed shrinks the covariance of children that fall outside; truncation keeps the density exact).
    ``share`` moves linearly from ``uniform_start`` to ``uniform_end`` over the first ``horizon`` asks, and
    is 1 until ``min_points`` points have a loss. ``signal`` and ``decay`` choose the loss score (module note).

    Examples
    --------
    >>> space = ParameterSpace({"a": (0.0, 1.0), "b": (0.0, 1.0)})
    >>> sampler = BreedSampler(space, seed=0, min_points=2, uniform_start=0.0, uniform_end=0.0)
    >>> sampler.tell([[0.1, 0.1], [0.9, 0.9]], [1e-4, 1.0])  # (0.9, 0.9) is 10^4 times harder
    >>> children = sampler.ask(50)
    >>> bool((np.abs(children - 0.9) < 0.5).all())
    True
    """

    def __init__(
        self,
        space: ParameterSpace,
        seed: SeedLike = None,
        *,
        sigma: float = 0.1,
        uniform_start: float = 1.0,
        uniform_end: float = 0.5,
        horizon: int = 32,
        min_points: int = 4,
        signal: str = "first",
        decay: float = 0.25,
    ):
        super().__init__(space, seed, signal=signal, decay=decay, min_points=min_points)
        if not sigma > 0:
            raise ValueError(f"sigma must be > 0 (unit-cube standard deviation), got {sigma!r}")
        for name, value in (("uniform_start", uniform_start), ("uniform_end", uniform_end)):
            if not 0 <= value <= 1:
                raise ValueError(f"{name} must be a share in [0, 1], got {value!r}")
        self.sigma, self.uniform_start, self.uniform_end = float(sigma), float(uniform_start), float(uniform_end)
        self.horizon = _check_n(horizon, name="horizon")

    def __repr__(self) -> str:
        return (
            f"BreedSampler({self.space!r}, sigma={self.sigma:g}, uniform_start={self.uniform_start:g}, "
            f"uniform_end={self.uniform_end:g}, horizon={self.horizon})"
        )

    def uniform_share(self) -> float:
        """Probability that the next point is a uniform (scrambled-Sobol) draw."""
        if self.n_known < self.min_points:
            return 1.0
        progress = min(1.0, len(self.densities) / self.horizon)
        return self.uniform_start + (self.uniform_end - self.uniform_start) * progress

    def ask(self, n: int = 1) -> np.ndarray:
        """The next ``n`` points, an array ``(n, d)``; their densities are appended to ``densities``."""
        from scipy.stats import truncnorm

        n = _check_n(n, minimum=0)
        units = np.empty((n, self.space.dim))
        for i in range(n):
            share = self.uniform_share()
            if self._rng.random() < share:
                units[i] = self._uniform()
            else:
                parent = self._units[self._rng.choice(self.n_known, p=self._parent_weights())]
                low, high = -parent / self.sigma, (1 - parent) / self.sigma
                units[i] = truncnorm.rvs(low, high, loc=parent, scale=self.sigma, random_state=self._rng)
            self.densities.append(self._density(units[i], share))
        return self.space.scale(units)

    def _parent_weights(self) -> np.ndarray:
        losses = np.clip(self._losses, 0.0, None)
        total = losses.sum()
        return losses / total if total > 0 else np.full(self.n_known, 1.0 / self.n_known)

    def _density(self, unit: np.ndarray, share: float) -> float:
        """Density of the mixture that drew ``unit`` (uniform share plus truncated Gaussians around parents)."""
        from scipy.stats import truncnorm

        if share >= 1.0:
            return 1.0
        low, high = -self._units / self.sigma, (1 - self._units) / self.sigma
        children = truncnorm.pdf(unit, low, high, loc=self._units, scale=self.sigma).prod(axis=1)
        return float(share + (1 - share) * (self._parent_weights() @ children))


class LossDensitySampler(_LossDrivenSampler):
    """Residual-based adaptive distribution (RAD): sample where the estimated loss is high, never only there.

    For each point asked, ``pool`` uniform candidates get a loss estimate by Gaussian kernel regression (bandwidth
    ``bandwidth`` in unit-cube coordinates) over the points told; a candidate is chosen with probability
    proportional to ``loss^k / mean(loss^k) + c``, so its density relative to the space's measure is
    ``(loss^k / mean(loss^k) + c) / (1 + c)``: ``c`` keeps a floor of uniform exploration, ``k`` sharpens.
    Until ``min_points`` points have a loss, points are scrambled-Sobol draws. ``signal`` and ``decay`` choose
    the loss score (module note).

    Examples
    --------
    >>> space = ParameterSpace({"a": (0.0, 1.0)})
    >>> sampler = LossDensitySampler(space, seed=0, min_points=2, k=2.0, c=0.0)
    >>> sampler.tell([[0.05], [0.95]], [0.01, 1.0])
    >>> float(np.mean(sampler.ask(100) > 0.5)) > 0.9
    True
    """

    def __init__(
        self,
        space: ParameterSpace,
        seed: SeedLike = None,
        *,
        k: float = 2.0,
        c: float = 1.0,
        pool: int = 1024,
        bandwidth: float = 0.1,
        min_points: int = 4,
        signal: str = "first",
        decay: float = 0.25,
    ):
        super().__init__(space, seed, signal=signal, decay=decay, min_points=min_points)
        if not k > 0:
            raise ValueError(f"k must be > 0 (the loss exponent), got {k!r}")
        if not c >= 0:
            raise ValueError(f"c must be >= 0 (the uniform floor), got {c!r}")
        if not bandwidth > 0:
            raise ValueError(f"bandwidth must be > 0 (unit-cube kernel width), got {bandwidth!r}")
        self.k, self.c, self.bandwidth = float(k), float(c), float(bandwidth)
        self.pool = _check_n(pool, name="pool")

    def __repr__(self) -> str:
        return f"LossDensitySampler({self.space!r}, k={self.k:g}, c={self.c:g}, pool={self.pool})"

    def estimated_loss(self, units: np.ndarray) -> np.ndarray:
        """Kernel-regression estimate of the loss at unit-cube points ``(m, d)`` from the points told."""
        squared = ((units[:, None, :] - self._units[None, :, :]) ** 2).sum(-1)
        # Subtracting the row minimum keeps the nearest point's weight at 1: no 0 / 0 far from every point.
        weights = np.exp(-(squared - squared.min(axis=1, keepdims=True)) / (2 * self.bandwidth**2))
        return weights @ np.clip(self._losses, 0.0, None) / weights.sum(axis=1)

    def ask(self, n: int = 1) -> np.ndarray:
        """The next ``n`` points, an array ``(n, d)``; their densities are appended to ``densities``."""
        n = _check_n(n, minimum=0)
        if self.n_known < self.min_points:
            units = np.array([self._uniform() for _ in range(n)]).reshape(n, self.space.dim)
            self.densities.extend([1.0] * n)
            return self.space.scale(units)
        units = np.empty((n, self.space.dim))
        for i in range(n):  # a fresh pool per point, so that each is an independent draw from the density
            candidates = self._rng.random((self.pool, self.space.dim))
            estimated = self.estimated_loss(candidates)
            powered = (estimated / estimated.max() if estimated.max() > 0 else estimated) ** self.k
            mean = powered.mean()
            weights = (powered / mean if mean > 0 else np.ones_like(powered)) + self.c
            chosen = self._rng.choice(self.pool, p=weights / weights.sum())
            units[i] = candidates[chosen]
            self.densities.append(float(weights[chosen] / (1 + self.c)))
        return self.space.scale(units)


SAMPLERS.update(breed=BreedSampler, loss_density=LossDensitySampler)
