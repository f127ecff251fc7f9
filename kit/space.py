"""Named, bounded parameter spaces shared by every sampler and simulator."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

#: Distributions understood by SALib; the bounds of ``norm`` and ``lognorm`` are (mean, std).
DISTRIBUTIONS = ("unif", "triang", "norm", "truncnorm", "lognorm")
_BOUNDED = ("unif", "triang", "truncnorm")


class ParameterSpace:
    """Named parameters with bounds and, optionally, non-uniform distributions.

    Parameters
    ----------
    bounds
        ``{"name": (low, high), ...}`` in the order the parameters are used.
    dists
        Optional ``{"name": dist}`` with ``dist`` one of :data:`DISTRIBUTIONS` (SALib's names);
        parameters not listed are uniform.

    Examples
    --------
    >>> space = ParameterSpace({"left": (100.0, 500.0), "right": (100.0, 500.0)})
    >>> space.names
    ('left', 'right')
    >>> space.validate({"left": 120.0, "right": 300.0}).tolist()
    [120.0, 300.0]
    """

    def __init__(self, bounds: Mapping[str, Sequence[float]], dists: Mapping[str, str] | None = None):
        if not isinstance(bounds, Mapping) or not bounds:
            raise ValueError(f"bounds must be a non-empty mapping {{name: (low, high)}}, got {bounds!r}")
        dists = dict(dists or {})
        unknown = sorted(set(dists) - set(bounds))
        if unknown:
            raise ValueError(f"dists names unknown parameter(s) {unknown}; parameters are {list(bounds)}")
        self._names = tuple(str(name) for name in bounds)
        self._dists = tuple(dists.get(name, "unif") for name in self._names)
        rows = []
        for name, dist in zip(self._names, self._dists, strict=True):
            rows.append(_check_bounds(name, bounds[name], dist))
        self._bounds = np.array(rows, dtype=float)
        self._bounds.flags.writeable = False

    @property
    def names(self) -> tuple[str, ...]:
        """Parameter names, in order."""
        return self._names

    @property
    def bounds(self) -> np.ndarray:
        """Array ``(d, 2)`` of (low, high) per parameter (mean, std for ``norm``/``lognorm``)."""
        return self._bounds

    @property
    def dists(self) -> tuple[str, ...]:
        """Distribution name per parameter."""
        return self._dists

    @property
    def dim(self) -> int:
        """Number of parameters."""
        return len(self._names)

    def __len__(self) -> int:
        return self.dim

    def __repr__(self) -> str:
        items = ", ".join(f"{n!r}: ({lo:g}, {hi:g})" for n, (lo, hi) in zip(self.names, self.bounds, strict=True))
        return f"ParameterSpace({{{items}}})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, ParameterSpace)
            and self.names == other.names
            and self.dists == other.dists
            and np.array_equal(self.bounds, other.bounds)
        )

    def to_salib(self) -> dict:
        """The SALib ``problem`` dict (``num_vars``, ``names``, ``bounds``, ``dists``)."""
        return {
            "num_vars": self.dim,
            "names": list(self.names),
            "bounds": self.bounds.tolist(),
            "dists": list(self.dists),
        }

    def validate(self, x) -> np.ndarray:
        """Check points and return them as a float array ``(d,)`` or ``(n, d)``.

        ``x`` is a mapping ``{name: value}`` (every name, no other) or an array whose last axis has
        length ``d``. Raises ``ValueError`` naming the parameter that is unknown, missing, not finite
        or out of bounds.
        """
        if isinstance(x, Mapping):
            unknown = sorted(set(x) - set(self.names))
            if unknown:
                raise ValueError(f"unknown parameter(s) {unknown}; this space has {list(self.names)}")
            missing = [name for name in self.names if name not in x]
            if missing:
                raise ValueError(f"missing parameter(s) {missing}; this space has {list(self.names)}")
            x = [x[name] for name in self.names]
        try:
            arr = np.asarray(x, dtype=float)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"parameters must be numbers, got {x!r}") from exc
        if arr.ndim not in (1, 2) or arr.shape[-1] != self.dim:
            raise ValueError(
                f"expected shape ({self.dim},) or (n, {self.dim}) for parameters {list(self.names)}, got {arr.shape}"
            )
        points = arr.reshape(-1, self.dim)
        for k, (name, dist) in enumerate(zip(self.names, self.dists, strict=True)):
            column = points[:, k]
            bad = ~np.isfinite(column)
            if bad.any():
                raise ValueError(f"parameter {name!r} is not finite: {float(column[bad][0])!r}")
            if dist in _BOUNDED:
                low, high = self.bounds[k]
                out = (column < low) | (column > high)
                if out.any():
                    raise ValueError(
                        f"parameter {name!r} = {float(column[out][0])!r} is outside its bounds [{low:g}, {high:g}]"
                    )
        return arr

    def to_dict(self, x) -> dict[str, float]:
        """One point as ``{name: value}`` (validated)."""
        arr = self.validate(x)
        if arr.ndim != 1:
            raise ValueError(f"to_dict takes one point of shape ({self.dim},), got {arr.shape}")
        return {name: float(v) for name, v in zip(self.names, arr, strict=True)}

    def scale(self, unit) -> np.ndarray:
        """Map points of the unit hypercube ``(n, d)`` to the space (inverse CDF per parameter)."""
        u = np.asarray(unit, dtype=float)
        if u.ndim != 2 or u.shape[1] != self.dim:
            raise ValueError(f"expected unit samples of shape (n, {self.dim}), got {u.shape}")
        if ((u < 0) | (u > 1)).any():
            raise ValueError("unit samples must lie in [0, 1]")
        out = np.empty_like(u)
        for k, ((a, b), dist) in enumerate(zip(self.bounds, self.dists, strict=True)):
            out[:, k] = a + (b - a) * u[:, k] if dist == "unif" else self._distribution(k).ppf(u[:, k])
        return out

    def unscale(self, x) -> np.ndarray:
        """Map points of the space ``(n, d)`` to the unit hypercube (CDF per parameter), the inverse of :meth:`scale`.

        Examples
        --------
        >>> space = ParameterSpace({"left": (100.0, 500.0)})
        >>> space.unscale([[200.0]]).tolist()
        [[0.25]]
        """
        x = self.validate(np.atleast_2d(x))
        out = np.empty_like(x)
        for k, ((a, b), dist) in enumerate(zip(self.bounds, self.dists, strict=True)):
            out[:, k] = (x[:, k] - a) / (b - a) if dist == "unif" else self._distribution(k).cdf(x[:, k])
        return out

    def _distribution(self, k: int):
        """Parameter ``k`` as a frozen ``scipy.stats`` distribution (SALib's conventions)."""
        from scipy import stats

        (a, b), dist = self.bounds[k], self.dists[k]
        if dist == "triang":
            return stats.triang(c=0.5, loc=a, scale=b - a)
        if dist == "truncnorm":
            return stats.truncnorm(-2.0, 2.0, loc=(a + b) / 2, scale=(b - a) / 4)
        if dist == "norm":
            return stats.norm(loc=a, scale=b)
        return stats.lognorm(s=b, scale=np.exp(a))  # lognorm: (mean, std) of the underlying normal


def _check_bounds(name: str, pair, dist: str) -> tuple[float, float]:
    if dist not in DISTRIBUTIONS:
        raise ValueError(f"parameter {name!r}: unknown distribution {dist!r}; choose one of {DISTRIBUTIONS}")
    try:
        low, high = (float(v) for v in pair)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"parameter {name!r}: bounds must be a pair of numbers (low, high), got {pair!r}") from exc
    if not (np.isfinite(low) and np.isfinite(high)):
        raise ValueError(f"parameter {name!r}: bounds must be finite, got ({low}, {high})")
    if dist in _BOUNDED and not low < high:
        raise ValueError(f"parameter {name!r}: lower bound {low:g} must be below upper bound {high:g}")
    if dist in ("norm", "lognorm") and not high > 0:
        raise ValueError(f"parameter {name!r}: {dist} takes (mean, std) with std > 0, got std {high:g}")
    return low, high
