"""Which factors drive end-to-end performance: Sobol or Morris indices (SALib) of replay metrics.

A factor study draws a design of experiments over named factors (SALib's Saltelli/Sobol' or Morris
sampling), evaluates every point with the replay engine in parallel on dask, and analyses the metrics with
SALib. A *scenario* turns one point into metrics: :func:`replay_scenario` replays a trace on a platform
scaled by the infrastructure factors :func:`scaled` understands (``bandwidth``, ``latency``, ``speed``, each
optionally for one tier as ``speed.edge``, and ``hosts.<tier>``, the number of hosts of a tier); any
picklable ``scenario(values: dict) -> dict of metric -> float`` (workflow factors included) works too.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import xarray as xr

from kit.replay.platform import TIERS, Link, Platform
from kit.replay.simulate import replay
from kit.space import ParameterSpace

#: Factor-study methods: SALib's Sobol' (with Saltelli sampling) and Morris elementary effects.
METHODS = ("sobol", "morris")
#: Infrastructure factors :func:`scaled` understands (``<factor>.<tier>`` restricts one to a tier).
SCALED = ("bandwidth", "latency", "speed", "hosts")


def scaled(platform: Platform, values: dict) -> Platform:
    """``platform`` with link bandwidths (their profiles over time too), latencies and host CPU speeds
    multiplied by ``values["bandwidth"]``, ``["latency"]``, ``["speed"]`` (``"speed.edge"``: the edge hosts
    only; a link belongs to a tier when one of its ends does) and ``values["hosts.<tier>"]`` hosts in that
    tier (copies of its first host, linked like it; rounded, at least 1). Disk bandwidths are not scaled."""
    hosts, links = dict(platform.hosts), list(platform.links)
    for key, value in values.items():
        factor, _, tier = key.partition(".")
        if factor not in SCALED or (tier and tier not in TIERS) or (factor == "hosts" and not tier):
            raise ValueError(
                f"unknown factor {key!r}: use {list(SCALED[:3])}, '<factor>.<tier>' or 'hosts.<tier>' "
                f"with a tier of {list(TIERS)}"
            )
        in_tier = {name for name, host in hosts.items() if not tier or host.tier == tier}
        if not in_tier:
            raise ValueError(f"factor {key!r}: the platform has no {tier!r} host")
        if factor == "speed":
            hosts.update({name: dataclasses.replace(hosts[name], speed=hosts[name].speed * value) for name in in_tier})
        elif factor in ("bandwidth", "latency"):
            links = [_scale_link(link, factor, value) if set(link.ends) & in_tier else link for link in links]
        else:
            hosts, links = _resize(hosts, links, sorted(in_tier), max(1, round(value)))
    return Platform(hosts, links, platform.storage, platform.overhead)


def _scale_link(link: Link, factor: str, value: float) -> Link:
    """A link with its latency, or its bandwidth and every later change of it, multiplied by ``value``."""
    if factor == "latency":
        return dataclasses.replace(link, latency=link.latency * value)
    changes = tuple((at, bandwidth * value) for at, bandwidth in link.changes)
    return dataclasses.replace(link, bandwidth=link.bandwidth * value, changes=changes)


def _resize(hosts: dict, links: list[Link], members: list[str], count: int):
    """Keep the first ``count`` of ``members``, adding copies of the first one, linked like it."""
    first = members[0]
    keep = set(members[:count])
    hosts = {name: host for name, host in hosts.items() if name not in members or name in keep}
    links = [link for link in links if not (set(link.ends) & (set(members) - keep))]
    for k in range(len(keep), count):
        name = f"{first}#{k}"
        hosts[name] = dataclasses.replace(hosts[first], name=name)
        links += [
            dataclasses.replace(link, ends=tuple(name if end == first else end for end in link.ends))
            for link in links
            if first in link.ends
        ]
    return hosts, links


def replay_scenario(trace, platform: Platform, placement, *, seed: int = 0):
    """A scenario that replays ``trace`` on ``platform`` scaled by a point's factors under ``placement``
    (strategies re-place the tasks at every point): metrics ``makespan`` (s) and ``bytes_moved``."""
    return functools.partial(_replay_point, trace, platform, placement, seed)


def _replay_point(trace, platform, placement, seed, values: dict) -> dict:
    result = replay(trace, scaled(platform, values), placement, seed=seed)
    return {"makespan": result.makespan, "bytes_moved": float(result.bytes_moved)}


def factor_study(
    scenario,
    factors: dict,
    *,
    method: str = "sobol",
    n: int = 64,
    client=None,
    n_workers: int = 2,
    seed: int = 0,
    progress: bool = True,
) -> xr.Dataset:
    """Indices of every metric ``scenario`` returns with respect to ``factors`` (``{name: (low, high)}``,
    uniform), from ``n`` base samples (Sobol': ``n (d + 2)`` points, ``n`` a power of 2; Morris: ``n``
    trajectories of ``d + 1`` points), evaluated on dask (``client``: None starts a LocalCluster of
    ``n_workers``, or a scheduler address, or a Client).

    Returns dims ``metric, factor``: Sobol' ``S1``, ``ST`` and their 95 % confidence half-widths, or Morris
    ``mu_star``, ``sigma`` and ``mu_star_conf`` (NaN for a metric that never changes); the design (``point,
    factor``) and every point's metrics (``outputs``, dims ``point, metric``) beside them.
    """
    from kit.cluster import connect

    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {list(METHODS)}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 2 or (method == "sobol" and n & (n - 1)):
        raise ValueError(f"n must be an int >= 2 (a power of 2 for 'sobol'), got {n!r}")
    space = ParameterSpace(factors)
    problem = space.to_salib()
    design = _sample(problem, method, n, seed)
    points = [dict(zip(space.names, map(float, row), strict=True)) for row in design]
    with connect(client, n_workers=n_workers) as dask:
        outputs = _evaluate(dask, scenario, points, progress)
    metrics = sorted(outputs[0])
    table = np.array([[row[m] for m in metrics] for row in outputs], dtype=float)
    data = xr.Dataset(
        {
            "design": (("point", "factor"), design),
            "outputs": (("point", "metric"), table),
        },
        coords={"factor": list(space.names), "metric": metrics},
    )
    for key, values in _analyse(problem, method, design, table, seed).items():
        data[key] = (("metric", "factor"), values)
    return data.assign_attrs(method=method, n=n, seed=seed, points=len(points))


def _sample(problem: dict, method: str, n: int, seed: int) -> np.ndarray:
    if method == "sobol":
        from SALib.sample import sobol

        return sobol.sample(problem, n, calc_second_order=False, seed=seed)
    from SALib.sample import morris

    return morris.sample(problem, n, seed=seed)


def _evaluate(client, scenario, points: list[dict], progress: bool) -> list[dict]:
    """Every point on the cluster, the scenario sent once; a point that fails is an error naming it."""
    from distributed import as_completed
    from tqdm.auto import tqdm

    shared = client.scatter(scenario, broadcast=True)
    futures = client.map(_run_point, [shared] * len(points), points, range(len(points)), pure=False)
    results: list = [None] * len(points)
    with tqdm(total=len(points), desc="replays", disable=not progress) as bar:
        for future, result in as_completed(futures, with_results=True, raise_errors=False):
            if future.status == "error":
                raise RuntimeError(f"factor study: point {points[futures.index(future)]} failed: {result!r}")
            index, metrics = result
            results[index] = metrics
            bar.update()
    return results


def _run_point(scenario, values: dict, index: int) -> tuple[int, dict]:
    metrics = scenario(values)
    bad = {key: value for key, value in metrics.items() if not np.isfinite(value)}
    if bad:
        raise ValueError(f"the scenario returned non-finite metrics {bad} for {values}")
    return index, metrics


def _analyse(problem: dict, method: str, design: np.ndarray, table: np.ndarray, seed: int) -> dict:
    names = ("S1", "S1_conf", "ST", "ST_conf") if method == "sobol" else ("mu_star", "mu_star_conf", "sigma")
    out = {name: np.zeros((table.shape[1], problem["num_vars"])) for name in names}
    for m in range(table.shape[1]):
        if np.ptp(table[:, m]) == 0:  # a constant metric has no variance to apportion
            for name in names:
                out[name][m] = np.nan
            continue
        if method == "sobol":
            from SALib.analyze import sobol

            indices = sobol.analyze(problem, table[:, m], calc_second_order=False, seed=seed)
        else:
            from SALib.analyze import morris

            indices = morris.analyze(problem, design, table[:, m], seed=seed)
        for name in names:
            out[name][m] = np.asarray(indices[name], dtype=float)
    return out
