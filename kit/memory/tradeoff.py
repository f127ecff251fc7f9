"""Time against peak memory of every strategy over a range of budgets: predicted, then measured."""

from __future__ import annotations

import copy

import numpy as np
import xarray as xr

from kit.memory.execute import measure
from kit.memory.plan import STRATEGIES, budgets_between, plan
from kit.memory.plan import least_peak as _least_peak
from kit.memory.profiling import check_device, profile
from kit.memory.schedule import Costs


def tradeoff(
    model,
    sample_input,
    *,
    fractions=(0.1, 0.3, 0.5, 0.7, 0.9, 1.0),
    device="cpu",
    repeats: int = 3,
    slots: int = 500,
    progress: bool = True,
) -> xr.Dataset:
    """Plan and run ``model`` (any model :func:`~kit.memory.stages` cuts) on ``sample_input`` under budgets
    between the least peak any schedule reaches (fraction 0) and the peak of storing everything (fraction 1).

    Returns a Dataset with dims ``(strategy, budget)``: ``predicted_peak``, ``predicted_time``,
    ``measured_peak``, ``measured_time`` (NaN where the strategy cannot fit), ``peak_over_budget``
    (measured peak / budget), ``prediction_error_peak`` and ``prediction_error_time`` (measured / predicted
    - 1), and per budget ``time_ratio_vs_uniform`` (measured time of ``optimal`` / ``uniform``); ``overhead_vs_optimal``
    (the plan's predicted time over T*(measured peak) - 1: how much slower it is than the best schedule
    within the memory it really used, both on the model); the
    per-stage profile's variables beside them with dim ``stage``.
    """
    from tqdm.auto import tqdm

    costs = profile(copy.deepcopy(model), sample_input, device, repeats=repeats)
    chain = Costs.from_profile(costs)
    full = plan(chain, strategy="store_all")
    least = _least_peak(chain, slots)
    budgets = budgets_between(chain, fractions, slots)
    shape = (len(STRATEGIES), len(budgets))
    values = {
        key: np.full(shape, np.nan) for key in ("predicted_peak", "predicted_time", "measured_peak", "measured_time")
    }
    measured: dict = {}  # a plan measured once, whatever the budgets it fits
    runner = copy.deepcopy(model).to(check_device(device))
    jobs = [(i, k) for i in range(len(STRATEGIES)) for k in range(len(budgets))]
    for i, k in tqdm(jobs, desc="plans", disable=not progress):
        strategy, budget = STRATEGIES[i], int(budgets[k])
        try:
            chosen = plan(chain, budget, strategy, slots=slots)
        except ValueError:  # the strategy cannot fit this budget
            continue
        key = tuple(chosen.operations)  # the same schedule is measured once, whatever strategy chose it
        if key not in measured:
            measured[key] = measure(runner, chosen, sample_input, repeats=repeats)
        result = measured[key]
        values["predicted_peak"][i, k], values["predicted_time"][i, k] = chosen.predicted_peak, chosen.predicted_time
        values["measured_peak"][i, k], values["measured_time"][i, k] = result["peak"], result["time"]
    data = xr.Dataset(
        {key: (("strategy", "budget"), value) for key, value in values.items()},
        coords={"strategy": list(STRATEGIES), "budget": budgets, "fraction": ("budget", np.asarray(fractions, float))},
    )
    data["peak_over_budget"] = data.measured_peak / data.budget
    data["prediction_error_peak"] = data.measured_peak / data.predicted_peak - 1
    data["prediction_error_time"] = data.measured_time / data.predicted_time - 1
    data["time_ratio_vs_uniform"] = data.measured_time.sel(strategy="optimal") / data.measured_time.sel(
        strategy="uniform"
    )
    data["overhead_vs_optimal"] = data.predicted_time / _least_time(chain, data.measured_peak, slots) - 1
    for key in ("predicted_peak", "measured_peak", "budget"):
        data[key].attrs["units"] = "bytes"
    for key in ("predicted_time", "measured_time"):
        data[key].attrs["units"] = "s"
    ratios = ("peak_over_budget", "prediction_error_peak", "prediction_error_time", "time_ratio_vs_uniform")
    for key in (*ratios, "overhead_vs_optimal"):
        data[key].attrs["units"] = "1"
    data = xr.merge([data, costs.rename({"module": "stage_module"})], combine_attrs="drop_conflicts")
    data.attrs.update(
        device=costs.attrs["device"],
        stages=int(costs.sizes["stage"]),
        least_peak=int(least),
        store_all_peak=int(full.predicted_peak),
        input_shape=str(tuple(sample_input.shape)),
        slots=slots,
    )
    return data


def _least_time(chain: Costs, peaks: xr.DataArray, slots: int) -> xr.DataArray:
    """T*(peak) of the dynamic program at each measured peak (NaN where nothing fits it)."""

    def least(peak: float) -> float:
        try:
            return plan(chain, int(peak), "optimal", slots=slots).predicted_time
        except ValueError:
            return np.nan

    return xr.apply_ufunc(np.vectorize(least), peaks.fillna(0))


def benchmark(
    chains=("mlp", "conv", "transformer"),
    *,
    batch: int | dict | None = None,
    fractions=(0.1, 0.3, 0.5, 0.7, 0.9, 1.0),
    repeats: int = 3,
    device="cpu",
    seed: int = 0,
    progress: bool = True,
) -> xr.Dataset:
    """:func:`tradeoff` of each benchmark chain of ``kit.memory.models`` (dim ``chain``; budgets are given by
    their ``fraction``, the per-stage profiles are left out). ``batch`` is one size for every chain or a
    mapping from chain name to size (None: each chain's default)."""
    from kit.memory.models import benchmark_chain

    rows = []
    for name in chains:
        model, sample = benchmark_chain(name, batch=batch, seed=seed)
        data = tradeoff(model, sample, fractions=fractions, device=device, repeats=repeats, progress=progress)
        profiled = [key for key in data.data_vars if "stage" in data[key].dims]
        data = data.drop_vars([*profiled, "stage", "stage_module"]).swap_dims(budget="fraction")
        data = data.reset_coords("budget").rename(budget="budget_bytes")
        rows.append(data.assign_attrs(chain=name))
    out = xr.concat(rows, dim=xr.DataArray(list(chains), dims="chain", name="chain"), combine_attrs="drop_conflicts")
    out.attrs.update(seed=seed, batch="default" if batch is None else str(batch))
    return out
