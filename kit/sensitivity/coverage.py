"""How often confidence intervals of Sobol' indices cover the exact indices, over independent replicates.

Each replicate is a study of ``n`` pick-freeze groups drawn at random (independent groups, what the
intervals assume), on an analytic function with exact indices (``kit.simulators.Ishigami``, ``SobolG``).
The replicates are the cells of one :class:`~kit.sensitivity.IterativeSobol`, so hundreds cost one
vectorised pass. Four intervals are compared on the same outputs:

- ``martinez``: :meth:`IterativeSobol.confidence_interval` of the Martinez estimators (delta-method variance
  of a correlation);
- ``jansen``: the same for the Jansen estimators (delta-method variance of a ratio of means);
- ``fisher``: Fisher's normal-theory ``tanh(atanh(r) +- z / sqrt(n - 3))`` on the Martinez correlations, what
  the kit used before (right only for normal outputs);
- ``salib``: ``SALib.analyze.sobol.analyze`` on each replicate's outputs (its own estimators: Saltelli
  2010 first order, Jansen total) with its bootstrap intervals ``index +- conf``.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import metadata
from statistics import NormalDist

import numpy as np

from kit.sampling import pick_freeze
from kit.sensitivity.convergence import salib_indices
from kit.sensitivity.sobol import IterativeSobol

__all__ = ["INTERVALS", "interval_coverage"]

#: Intervals compared by :func:`interval_coverage`.
INTERVALS = ("martinez", "jansen", "fisher", "salib")


def interval_coverage(
    model,
    sizes: Sequence[int],
    replicates: int = 400,
    *,
    seed: int = 0,
    level: float = 0.95,
    resamples: int = 100,
    intervals: Sequence[str] = INTERVALS,
    progress: bool = True,
):
    """Coverage and mean width of confidence intervals of ``model``'s Sobol' indices, per interval and size.

    Parameters
    ----------
    model
        Has ``space``, ``evaluate(points)`` and ``exact_indices()``.
    sizes
        Numbers ``n`` of pick-freeze groups per replicate (each size draws fresh replicates).
    replicates
        Independent replicates per size.
    seed
        Seed of the designs (each size its own stream, ``SeedSequence([seed, n])``) and of SALib's bootstrap.
    level
        Nominal confidence level.
    resamples
        SALib's bootstrap resamples (its default is 100).
    intervals
        Any of :data:`INTERVALS`.
    progress
        Show a progress bar over SALib's replicates (``tqdm.auto``).

    Returns
    -------
    xarray.Dataset
        Dims ``interval``, ``index`` (``S1``, ``ST``), ``parameter`` and ``groups``. ``coverage`` (the fraction
        of replicates whose interval holds the exact index), ``coverage_low`` and ``coverage_high`` (its 95 %
        Wilson interval over replicates), ``coverage_min`` and ``coverage_max`` (over parameters), ``width``
        (mean interval width), ``exact`` (the exact indices).

    Examples
    --------
    >>> from kit.simulators import Ishigami
    >>> data = interval_coverage(Ishigami(), [256], replicates=200, intervals=["martinez"], progress=False)
    >>> bool(data.coverage.min() > 0.85), dict(data.coverage.sizes)
    (True, {'interval': 1, 'index': 2, 'parameter': 3, 'groups': 1})
    """
    import xarray as xr

    sizes = [int(n) for n in sizes]
    if not sizes or min(sizes) < 4:
        raise ValueError(f"sizes must list numbers of groups >= 4 (intervals need 4 groups), got {sizes!r}")
    if isinstance(replicates, bool) or not isinstance(replicates, int) or replicates < 1:
        raise ValueError(f"replicates must be an int >= 1, got {replicates!r}")
    unknown = sorted(set(intervals) - set(INTERVALS))
    if unknown or not intervals:
        raise ValueError(f"intervals must name some of {list(INTERVALS)}; unknown: {unknown}")
    intervals = [m for m in INTERVALS if m in intervals]
    if not 0 < level < 1:
        raise ValueError(f"level must be a probability strictly between 0 and 1, got {level!r}")
    exact = np.stack(model.exact_indices())  # (index, parameter)
    z = NormalDist().inv_cdf((1 + level) / 2)
    covered, width = [], []
    for n in sizes:
        outputs = _replicates(model, n, replicates, np.random.SeedSequence([seed, n]))  # (n, d + 2, replicates)
        sobol = _accumulated(outputs, "martinez") if {"martinez", "fisher"} & set(intervals) else None
        jansen = _accumulated(outputs, "jansen") if "jansen" in intervals else None
        bounds = [_bounds(name, sobol, jansen, outputs, z, level, resamples, seed, progress) for name in intervals]
        low, high = np.stack([b[0] for b in bounds]), np.stack([b[1] for b in bounds])
        hit = (low <= exact[None, :, :, None]) & (exact[None, :, :, None] <= high)
        covered.append(hit.mean(axis=-1))
        width.append((high - low).mean(axis=-1))
    dims, reduced = ("interval", "index", "parameter", "groups"), ("interval", "index", "groups")
    coverage = np.stack(covered, axis=-1)
    low, high = _wilson(coverage, replicates)
    data = xr.Dataset(
        {
            "coverage": (dims, coverage),
            "coverage_low": (dims, low),
            "coverage_high": (dims, high),
            "coverage_min": (reduced, coverage.min(axis=2)),
            "coverage_max": (reduced, coverage.max(axis=2)),
            "width": (dims, np.stack(width, axis=-1)),
            "exact": (("index", "parameter"), exact),
        },
        coords={"interval": intervals, "index": ["S1", "ST"], "parameter": list(model.space.names), "groups": sizes},
    )
    data.attrs = {
        "model": repr(model),
        "replicates": replicates,
        "confidence_level": float(level),
        "design": "random pick-freeze groups (independent)",
        "salib_resamples": resamples,
        "salib_version": metadata.version("SALib"),
        "seed": seed,
    }
    return data


def _replicates(model, n: int, replicates: int, seed: np.random.SeedSequence) -> np.ndarray:
    """Outputs of ``replicates`` independent random designs of ``n`` groups, ``(n, d + 2, replicates)``."""
    d = model.space.dim
    groups = pick_freeze(model.space, n * replicates, seed, base="random").reshape(n, replicates, d + 2, d)
    return model.evaluate(groups.reshape(-1, d)).reshape(n, replicates, d + 2).transpose(0, 2, 1)


def _accumulated(outputs: np.ndarray, estimator: str) -> IterativeSobol:
    """The replicates ``(n, d + 2, replicates)`` as the cells of one accumulator."""
    sobol = IterativeSobol(outputs.shape[1] - 2, (outputs.shape[2],), estimator=estimator)
    sobol.update(outputs)
    return sobol


def _bounds(name: str, sobol: IterativeSobol, jansen, outputs, z, level, resamples, seed, progress):
    """One interval's ``(low, high)``, each ``(index, parameter, replicate)``."""
    if name == "martinez":
        return _stacked(sobol.confidence_interval(level))
    if name == "jansen":
        return _stacked(jansen.confidence_interval(level))
    if name == "fisher":
        return _fisher(sobol, z)
    return _salib(outputs, level, resamples, seed, progress)


