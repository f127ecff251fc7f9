"""Replay a trace on a platform under a placement: a deterministic discrete-event engine.

Tasks start as soon as their inputs are on their host and one of its cores is free (ready tasks in the
order they started in the trace) and run ``runtime / speed``. A parent's output goes once to each other host
that needs it: the flow waits the route's latency, then shares every link it crosses max-min fairly with
the flows in flight (progressive filling); on the same host data is free. Events sit in one heap; flow
completions are computed from the current rates whenever the set of flows changes.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from kit.replay.platform import Platform
from kit.replay.trace import Trace


@dataclass
class Replay:
    """The replayed run of ``trace``: ``makespan`` (s), per task ``host``, ``ready`` (inputs all on its host),
    ``start``, ``end``; ``events``
    processed and the wall time it took (``events_per_second``); ``bytes_moved`` between hosts."""

    trace: Trace
    makespan: float
    hosts: dict[str, str]
    ready: dict[str, float]
    starts: dict[str, float]
    ends: dict[str, float]
    bytes_moved: float
    events: int
    seconds: float

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else float("inf")

    @property
    def tasks(self):
        """Per task (dim ``task``): host, component, start, end, bytes in and out, as an ``xarray.Dataset``."""
        import xarray as xr

        trace = self.trace
        ids = [t.id for t in trace.tasks]
        return xr.Dataset(
            {
                "host": ("task", [self.hosts[i] for i in ids]),
                "component": ("task", [t.component for t in trace.tasks]),
                "start": ("task", [self.starts[i] for i in ids], {"units": "s"}),
                "end": ("task", [self.ends[i] for i in ids], {"units": "s"}),
                "bytes_in": ("task", [t.input_bytes for t in trace.tasks], {"units": "bytes"}),
                "bytes_out": ("task", [t.output_bytes for t in trace.tasks], {"units": "bytes"}),
            },
            coords={"task": ids},
            attrs={"makespan": self.makespan},
        )


def replay(trace: Trace, platform: Platform, placement, *, seed: int = 0) -> Replay:
    """Replay ``trace`` on ``platform``; ``placement`` maps each task to a host: a strategy name of
    ``kit.replay.strategies`` (``seed`` for ``random``), a host name (every task), a mapping from task id or
    component to host, or a callable ``task -> host``."""
    clock = time.perf_counter()
    place = _placement(trace, platform, placement, seed)
    tasks = {t.id: t for t in trace.tasks}
    order = {t.id: (t.start, t.id) for t in trace.tasks}  # ready tasks start in trace order
    children = trace.children()
    waiting = {t.id: len(set(t.parents)) for t in trace.tasks}
    free = {name: host.cores for name, host in platform.hosts.items()}
    ready: dict[str, list] = defaultdict(list)
    starts, ends, ready_at = {}, {}, {}
    heap: list = []  # (time, sequence, kind, payload)
    sequence = 0
    flows: dict[int, dict] = {}  # transmitting flows: remaining bytes, links, rate, children waiting
    flow_ids = itertools.count()
    moved, events, now = 0.0, 0, 0.0

    def push(at, kind, payload):
        nonlocal sequence
        sequence += 1
        heapq.heappush(heap, (at, sequence, kind, payload))

    touched: set[str] = set()  # hosts with a new ready task or a freed core in this event

    def arrive(task_id):
        waiting[task_id] -= 1
        if waiting[task_id] == 0:
            ready_at[task_id] = now
            heapq.heappush(ready[place[task_id]], (order[task_id], task_id))
            touched.add(place[task_id])

    def start_ready(host):
        while free[host] > 0 and ready[host]:
            _, task_id = heapq.heappop(ready[host])
            free[host] -= 1
            starts[task_id] = now
            push(now + tasks[task_id].runtime / platform.hosts[host].speed, "end", task_id)

    for task_id, count in waiting.items():
        if count == 0:
            ready_at[task_id] = 0.0
            heapq.heappush(ready[place[task_id]], (order[task_id], task_id))
    for host in list(ready):
        start_ready(host)

    while heap or flows:
        if flows:
            _share(flows)
        finishing = min(flows, key=lambda f: flows[f]["remaining"] / flows[f]["rate"], default=None)
        flow_time = now + flows[finishing]["remaining"] / flows[finishing]["rate"] if finishing is not None else np.inf
        if heap and heap[0][0] <= flow_time:
            at, _, kind, payload = heapq.heappop(heap)
        else:
            at, kind, payload = flow_time, "flow", finishing
        for flow in flows.values():
            flow["remaining"] -= flow["rate"] * (at - now)
        now, events = at, events + 1
        if kind == "end":
            host = place[payload]
            ends[payload] = now
            free[host] += 1
            destinations = defaultdict(list)
            for child in children[payload]:
                destinations[place[child]].append(child)
            for destination, waiting_children in destinations.items():
                links = platform.route(host, destination)
                if not links:
                    for child in waiting_children:
                        arrive(child)
                    continue
                size = float(tasks[payload].output_bytes)
                moved += size
                latency = sum(link.latency for link in links)
                push(now + latency, "transmit", (links, size, waiting_children))
            touched.add(host)
        elif kind == "transmit":
            links, size, waiting_children = payload
            if size <= 0:
                for child in waiting_children:
                    arrive(child)
            else:
                flows[next(flow_ids)] = {"remaining": size, "links": links, "children": waiting_children}
        else:  # a flow delivered its data
            done = flows.pop(payload)
            for child in done["children"]:
                arrive(child)
        for host in sorted(touched):
            start_ready(host)
        touched.clear()
    stuck = sorted(t for t in tasks if t not in ends)
    if stuck:
        raise RuntimeError(f"replay ended with task(s) never run: {stuck[:5]} (a parent missing from the trace?)")
    makespan = max(ends.values(), default=0.0)
    return Replay(trace, makespan, place, ready_at, starts, ends, moved, events, time.perf_counter() - clock)


def _share(flows: dict) -> None:
    """Max-min fair rates by progressive filling: the most shared link fixes the rate of its flows first."""
    unfixed = set(flows)
    capacity = {}
    for key in flows:
        for link in flows[key]["links"]:
            capacity[link.name] = link.bandwidth
    while unfixed:
        counts = defaultdict(int)
        for key in unfixed:
            for link in flows[key]["links"]:
                counts[link.name] += 1
        share, bottleneck = min((capacity[name] / n, name) for name, n in counts.items())
        for key in [k for k in unfixed if any(link.name == bottleneck for link in flows[k]["links"])]:
            flows[key]["rate"] = share
            for link in flows[key]["links"]:
                capacity[link.name] -= share
            unfixed.discard(key)


def _placement(trace: Trace, platform: Platform, placement, seed: int) -> dict[str, str]:
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
            if t.id in placement:
                chosen[t.id] = placement[t.id]
            elif t.component in placement:
                chosen[t.id] = placement[t.component]
            else:
                raise ValueError(f"placement names no host for task {t.id!r} (component {t.component!r})")
    else:
        raise TypeError(f"placement must be a host name, a mapping or a callable, got {placement!r}")
    for task_id, host in chosen.items():
        if host not in platform.hosts:
            raise ValueError(
                f"placement puts task {task_id!r} on {host!r}, not a host; hosts are {sorted(platform.hosts)}"
            )
    return chosen
