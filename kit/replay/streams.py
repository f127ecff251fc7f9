"""Streaming and periodic work replayed beside a trace: requests arriving at a rate, steps consuming outputs.

A :class:`Stream` becomes tasks of the replayed trace, so its items share cores, GPUs and links with the
rest of the workflow, and survive host failures like any task. Request ``k`` of a request stream
(``rate``) arrives at ``start + k / rate`` on host ``source``, which sends ``bytes_in`` to the host running
it (task ``<name>:<k>``; ``<name>:<k>:request`` and ``<name>:<k>:response`` mark the two ends on
``source``, taking no slot and no time); its latency runs to the response's arrival back at ``source``.
Step ``k`` of a consumer stream (``consumes``) runs once the ``k``-th batch of outputs of the trace's tasks
of that component (in trace order, ``batch`` at a time, the last batch possibly shorter) and step ``k-1``
(steps are sequential, like training steps; ``bytes_out`` is the state passed on) are on its host; its
latency runs from the end of the batch's last task to the step's end.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from kit.replay.trace import COMPONENTS, Task, Trace


@dataclass(frozen=True)
class Stream:
    """Work arriving over time: ``rate`` (items/s) with ``count`` or ``duration`` (s) and a ``source``
    host, or ``consumes`` (a component) in batches of ``batch``. Each item takes ``work`` seconds on the
    recording device, reads ``bytes_in``, writes ``bytes_out`` and needs ``memory`` bytes."""

    name: str
    work: float
    component: str = "inference"
    rate: float | None = None
    count: int | None = None
    duration: float | None = None
    start: float = 0.0
    source: str | None = None
    consumes: str | None = None
    batch: int = 1
    bytes_in: int = 0
    bytes_out: int = 0
    memory: int = 0

    def __post_init__(self):
        where = f"stream {self.name!r}"
        if self.component not in COMPONENTS:
            raise ValueError(f"{where}: component {self.component!r} is not one of {list(COMPONENTS)}")
        if not self.work >= 0:
            raise ValueError(f"{where}: work must be >= 0 s, got {self.work!r}")
        if (self.rate is None) == (self.consumes is None):
            raise ValueError(f"{where}: give either rate (requests) or consumes (a component), not both or neither")
        if self.rate is not None:
            if not self.rate > 0:
                raise ValueError(f"{where}: rate must be > 0 items/s, got {self.rate!r}")
            if (self.count is None) == (self.duration is None):
                raise ValueError(f"{where}: give either count or duration with a rate")
            if self.source is None:
                raise ValueError(f"{where}: a request stream needs a source host")
            if self.items() < 1:
                raise ValueError(f"{where}: sends no request (count, or duration * rate, must be >= 1)")
        elif self.consumes not in COMPONENTS:
            raise ValueError(f"{where}: consumes {self.consumes!r} is not one of {list(COMPONENTS)}")
        if isinstance(self.batch, bool) or not isinstance(self.batch, int) or self.batch < 1:
            raise ValueError(f"{where}: batch must be an int >= 1, got {self.batch!r}")

    def items(self) -> int:
        """How many requests the stream sends (request streams)."""
        return self.count if self.count is not None else math.ceil(self.duration * self.rate - 1e-9)


def expand(trace: Trace, streams) -> tuple[Trace, dict, dict[str, str], set[str], dict[str, float]]:
    """``trace`` with the tasks of ``streams``; per stream its items, ``(arrival, completing task id)`` where
    the arrival is a time or the ids of the tasks whose last end it is; the tasks pinned to a host, the
    instant ones, and release times."""
    tasks, items, pinned, instant, release = list(trace.tasks), {}, {}, set(), {}
    names = [stream.name for stream in streams]
    if len(set(names)) < len(names):
        raise ValueError(f"stream names must be unique, got {names}")
    for stream in streams:
        arrivals = items[stream.name] = []
        if stream.rate is not None:
            for k in range(stream.items()):
                arrival = stream.start + k / stream.rate
                request, work, response = (
                    f"{stream.name}:{k}:request",
                    f"{stream.name}:{k}",
                    f"{stream.name}:{k}:response",
                )
                source = stream.source
                tasks += [
                    Task(request, "request", arrival, arrival, source, output_bytes=stream.bytes_in),
                    _item(stream, work, arrival, (request,), stream.bytes_in),
                    Task(response, "response", arrival, arrival, source, (work,), input_bytes=stream.bytes_out),
                ]
                arrivals.append((arrival, response))
                pinned[request] = pinned[response] = stream.source
                instant.update((request, response))
                release[request] = arrival
        else:
            previous = ()
            for k, batch in enumerate(_batches(trace, stream)):
                work = f"{stream.name}:{k}"
                parents = (*(t.id for t in batch), *previous)
                size = sum(t.output_bytes for t in batch) + (stream.bytes_out if previous else 0)
                tasks.append(_item(stream, work, max(t.end for t in batch), parents, size))
                arrivals.append(([t.id for t in batch], work))
                previous = (work,)
    expanded = replace(trace, tasks=tasks, attrs=dict(trace.attrs), stated_makespan=None)  # its files and machines
    return expanded, items, pinned, instant, release


def summary(items: dict, ends: dict[str, float]):
    """Per stream (dim ``stream``): items ``completed``, ``throughput`` (items over the seconds from the first
    arrival to the last completion) and latency (arrival to completion: mean, p50, p99, max), as an
    ``xarray.Dataset``."""
    import xarray as xr

    units = {
        "completed": "1",
        "throughput": "1/s",
        **dict.fromkeys(["latency_mean", "latency_p50", "latency_p99", "latency_max"], "s"),
    }
    columns: dict[str, list] = {name: [] for name in units}
    for entries in items.values():
        arrivals = [max(ends[i] for i in at) if isinstance(at, list) else at for at, _ in entries]
        done = [ends[task_id] for _, task_id in entries]
        latency = np.subtract(done, arrivals)
        span = max(done) - min(arrivals)
        columns["completed"].append(len(done))
        columns["throughput"].append(len(done) / span if span > 0 else np.inf)
        columns["latency_mean"].append(np.mean(latency))
        for name, q in (("latency_p50", 50), ("latency_p99", 99), ("latency_max", 100)):
            columns[name].append(np.percentile(latency, q))
    return xr.Dataset(
        {name: ("stream", column, {"units": units[name]}) for name, column in columns.items()},
        coords={"stream": list(items)},
    )


def _item(stream: Stream, task_id: str, at: float, parents, bytes_in: int) -> Task:
    return Task(
        task_id, stream.name, at, at + stream.work, stream.source or "stream", tuple(parents), stream.component,
        input_bytes=bytes_in, output_bytes=stream.bytes_out, memory=stream.memory,
    )  # fmt: skip


def _batches(trace: Trace, stream: Stream) -> list[list[Task]]:
    producers = [t for t in trace.tasks if t.component == stream.consumes]
    if not producers:
        raise ValueError(f"stream {stream.name!r} consumes {stream.consumes!r}, but the trace has no such task")
    return [producers[i : i + stream.batch] for i in range(0, len(producers), stream.batch)]
