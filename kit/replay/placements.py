"""The same workflow placed on several platforms by several strategies: makespan, data latency, bytes moved."""

from __future__ import annotations

import numpy as np
import xarray as xr

from kit.replay.platform import Platform, example
from kit.replay.simulate import Replay, replay
from kit.replay.strategies import STRATEGIES


def data_latency(result: Replay) -> np.ndarray:
    """Seconds from the end of each simulation task to the end of the training task that first used its data
    (directly, or through tasks of other components such as a receive): how fresh training data are."""
    tasks = {t.id: t for t in result.trace.tasks}
    latencies = []
    for task in result.trace.tasks:
        if task.component != "training":
            continue
        stack, seen = [p for p in task.parents if tasks[p].component != "training"], set()
        while stack:
            parent = stack.pop()
            if parent in seen:
                continue
            seen.add(parent)
            if tasks[parent].component == "simulation":
                latencies.append(result.ends[task.id] - result.ends[parent])
            else:
                stack.extend(p for p in tasks[parent].parents if tasks[p].component != "training")
    return np.asarray(latencies, dtype=float)


def compare_placements(trace, platforms=("laptop", "continuum", "hpc-cloud"), strategies=None, *, seed: int = 0):
    """Replay ``trace`` on each platform (example names or ``{name: Platform}``) under each strategy (default:
    all of ``kit.replay.strategies``); dims ``platform, strategy``: ``makespan``, ``bytes_moved``,
    ``latency_mean`` and ``latency_p99`` (:func:`data_latency`), ``hosts_used``; NaN, with the reason in
    ``attrs["skipped"]``, where a strategy cannot place the trace on a platform (a tier it lacks)."""
    models = platforms if isinstance(platforms, dict) else {name: example(name) for name in platforms}
    if any(not isinstance(p, Platform) for p in models.values()):
        raise ValueError("platforms must be example names or a mapping of name -> kit.replay.Platform")
    strategies = list(strategies or STRATEGIES)
    keys = ("makespan", "bytes_moved", "latency_mean", "latency_p99", "hosts_used")
    values = {key: np.full((len(models), len(strategies)), np.nan) for key in keys}
    skipped = []
    for i, (name, platform) in enumerate(models.items()):
        for k, strategy in enumerate(strategies):
            try:
                result = replay(trace, platform, strategy, seed=seed)
            except ValueError as exc:  # e.g. all-edge on a platform without edge hosts
                skipped.append(f"{strategy} on {name}: {exc}")
                continue
            latency = data_latency(result)
            values["makespan"][i, k], values["bytes_moved"][i, k] = result.makespan, result.bytes_moved
            if latency.size:
                values["latency_mean"][i, k], values["latency_p99"][i, k] = latency.mean(), np.percentile(latency, 99)
            values["hosts_used"][i, k] = len(set(result.hosts.values()))
    data = xr.Dataset(
        {key: (("platform", "strategy"), value) for key, value in values.items()},
        coords={"platform": list(models), "strategy": strategies},
    )
    for key in ("makespan", "latency_mean", "latency_p99"):
        data[key].attrs["units"] = "s"
    data["bytes_moved"].attrs["units"] = "bytes"
    return data.assign_attrs(trace=trace.name, tasks=len(trace.tasks), seed=seed, skipped="; ".join(skipped))
