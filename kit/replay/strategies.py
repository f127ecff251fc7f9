"""Placement strategies: which host runs each task of a trace on a platform.

Each strategy returns ``{task id: host}`` for :func:`kit.replay.replay`. Tier-based ones: ``all-cloud``,
``all-edge`` (every task on the fastest host of the tier), ``edge-ward`` (simulations at the edge, training
and validation in the cloud, inference at the edge); ``round-robin`` and ``random`` (seeded) spread tasks
over every host; ``heft`` (Topcuoglu et al. 2002: tasks by decreasing upward rank, each on the host giving
its earliest finish) and ``min-min`` (among ready tasks, the one with the least earliest completion first)
plan with the platform's speeds, cores, GPUs, per-task overhead and routes (each link and disk at its
bandwidth at time 0), ignoring contention (replay then charges it): a task waits for exactly the files it
reads (:class:`kit.replay.dataflow.Dataflow`, as the replay moves them: from their writer's host, workflow
inputs from the storage host) and for as many cores as it takes; a GPU task never goes to a host whose GPU
memory it exceeds.
"""

from __future__ import annotations

import heapq
import math

import numpy as np

from kit.replay.dataflow import Dataflow, is_end
from kit.replay.platform import Platform
from kit.replay.trace import Trace, topological


def place(trace: Trace, platform: Platform, strategy: str, *, seed: int = 0) -> dict[str, str]:
    """The placement ``strategy`` (one of :data:`STRATEGIES`) gives ``trace`` on ``platform``."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose one of {sorted(STRATEGIES)}")
    return STRATEGIES[strategy](trace, platform, seed)


def fastest(platform: Platform, tier: str) -> str:
    """The fastest host of ``tier`` (most cores on ties, then name); an error when the tier has none."""
    hosts = [h for h in platform.hosts.values() if h.tier == tier]
    if not hosts:
        tiers = sorted({h.tier for h in platform.hosts.values()})
        raise ValueError(f"the platform has no host in tier {tier!r}; its tiers are {tiers}")
    return min(hosts, key=lambda h: (-h.speed, -h.cores, h.name)).name


def _tier(tier: str):
    def strategy(trace, platform, seed):
        host = fastest(platform, tier)
        return {t.id: host for t in trace.tasks}

    return strategy


def _edge_ward(trace, platform, seed):
    edge, cloud = fastest(platform, "edge"), fastest(platform, "cloud")
    central = {"training", "validation"}
    return {t.id: cloud if t.component in central else edge for t in trace.tasks}


def _round_robin(trace, platform, seed):
    hosts = sorted(platform.hosts)
    return {t.id: hosts[i % len(hosts)] for i, t in enumerate(_topological(trace))}


def _random(trace, platform, seed):
    hosts = sorted(platform.hosts)
    picks = np.random.default_rng(seed).integers(len(hosts), size=len(trace.tasks))
    return {t.id: hosts[k] for t, k in zip(trace.tasks, picks, strict=True)}


def _transfer(platform: Platform, source: str, target: str, size: float) -> float:
    links = platform.route(source, target)
    if not links:
        return 0.0
    return sum(link.latency for link in links) + size / min(link.bandwidth for link in links)


def _heft(trace, platform, seed):
    hosts = list(platform.hosts.values())
    schedule = _Schedule(trace, platform)
    mean_compute = {t.id: np.mean([h.duration(t) for h in hosts]) for t in trace.tasks}
    pairs = [(a.name, b.name) for a in hosts for b in hosts if a.name != b.name]

    def mean_transfer(size):
        return np.mean([_transfer(platform, a, b, size) for a, b in pairs]) if pairs else 0.0

    ordered = topological(schedule.predecessors)  # writers of what a task reads before it
    rank: dict[str, float] = {}
    for task_id in reversed(ordered):
        tail = max((rank[c] + (0.0 if size is None else mean_transfer(size))
                    for c, size in schedule.successors[task_id].items()), default=0.0)  # fmt: skip
        rank[task_id] = mean_compute[task_id] + tail
    position = {task_id: k for k, task_id in enumerate(ordered)}  # on equal ranks, a parent comes first
    for task_id in sorted(ordered, key=lambda i: (-rank[i], position[i])):
        host = min(platform.hosts, key=lambda name: (schedule.finish(task_id, name), name))
        schedule.assign(task_id, host)
    return schedule.host


def _min_min(trace, platform, seed):
    schedule = _Schedule(trace, platform)
    waiting = {task_id: set(before) for task_id, before in schedule.predecessors.items()}
    ready = {task_id for task_id, before in waiting.items() if not before}
    while ready:
        _, task_id, host = min(
            (schedule.finish(task_id, host)[0], task_id, host) for task_id in ready for host in sorted(platform.hosts)
        )
        schedule.assign(task_id, host)
        ready.discard(task_id)
        for child in schedule.successors[task_id]:
            waiting[child].discard(task_id)
            if not waiting[child]:
                ready.add(child)
    return schedule.host


class _Schedule:
    """Earliest start and finish of tasks on hosts with their cores and GPUs, each file a task reads priced
    from where it is (without contention); ``successors[t]``: the tasks waiting for ``t``, with the bytes
    each reads from it (None when it waits for its end alone); ``predecessors[t]``: the tasks ``t`` waits
    for. A host where the task does not fit finishes it at infinity."""

    def __init__(self, trace, platform):
        self.tasks, self.platform = {t.id: t for t in trace.tasks}, platform
        self.dataflow = flow = Dataflow(trace, platform.storage)
        self.successors: dict[str, dict[str, float | None]] = {t.id: {} for t in trace.tasks}
        self.predecessors: dict[str, set[str]] = {t.id: set() for t in trace.tasks}
        for t in trace.tasks:
            for key in flow.needs[t.id]:
                producer = flow.producer.get(key)
                if producer is not None and producer != t.id:
                    read = self.successors[producer].setdefault(t.id, None)
                    if not is_end(key):
                        self.successors[producer][t.id] = (read or 0.0) + flow.size[key]
                    self.predecessors[t.id].add(producer)
        self.host: dict[str, str] = {}
        self.end: dict[str, float] = {}
        self.slots = {}  # when each core (False) or GPU (True) of a host frees up
        for name, h in platform.hosts.items():
            self.slots[name, False], self.slots[name, True] = [0.0] * h.cores, [0.0] * h.gpus

    def finish(self, task_id: str, host: str) -> tuple[float, float]:
        """(finish, start) of ``task_id`` on ``host`` after the tasks assigned so far."""
        task, h, flow, platform = self.tasks[task_id], self.platform.hosts[host], self.dataflow, self.platform
        if not h.fits(task):
            return np.inf, np.inf
        arrival = 0.0
        for key in flow.needs[task_id]:
            producer = flow.producer.get(key)
            if producer is None:  # a workflow input, on the storage host
                at = _transfer(platform, platform.storage, host, flow.size[key])
            elif is_end(key):
                at = self.end[producer]
            else:
                at = self.end[producer] + _transfer(platform, self.host[producer], host, flow.size[key])
            arrival = max(arrival, at)
        slots, width = self.slots[host, h.on_gpu(task)], self._width(task, h)
        free = min(slots) if width == 1 else heapq.nsmallest(width, slots)[-1]  # when enough of them are free
        start = max(arrival + platform.overhead, free)
        return start + h.duration(task), start

    def assign(self, task_id: str, host: str) -> None:
        finish, start = self.finish(task_id, host)
        task, h = self.tasks[task_id], self.platform.hosts[host]
        if finish == np.inf:
            raise ValueError(
                f"task {task_id!r} fits on no host: none has its {max(1, math.ceil(task.cores))} core(s) or, for a GPU "
                f"task, a GPU with its {task.memory:g} bytes of memory"
            )
        slots = self.slots[host, h.on_gpu(task)]
        for _ in range(self._width(task, h)):
            slots[slots.index(min(slots))] = finish
        self.host[task_id], self.end[task_id] = host, finish

    @staticmethod
    def _width(task, host) -> int:
        """The slots ``task`` takes on ``host``: one GPU, or its cores."""
        return 1 if host.on_gpu(task) else max(1, math.ceil(task.cores))


def _topological(trace: Trace):
    """Tasks in an order where every parent comes before its children (trace order among equals)."""
    tasks = {t.id: t for t in trace.tasks}
    return [tasks[i] for i in topological({t.id: set(t.parents) for t in trace.tasks})]


#: Strategies by name: ``f(trace, platform, seed) -> {task id: host}``.
STRATEGIES = {
    "all-cloud": _tier("cloud"),
    "all-edge": _tier("edge"),
    "edge-ward": _edge_ward,
    "round-robin": _round_robin,
    "random": _random,
    "heft": _heft,
    "min-min": _min_min,
}
