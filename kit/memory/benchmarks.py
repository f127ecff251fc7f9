"""Partitioning studies over the benchmark chains of :mod:`kit.memory.models`."""

from __future__ import annotations

import xarray as xr

from kit.memory.models import benchmark_chain
from kit.memory.partition import versus_greedy
from kit.memory.profiling import profile


def partitions(
    chains=("mlp", "conv", "transformer"),
    *,
    batch: int | None = None,
    fractions=(0.1, 0.25, 0.5, 0.75, 1.0),
    fast_speed: float = 10.0,
    mode: str = "training",
    repeats: int = 3,
    seed: int = 0,
) -> xr.Dataset:
    """:func:`~kit.memory.partition.versus_greedy` for each chain (dim ``chain``), the fast device's memory
    given as ``fractions`` of what the whole chain needs on it (dim ``fraction``)."""
    rows = []
    for name in chains:
        model, sample = benchmark_chain(name, batch=batch, seed=seed)
        costs = profile(model, sample, repeats=repeats)
        data = versus_greedy(costs, fractions, fast_speed=fast_speed, mode=mode)
        rows.append(data.reset_coords("fast_memory"))
    out = xr.concat(rows, dim=xr.DataArray(list(chains), dims="chain", name="chain"), combine_attrs="drop_conflicts")
    out.attrs.update(seed=seed, batch="default" if batch is None else batch, device=rows[0].attrs.get("device", ""))
    return out
