"""Partitioning studies over the benchmark chains of :mod:`kit.memory.models`."""

from __future__ import annotations

import copy

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


def executed_partition(
    chain: str = "mlp",
    *,
    batch: int | None = None,
    fraction: float = 0.5,
    fast_speed: float = 10.0,
    mode: str = "training",
    places=None,
    repeats: int = 3,
    seed: int = 0,
) -> xr.Dataset:
    """The partition of ``chain`` over a fast device (``fraction`` of the memory the whole chain needs there)
    and a host, run for real (:func:`~kit.memory.run_partition.run_partition`; ``places`` maps ``"fast"``
    and ``"slow"`` to torch devices, both the CPU by default): per device, measured beside predicted."""
    from kit.memory.partition import Device, partition
    from kit.memory.run_partition import run_partition

    model, sample = benchmark_chain(chain, batch=batch, seed=seed)
    costs = profile(copy.deepcopy(model), sample, repeats=repeats)
    whole = partition(costs, [Device("fast", fast_speed, 2**62), Device("slow", 1.0, 2**62)], mode=mode)
    devices = [Device("fast", fast_speed, max(1, int(fraction * whole.memory[0]))), Device("slow", 1.0, 2**62)]
    data = run_partition(model, partition(costs, devices, mode=mode, micro_batches=1), sample, places)
    return data.assign_attrs(chain=chain, fraction=fraction, fast_speed=fast_speed)
