"""Explain a replayed (or recorded) run: the critical path and where its time goes.

The critical path is the chain of tasks that ends at the last task, each made ready by the arrival of its
last input (the file, or the end of a parent, that came last: not necessarily the parent that ended last).
Along it the end-to-end time splits into compute (the tasks' own runtimes), transfer (from that parent's end
to the moment its data arrived, when it crossed hosts) and waiting (the per-task overhead, then a free core).
"""

from __future__ import annotations

import xarray as xr

from kit.replay.simulate import Replay

__all__ = ["critical_path", "latency_split"]


def critical_path(result: Replay) -> list[str]:
    """Task ids from the first to the last task of the critical path of a replay."""
    trace = result.trace
    if not trace.tasks:
        return []
    tasks = {t.id: t for t in trace.tasks}
    current = max(tasks, key=lambda i: (result.ends[i], i))
    path = [current]
    while current in result.waited_for:
        current = result.waited_for[current]
        path.append(current)
    return path[::-1]


def latency_split(result: Replay) -> xr.Dataset:
    """Along the critical path, per task: ``transfer_time`` (from its critical parent's end until all its
    inputs were on its host), ``waiting_time`` (ready, not started: the platform's per-task overhead, then
    no free core) and ``compute_time`` (its runtime on
    its host), in seconds; over the path they sum to the makespan."""
    path = critical_path(result)
    compute, transfer, waiting = [], [], []
    previous_end = 0.0
    for task_id in path:
        start, end, ready = result.starts[task_id], result.ends[task_id], result.ready[task_id]
        transfer.append(ready - previous_end)
        waiting.append(start - ready)
        compute.append(end - start)
        previous_end = end
    data = xr.Dataset(
        {
            "compute_time": ("task", compute, {"units": "s"}),
            "transfer_time": ("task", transfer, {"units": "s"}),
            "waiting_time": ("task", waiting, {"units": "s"}),
            "host": ("task", [result.hosts[i] for i in path]),
        },
        coords={"task": path},
    )
    data.attrs["makespan"] = result.makespan
    return data
