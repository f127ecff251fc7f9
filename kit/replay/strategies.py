"""Placement strategies: which host runs each task of a trace on a platform.

Each strategy returns ``{task id: host}`` for :func:`kit.replay.replay`. Tier-based ones: ``all-cloud``,
``all-edge`` (every task on the fastest host of the tier), ``edge-ward`` (simulations at the edge, training
and validation in the cloud, inference at the edge); ``round-robin`` and ``random`` (seeded) spread tasks
over every host; ``heft`` (Topcuoglu et al. 2002: tasks by decreasing upward rank, each on the host giving
its earliest finish) and ``min-min`` (among ready tasks, the one with the least earliest completion first)
plan with the platform's speeds, cores, GPUs and routes (each link at its bandwidth at time 0), ignoring
link contention (replay then charges it), and never put a GPU task on a host whose GPU memory it exceeds.
"""

from __future__ import annotations

import numpy as np

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
    tasks = {t.id: t for t in trace.tasks}
    hosts = list(platform.hosts.values())
    children = trace.children()
    mean_compute = {t.id: np.mean([h.duration(t) for h in hosts]) for t in trace.tasks}
    pairs = [(a.name, b.name) for a in hosts for b in hosts if a.name != b.name]

    def mean_transfer(size):
        return np.mean([_transfer(platform, a, b, size) for a, b in pairs]) if pairs else 0.0

    rank: dict[str, float] = {}
    for t in reversed(_topological(trace)):
        tail = max((mean_transfer(t.output_bytes) + rank[c] for c in children[t.id]), default=0.0)
        rank[t.id] = mean_compute[t.id] + tail
    order = sorted(trace.tasks, key=lambda t: (-rank[t.id], t.id))
    return _earliest_finish(order, tasks, platform)


def _min_min(trace, platform, seed):
    tasks = {t.id: t for t in trace.tasks}
    waiting = {t.id: set(t.parents) for t in trace.tasks}
    children = trace.children()
    schedule = _Schedule(tasks, platform)
    ready = {task_id for task_id, parents in waiting.items() if not parents}
    while ready:
        _, task_id, host = min(
            (schedule.finish(task_id, host)[0], task_id, host) for task_id in ready for host in sorted(platform.hosts)
        )
        schedule.assign(task_id, host)
        ready.discard(task_id)
        for child in children[task_id]:
            waiting[child].discard(task_id)
            if not waiting[child]:
                ready.add(child)
    return schedule.host


class _Schedule:
    """Earliest start and finish of tasks on hosts with their cores and GPUs, transfers priced without
    contention; a host where the task does not fit finishes it at infinity."""

    def __init__(self, tasks, platform):
        self.tasks, self.platform = tasks, platform
        self.host: dict[str, str] = {}
        self.end: dict[str, float] = {}
        self.slots = {}  # when each core (False) or GPU (True) of a host frees up
        for name, h in platform.hosts.items():
            self.slots[name, False], self.slots[name, True] = [0.0] * h.cores, [0.0] * h.gpus

    def finish(self, task_id: str, host: str) -> tuple[float, float]:
        """(finish, start) of ``task_id`` on ``host`` after the tasks assigned so far."""
        task, h = self.tasks[task_id], self.platform.hosts[host]
        if not h.fits(task):
            return np.inf, np.inf
        arrival = max(
            (
                self.end[p] + _transfer(self.platform, self.host[p], host, self.tasks[p].output_bytes)
                for p in task.parents
            ),
            default=0.0,
        )
        start = max(arrival, min(self.slots[host, h.on_gpu(task)]))
        return start + h.duration(task), start

    def assign(self, task_id: str, host: str) -> None:
        finish, start = self.finish(task_id, host)
        if finish == np.inf:
            raise ValueError(f"task {task_id!r} fits on no host: its GPU memory need exceeds every GPU's")
        slots = self.slots[host, self.platform.hosts[host].on_gpu(self.tasks[task_id])]
        slots[slots.index(min(slots))] = finish
        self.host[task_id], self.end[task_id] = host, finish


def _earliest_finish(order, tasks, platform) -> dict[str, str]:
    schedule = _Schedule(tasks, platform)
    for t in order:
        host = min(platform.hosts, key=lambda name: (schedule.finish(t.id, name), name))
        schedule.assign(t.id, host)
    return schedule.host


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
