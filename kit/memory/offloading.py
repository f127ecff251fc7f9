"""Offloading against recomputation alone: the same chains and budgets planned both ways, then measured."""

from __future__ import annotations

import copy

import numpy as np
import xarray as xr

from kit.memory.execute import measure
from kit.memory.plan import budgets_between, plan
from kit.memory.profiling import check_device, profile
from kit.memory.schedule import Costs

#: The plans compared: recomputation alone (rotor's program) and keep / recompute / offload.
COMPARED = ("optimal", "offload")


def compare(
    chains=("conv", "transformer", "resnet18"),
    link=None,
    *,
    batch: int | dict | None = None,
    fractions=(0.0, 0.2, 0.4, 0.6, 0.8),
    device="cpu",
    execute: bool | None = None,
    repeats: int = 3,
    seed: int = 0,
) -> xr.Dataset:
    """Plan each benchmark chain at budgets between the least peak of recomputation alone (fraction 0) and
    store-all's peak (1) with ``optimal`` and ``offload`` over ``link`` (a ``HostLink``), and run both
    when ``execute`` (default: on CUDA only; on a CPU the host copies land in the memory being measured).

    Dims ``chain, strategy, fraction``: ``predicted_peak``, ``predicted_time``, ``measured_peak``,
    ``measured_time`` (NaN where not run), ``offloaded_stages``, ``moved_bytes``, ``peak_over_budget``; per
    chain and fraction ``budget_bytes`` and ``time_ratio_offload_predicted`` / ``_measured`` (offload /
    optimal).
    """
    if link is None:
        raise ValueError("compare needs link=HostLink(d2h_bandwidth, h2d_bandwidth, overlap)")
    chains_profiled = _profile_chains(chains, batch, device, repeats, seed)
    execute = check_device(device).type == "cuda" if execute is None else execute
    return _compare_profiled(chains_profiled, link, fractions, execute, repeats).assign_attrs(
        seed=seed, batch="default" if batch is None else str(batch)
    )


def sweep(
    bandwidths,
    chains=("conv", "transformer", "resnet18"),
    *,
    overlap: float = 1.0,
    batch: int | dict | None = None,
    fractions=(0.0, 0.2, 0.4, 0.6, 0.8),
    device="cpu",
    repeats: int = 3,
    seed: int = 0,
) -> xr.Dataset:
    """:func:`compare`, planned only, over host links of several ``bandwidths`` (bytes/s each way; dim
    ``bandwidth``), every chain profiled once on ``device``."""
    from kit.memory.host_link import HostLink

    if len(bandwidths) == 0:
        raise ValueError("bandwidths must list at least one host-link bandwidth in bytes/s")
    chains_profiled = _profile_chains(chains, batch, device, repeats, seed)
    runs = [_compare_profiled(chains_profiled, HostLink(float(b), float(b), overlap), fractions, False, 1)
            for b in bandwidths]  # fmt: skip
    out = xr.concat(runs, dim=xr.DataArray(np.asarray(bandwidths, float), dims="bandwidth", name="bandwidth"),
                    combine_attrs="drop_conflicts")  # fmt: skip
    out["bandwidth"].attrs["units"] = "bytes/s"
    return out.assign_attrs(overlap=overlap, seed=seed, batch="default" if batch is None else str(batch))


def with_recorded(planned: xr.Dataset, recorded: xr.Dataset | None) -> xr.Dataset:
    """``planned`` (:func:`sweep`) with the variables of a recorded run of :func:`compare` beside it, prefixed
    ``recorded_`` (dims ``recorded_chain``, ``strategy``, ``recorded_fraction``), so a figure's data hold both."""
    if recorded is None:
        return planned
    renamed = recorded.rename({name: f"recorded_{name}" for name in recorded.data_vars})
    renamed = renamed.rename({"chain": "recorded_chain", "fraction": "recorded_fraction"})
    return xr.merge([planned, renamed], combine_attrs="override")


def _profile_chains(chains, batch, device, repeats: int, seed: int) -> dict:
    from kit.memory.models import benchmark_chain

    target, out = check_device(device), {}
    for name in chains:
        model, sample = benchmark_chain(name, batch=batch, seed=seed)
        profiled = profile(copy.deepcopy(model), sample, target, repeats=repeats)
        out[name] = (Costs.from_profile(profiled), model.to(target), sample, profiled.attrs["device"])
    return out


def _compare_profiled(chains_profiled: dict, link, fractions, execute: bool, repeats: int) -> xr.Dataset:
    shape = (len(chains_profiled), len(COMPARED), len(fractions))
    keys = ("predicted_peak", "predicted_time", "measured_peak", "measured_time", "offloaded_stages", "moved_bytes")
    values = {key: np.full(shape, np.nan) for key in keys}
    budgets = np.zeros(shape[::2], dtype=np.int64)
    for c, (costs, model, sample, _) in enumerate(chains_profiled.values()):
        budgets[c] = budgets_between(costs, fractions)
        for k in range(len(fractions)):
            for i, strategy in enumerate(COMPARED):
                chosen = plan(costs, int(budgets[c, k]), strategy, link=link if strategy == "offload" else None)
                values["predicted_peak"][c, i, k] = chosen.predicted_peak
                values["predicted_time"][c, i, k] = chosen.predicted_time
                values["offloaded_stages"][c, i, k] = len(chosen.offloaded)
                values["moved_bytes"][c, i, k] = sum(costs.moved(j) for j in chosen.offloaded)
                if execute:
                    result = measure(model, chosen, sample, repeats=repeats)
                    values["measured_peak"][c, i, k], values["measured_time"][c, i, k] = result["peak"], result["time"]
    data = xr.Dataset(
        {key: (("chain", "strategy", "fraction"), value) for key, value in values.items()},
        coords={"chain": list(chains_profiled), "strategy": list(COMPARED), "fraction": np.asarray(fractions, float)},
    )
    data["budget_bytes"] = (("chain", "fraction"), budgets)
    for kind in ("predicted", "measured"):
        times = data[f"{kind}_time"]
        data[f"time_ratio_offload_{kind}"] = times.sel(strategy="offload") / times.sel(strategy="optimal")
    data["peak_over_budget"] = data.measured_peak / data.budget_bytes
    for key in ("predicted_peak", "measured_peak", "moved_bytes", "budget_bytes"):
        data[key].attrs["units"] = "bytes"
    first = next(iter(chains_profiled.values()))
    return data.assign_attrs(
        device=first[3],
        d2h_bandwidth=link.d2h_bandwidth,
        h2d_bandwidth=link.h2d_bandwidth,
        overlap=link.overlap,
        executed=int(execute),
    )
