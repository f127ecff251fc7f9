"""The model of the machine that recorded a trace, and how far a replay on it lands from reality."""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import defaultdict
from itertools import combinations

import numpy as np
import xarray as xr

from kit.replay.platform import Host, Link, Platform
from kit.replay.simulate import replay
from kit.replay.trace import Trace

#: Bandwidth assumed between workers when the trace moved no data between them (bytes/s).
DEFAULT_BANDWIDTH = 1e9


def calibrate(trace: Trace, *, tier: str = "hpc") -> Platform:
    """One host per worker of ``trace``, with the cores its machine had (``trace.machines``) or, when the
    trace does not say, as many as threads ran its tasks (at least the widest task's), at the recording's
    speed (1); a link between every pair of workers at the bandwidth the recorded transfers achieved
    (bytes that crossed workers over the seconds their transfers took), with the trace's
    ``transfer_latency`` (0 if absent), and the per-task ``overhead`` the trace shows (:func:`overhead`)."""
    cores = host_cores(trace)
    hosts = {name: Host(name, tier, count, 1.0) for name, count in cores.items()}
    moved, seconds = trace.attrs.get("transfer_bytes", 0), trace.attrs.get("transfer_seconds", 0.0)
    bandwidth = moved / seconds if moved and seconds > 0 else DEFAULT_BANDWIDTH
    latency = float(trace.attrs.get("transfer_latency", 0.0))
    links = [Link((a, b), bandwidth, latency) for a, b in combinations(sorted(hosts), 2)]
    return Platform(hosts, links, overhead=overhead(trace, cores))


def host_cores(trace: Trace) -> dict[str, int]:
    """Each worker's cores: its machine's (``trace.machines``), or as many as threads ran its tasks, and at
    least its widest task's."""
    threads, widest = defaultdict(set), defaultdict(int)
    for t in trace.tasks:
        threads[t.host].add(t.thread)
        widest[t.host] = max(widest[t.host], math.ceil(t.cores))
    cores = {}
    for name, found in threads.items():
        machine = trace.machines.get(name)
        recorded = machine.cores if machine is not None and machine.cores else len(found)
        cores[name] = max(1, recorded, widest[name])
    return cores


def overhead(trace: Trace, cores: dict[str, int] | None = None) -> float:
    """The median gap between a task's ready time and its start in a trace with recorded start times (ready:
    when the last of its parents on its own host ended, so that no transfer is counted; tasks with a parent
    elsewhere are left out), less the wait for a core: on a host whose cores were all busy when the task was
    ready, the gap counts from the last end there before its start. What the workflow system spent per task;
    0 without such tasks, or when the start times were not recorded but derived. ``cores``: each host's, as
    :func:`host_cores` gives them (computed when not given)."""
    if trace.stated_makespan is not None:
        return 0.0
    tasks = {t.id: t for t in trace.tasks}
    cores = cores or host_cores(trace)
    on_host: dict[str, list] = defaultdict(list)
    for t in trace.tasks:
        on_host[t.host].append(t)
    starts = {host: _taken(ts, "start") for host, ts in on_host.items()}
    ends = {host: _taken(ts, "end") for host, ts in on_host.items()}
    gaps = []
    for t in trace.tasks:
        if not t.parents or any(tasks[p].host != t.host for p in t.parents):
            continue
        ready, host = max(tasks[p].end for p in t.parents), t.host
        (start_times, started), (end_times, ended) = starts[host], ends[host]
        busy = started[bisect_right(start_times, ready)] - ended[bisect_right(end_times, ready)]  # cores in use
        if t.start > ready and busy >= cores[host]:  # a core was free from the last end before its start
            ready = max(ready, end_times[bisect_right(end_times, t.start) - 1])
        gaps.append(t.start - ready)
    return max(float(np.median(gaps)), 0.0) if gaps else 0.0


def _taken(tasks, field: str) -> tuple[list[float], list[int]]:
    """The tasks' start (or end) times, sorted, and the cores taken (or given back) up to each: ``cores[k]``
    over the first ``k`` times."""
    pairs = sorted((getattr(t, field), max(1, math.ceil(t.cores))) for t in tasks)
    return [at for at, _ in pairs], [0, *np.cumsum([width for _, width in pairs]).tolist()]


def fidelity(trace: Trace, platform: Platform | None = None) -> xr.Dataset:
    """Replay ``trace`` with every task on the host that ran it, on ``platform`` (default: :func:`calibrate`),
    and compare: ``makespan_error`` (replayed / recorded - 1) and, per task, recorded and replayed start and
    end and their difference (``divergence``: where replay and reality part)."""
    platform = platform or calibrate(trace)
    result = replay(trace, platform, {t.id: t.host for t in trace.tasks})
    origin = min((t.start for t in trace.tasks), default=0.0)
    ids = [t.id for t in trace.tasks]
    data = xr.Dataset(
        {
            "recorded_start": ("task", [t.start - origin for t in trace.tasks]),
            "recorded_end": ("task", [t.end - origin for t in trace.tasks]),
            "replayed_start": ("task", [result.starts[i] for i in ids]),
            "replayed_end": ("task", [result.ends[i] for i in ids]),
            "component": ("task", [t.component for t in trace.tasks]),
            "host": ("task", [t.host for t in trace.tasks]),
        },
        coords={"task": ids},
        attrs={"run": trace.name},
    )
    data["divergence"] = data.replayed_end - data.recorded_end
    data["makespan_recorded"] = trace.makespan
    data["makespan_replayed"] = result.makespan
    data["makespan_error"] = result.makespan / trace.makespan - 1 if trace.makespan > 0 else np.nan
    for name in ("recorded_start", "recorded_end", "replayed_start", "replayed_end", "divergence"):
        data[name].attrs["units"] = "s"
    data["makespan_error"].attrs["units"] = "1"
    return data


def fidelity_table(traces, platforms=None) -> xr.Dataset:
    """:func:`fidelity` of several recorded ``traces`` (each on its own calibrated model unless
    ``platforms`` gives one per trace): dim ``run`` (the traces' names) with ``tasks``,
    ``makespan_recorded``, ``makespan_replayed`` and ``makespan_error``."""
    traces = list(traces)
    platforms = list(platforms) if platforms is not None else [None] * len(traces)
    if len(platforms) != len(traces):
        raise ValueError(f"platforms gives {len(platforms)} platforms for {len(traces)} traces")
    rows = [fidelity(trace, platform) for trace, platform in zip(traces, platforms, strict=True)]
    keys = ("makespan_recorded", "makespan_replayed", "makespan_error")
    data = xr.Dataset(
        {key: ("run", [float(row[key]) for row in rows]) for key in keys},
        coords={"run": [trace.name for trace in traces]},
    )
    data["tasks"] = ("run", [len(trace.tasks) for trace in traces])
    data["makespan_recorded"].attrs["units"] = data["makespan_replayed"].attrs["units"] = "s"
    data["makespan_error"].attrs["units"] = "1"
    return data
