"""Convergence of one-pass Sobol indices on analytic functions with exact indices."""

from __future__ import annotations

import numpy as np
import xarray as xr

from kit.sampling import pick_freeze
from kit.sensitivity.sobol import IterativeSobol

__all__ = ["convergence", "salib_indices"]


def convergence(
    model, sizes, *, seed: int = 0, level: float = 0.95, estimator: str = "martinez", resamples: int = 100
) -> xr.Dataset:
    """Indices and confidence intervals after each of ``sizes`` pick-freeze groups, streamed in order.

    ``model`` has ``space``, ``evaluate(points)`` and ``exact_indices()`` (``kit.simulators.Ishigami``,
    ``SobolG``). One design of ``max(sizes)`` groups is fed in increments, so each size reuses the previous
    groups, as a study that stops when the widest interval is narrow enough would. SALib's
    ``sobol.analyze`` runs on the same first groups at each size (its estimators, ``resamples`` bootstrap
    resamples): ``S1_salib`` and ``ST_salib`` with ``_low`` and ``_high`` bounds beside the kit's.
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
    salib = np.stack(  # groups, value|low|high, index, parameter
        [salib_indices(outputs[:n], level=level, resamples=resamples, seed=seed) for n in sizes]
    )
    for i, index in enumerate(("S1", "ST")):
        for j, suffix in enumerate(("", "_low", "_high")):
            data[f"{index}_salib{suffix}"] = (("groups", "parameter"), salib[:, j, i])
    first, total = model.exact_indices()
    data["S1_exact"] = ("parameter", first)
    data["ST_exact"] = ("parameter", total)
    data["S1_error"] = abs(data.S1 - data.S1_exact).max("parameter")
    data["ST_error"] = abs(data.ST - data.ST_exact).max("parameter")
    data.attrs = {
        "model": repr(model),
        "estimator": estimator,
        "confidence_level": level,
        "seed": seed,
        "salib_resamples": resamples,
    }
    return data


def salib_indices(outputs: np.ndarray, *, level: float, resamples: int, seed: int) -> np.ndarray:
    """SALib's indices and bootstrap bounds (index +- its ``conf``) from pick-freeze groups ``(n, d + 2)``,
    as ``(value|low|high, S1|ST, parameter)``."""
    from SALib.analyze import sobol as salib_sobol

    d = outputs.shape[1] - 2
    problem = {"num_vars": d, "names": [f"x{k + 1}" for k in range(d)], "bounds": [[0.0, 1.0]] * d}
    result = salib_sobol.analyze(
        problem,
        outputs[:, [0, *range(2, d + 2), 1]].reshape(-1),  # SALib's rows: A, AB_1 ... AB_d, B
        calc_second_order=False,
        num_resamples=resamples,
        conf_level=level,
        print_to_console=False,
        seed=seed + 1,
    )
    value = np.stack([result["S1"], result["ST"]])
    half = np.stack([result["S1_conf"], result["ST_conf"]])
    return np.stack([value, value - half, value + half])
