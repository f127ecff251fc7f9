"""Replay a trace on a platform under a placement: a deterministic discrete-event engine.

Tasks start as soon as their inputs are on their host and one of its cores (or GPUs, for training and
inference on a host that has them) is free, ready tasks in the order they started in the trace, and run
``runtime / speed``. A parent's output goes once to each other host that needs it: the flow waits the
route's latency, then shares every link it crosses (and the disks it reads from and writes to) max-min fairly
with the flows in flight; on the same host data is free. Links may change bandwidth over time, hosts may
fail, and streams of requests or training steps run beside the trace (:mod:`kit.replay.engine`,
:mod:`kit.replay.streams`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from kit.replay.engine import Engine
from kit.replay.platform import Platform
from kit.replay.streams import expand, summary
from kit.replay.trace import Trace


@dataclass
class Replay:
    """The replayed run of ``trace`` (with its streams' tasks): ``makespan`` (s), per task ``host``,
    ``ready`` (inputs all on its host), ``start``, ``end`` and ``devices`` (cpu, gpu, or "" for a stream's
    request and response); ``failed``: attempts lost to host failures; ``events`` processed and the wall
    time it took (``events_per_second``); ``bytes_moved`` between hosts; ``waited_for``: per task, the task
    whose file (or end) arrived last before it was ready (absent when it waited for none, or only for
    workflow inputs)."""

    trace: Trace
    makespan: float
    hosts: dict[str, str]
    ready: dict[str, float]
    starts: dict[str, float]
    ends: dict[str, float]
    bytes_moved: float
    events: int
    seconds: float
    devices: dict[str, str] = field(default_factory=dict)
    failed: list[tuple[str, str, float, float, str]] = field(default_factory=list)
    stream_items: dict[str, list] = field(default_factory=dict)
    waited_for: dict[str, str] = field(default_factory=dict)

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else float("inf")

    @property
    def tasks(self):
        """Per task (dim ``task``): host, device, component, start, end, bytes in and out, as an
        ``xarray.Dataset``."""
        import xarray as xr

        trace = self.trace
        ids = [t.id for t in trace.tasks]
        return xr.Dataset(
            {
                "host": ("task", [self.hosts[i] for i in ids]),
                "device": ("task", [self.devices.get(i, "cpu") for i in ids]),
                "component": ("task", [t.component for t in trace.tasks]),
                "start": ("task", [self.starts[i] for i in ids], {"units": "s"}),
                "end": ("task", [self.ends[i] for i in ids], {"units": "s"}),
                "bytes_in": ("task", [t.input_bytes for t in trace.tasks], {"units": "bytes"}),
                "bytes_out": ("task", [t.output_bytes for t in trace.tasks], {"units": "bytes"}),
            },
            coords={"task": ids},
            attrs={"makespan": self.makespan},
        )

    @property
    def attempts(self):
        """Failed attempts (dim ``attempt``): task, host, start, end, reason (``host failed`` for a run cut
        by its host's failure, ``output lost`` for a finished run whose output died with its host)."""
        import xarray as xr

        columns = list(zip(*self.failed, strict=True)) if self.failed else [[]] * 5
        names, units = ("task", "host", "start", "end", "reason"), (None, None, "s", "s", None)
        return xr.Dataset(
            {n: ("attempt", list(c), {"units": u} if u else {}) for n, c, u in zip(names, columns, units, strict=True)}
        )

    @property
    def streams(self):
        """Per stream: items, throughput and latency (:func:`kit.replay.streams.summary`)."""
        return summary(self.stream_items, self.ends)


def replay(trace: Trace, platform: Platform, placement, *, seed: int = 0, failures=None, streams=()) -> Replay:
    """Replay ``trace`` on ``platform``; ``placement`` maps each task to a host: a strategy name of
    ``kit.replay.strategies`` (``seed`` for ``random``), a host name (every task), a mapping from task id or
    component to host, or a callable ``task -> host``.

    ``failures`` maps hosts to the time (s) they fail (:mod:`kit.replay.engine` says what then happens;
    ``result.attempts`` lists the runs lost); ``streams`` are :class:`kit.replay.streams.Stream` s replayed
    beside the trace (their items are placed like tasks of their component; ``result.streams`` gives
    throughput and latency). A task needing more cores than its host has, a GPU task whose ``memory`` exceeds
    its host's GPU memory, or a workflow that cannot finish, is an error naming the task.
    """
    clock = time.perf_counter()
    items, pinned, instant, release = {}, {}, set(), {}
    if streams:
        for stream in streams:
            if stream.source is not None and stream.source not in platform.hosts:
                hosts = sorted(platform.hosts)
                raise ValueError(f"stream {stream.name!r}: source {stream.source!r} is not a host; hosts are {hosts}")
        trace, items, pinned, instant, release = expand(trace, streams)
    place = placement_of(trace, platform, placement, seed, pinned)
    _check(trace, platform, place, failures or {})
    engine = Engine(trace, platform, place, release=release, instant=instant, failures=failures)
    engine.run()
    stuck = sorted(t for t in engine.tasks if t not in engine.ends)
    if stuck:
        raise RuntimeError(f"replay ended with task(s) never run: {stuck[:5]}")
    devices = {t: "" if pool is None else ("gpu" if pool[1] else "cpu") for t, pool in engine.pools.items()}
    producer = engine.dataflow.producer
    waited = {t: producer[key] for t, key in engine.last_input.items() if key in producer}
    return Replay(
        trace, max(engine.ends.values(), default=0.0), engine.place, engine.ready_at, engine.starts, engine.ends,
        engine.moved, engine.events, time.perf_counter() - clock, devices, engine.attempts, items, waited,
    )  # fmt: skip


def _check(trace: Trace, platform: Platform, place: dict[str, str], failures: dict) -> None:
    for host, at in failures.items():
        if host not in platform.hosts:
            raise ValueError(f"failures name {host!r}, not a host; hosts are {sorted(platform.hosts)}")
        if not at >= 0:
            raise ValueError(f"failures: host {host!r} fails at {at!r}, a time must be >= 0 s")
    for t in [t for t in trace.tasks if t.cores > 1]:
        host = platform.hosts[place[t.id]]
        if not host.on_gpu(t) and math.ceil(t.cores) > host.cores:
            raise ValueError(
                f"task {t.id!r} needs {math.ceil(t.cores)} cores, host {host.name!r} has {host.cores}: place it on a "
                "host with more cores"
            )
    limited = {name for name, host in platform.hosts.items() if host.gpus and host.gpu_memory < math.inf}
    for t in trace.tasks if limited else ():
        host = platform.hosts[place[t.id]]
        if not host.fits(t):
            raise ValueError(
                f"task {t.id!r} needs {t.memory} bytes of GPU memory, host {host.name!r} has {host.gpu_memory:g} "
                "per GPU: place it on a host with more GPU memory or without GPUs"
            )


def placement_of(trace: Trace, platform: Platform, placement, seed: int = 0, pinned=None) -> dict[str, str]:
    """The host of each task under ``placement`` (as :func:`replay` takes it); ``pinned`` tasks keep theirs."""
    pinned = pinned or {}
    from kit.replay.strategies import STRATEGIES, place

    if isinstance(placement, str) and placement not in platform.hosts and placement in STRATEGIES:
        chosen = place(trace, platform, placement, seed=seed)
    elif isinstance(placement, str):
        if placement not in platform.hosts:
            raise ValueError(
                f"placement {placement!r} is neither a host ({sorted(platform.hosts)}) nor a strategy "
                f"({sorted(STRATEGIES)})"
            )
        chosen = {t.id: placement for t in trace.tasks}
    elif callable(placement):
        chosen = {t.id: placement(t) for t in trace.tasks}
    elif isinstance(placement, dict):
        chosen = {}
        for t in trace.tasks:
            if t.id in pinned:
                chosen[t.id] = pinned[t.id]
            elif t.id in placement:
                chosen[t.id] = placement[t.id]
            elif t.component in placement:
                chosen[t.id] = placement[t.component]
            else:
                raise ValueError(f"placement names no host for task {t.id!r} (component {t.component!r})")
    else:
        raise TypeError(f"placement must be a host name, a mapping or a callable, got {placement!r}")
    chosen.update(pinned)
    for task_id, host in chosen.items():
        if host not in platform.hosts:
            raise ValueError(
                f"placement puts task {task_id!r} on {host!r}, not a host; hosts are {sorted(platform.hosts)}"
            )
    return chosen