def _stacked(intervals) -> tuple[np.ndarray, np.ndarray]:
    """``(low, high)``, each ``(index, parameter, replicate)``, from :class:`~kit.sensitivity.Intervals`."""
    (s_low, s_high), (t_low, t_high) = intervals
    return np.stack([s_low, t_low]), np.stack([s_high, t_high])


def _fisher(sobol: IterativeSobol, z: float) -> tuple[np.ndarray, np.ndarray]:
    """Fisher's normal-theory bounds on the correlations behind S1 (``r``) and ST (``1 - r``)."""
    r = np.clip(np.stack([sobol.first_order, 1.0 - sobol.total_order]), -1 + 1e-15, 1 - 1e-15)
    half = z / np.sqrt(sobol.n_groups - 3)
    low, high = np.tanh(np.arctanh(r) - half), np.tanh(np.arctanh(r) + half)
    return np.stack([low[0], 1.0 - high[1]]), np.stack([high[0], 1.0 - low[1]])


def _salib(outputs: np.ndarray, level: float, resamples: int, seed: int, progress: bool):
    """SALib's bootstrap bounds per replicate, ``(index, parameter, replicate)`` each."""
    from tqdm.auto import tqdm

    n, _, replicates = outputs.shape
    bounds = [
        salib_indices(outputs[..., r], level=level, resamples=resamples, seed=seed + r)[1:]
        for r in tqdm(range(replicates), desc=f"SALib bootstrap, n={n}", disable=not progress, leave=False)
    ]
    return np.stack([b[0] for b in bounds], axis=-1), np.stack([b[1] for b in bounds], axis=-1)


def _wilson(p: np.ndarray, n: int, z: float = 1.959963984540054) -> tuple[np.ndarray, np.ndarray]:
    """Wilson's 95 % score interval of a binomial proportion ``p`` out of ``n``."""
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z / (1 + z**2 / n) * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    return centre - half, centre + half
