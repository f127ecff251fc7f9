"""Convergence of one-pass Sobol indices on analytic functions with exact indices."""

from __future__ import annotations

import xarray as xr

from kit.sampling import pick_freeze
from kit.sensitivity.sobol import IterativeSobol


def convergence(model, sizes, *, seed: int = 0, level: float = 0.95, estimator: str = "martinez") -> xr.Dataset:
    """Indices and confidence intervals after each of ``sizes`` pick-freeze groups, streamed in order.

    ``model`` has ``space``, ``evaluate(points)`` and ``exact_indices()`` (``kit.simulators.Ishigami``,
    ``SobolG``). One design of ``max(sizes)`` groups is fed in increments, so each size reuses the previous
    groups, as a study that stops when the widest interval is narrow enough would.
    """
    sizes = sorted(int(n) for n in sizes)
    d = model.space.dim
    design = pick_freeze(model.space, sizes[-1], seed)
    outputs = model.evaluate(design.reshape(-1, d)).reshape(sizes[-1], d + 2)
    sobol, done, rows = IterativeSobol(d, estimator=estimator), 0, []
    for n in sizes:
        sobol.update(outputs[done:n])
        done = n
        rows.append(sobol.to_dataset(names=list(model.space.names), level=level))
    data = xr.concat(rows, dim=xr.DataArray(sizes, dims="groups", name="groups"))
    first, total = model.exact_indices()
    data["S1_exact"] = ("parameter", first)
    data["ST_exact"] = ("parameter", total)
    data["S1_error"] = abs(data.S1 - data.S1_exact).max("parameter")
    data["ST_error"] = abs(data.ST - data.ST_exact).max("parameter")
    data.attrs = {"model": repr(model), "estimator": estimator, "confidence_level": level, "seed": seed}
    return data
