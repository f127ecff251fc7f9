"""The discrete-event loop behind :func:`kit.replay.replay`: one heap of plain-tuple events, no process per task.

A task is ready once the output of each parent is on its host (and its release time, if any, has come);
it then waits for a slot of its pool, the cores or the GPUs of its host (:meth:`Host.on_gpu`). When it ends,
its output goes once to each other host where a child still needs it: the transfer waits the route's
latency, then shares every link it crosses max-min fairly with the flows in flight (progressive filling,
recomputed whenever the flows or a link's bandwidth change); on one host data is free.

A failed host stops at once (before any task ending at that very time) and loses what it held: its running
tasks become failed attempts; its unfinished tasks move to the fallback host (:meth:`Engine.fallback`) and
gather their inputs there again, re-sent from the hosts that produced them; transfers from or to it are
dropped; a finished task whose output lived only there (a task's output lives on the host that produced
it) and is still needed runs again (an ``output lost`` attempt). Links keep forwarding through a failed
host. Each task carries an epoch, bumped when it moves, so that events meant for its old placement are
ignored.
"""

from __future__ import annotations

import heapq
import math
from collections import defaultdict, deque

from kit.replay.platform import GPU_COMPONENTS, Platform

END, TRANSMIT, RELEASE, FAIL, BANDWIDTH = range(5)
#: ``missing[task]`` once all its inputs are on its host (one shared object: no set per task stays alive).
COMPLETE = frozenset()


class _Flow:
    __slots__ = ("group", "parent", "source", "target", "children")

    def __init__(self, group, parent, source, target, children):
        self.group, self.parent, self.source, self.target, self.children = group, parent, source, target, children


class _Group:
    """The flows crossing the same links: max-min fairness gives them one rate, so they are served together.
    ``served`` counts the bytes each has received since the group formed; a flow ends when it reaches the
    target it joined with (a heap of targets: the next to end is on top)."""

    __slots__ = ("links", "served", "since", "rate", "count", "targets")

    def __init__(self, links, now):
        self.links, self.served, self.since, self.rate, self.count, self.targets = links, 0.0, now, 0.0, 0, []

    def advance(self, now) -> None:
        self.served += self.rate * (now - self.since)
        self.since = now


class Engine:
    """The state of one replay; :meth:`run` fills ``starts``, ``ends``, ``ready_at``, ``pools``, ``attempts``."""

    def __init__(self, trace, platform: Platform, place, *, release=None, instant=(), failures=None):
        self.tasks = {t.id: t for t in trace.tasks}
        self.platform, self.place = platform, place
        self.order = {t.id: (t.start, t.id) for t in trace.tasks}  # ready tasks start in trace order
        self.children = trace.children()
        self.release, self.instant = release or {}, frozenset(instant)
        # Parents whose output is not yet on the task's host: absent while none arrived (all missing), a set
        # once some did, COMPLETE when all did.
        self.missing: dict[str, set | frozenset] = {}
        self.epoch = dict.fromkeys(self.tasks, 0)
        self.free, self.speed = {}, {}
        self.has_gpu = {name: host.gpus > 0 for name, host in platform.hosts.items()}
        for name, host in platform.hosts.items():
            self.free[name, False], self.speed[name, False] = host.cores, host.speed
            self.free[name, True], self.speed[name, True] = host.gpus, host.gpu_speed
        self.cores = {name: (name, False) for name in platform.hosts}  # pool keys, made once
        self.gpus = {name: (name, True) for name in platform.hosts}
        self.queues: dict = defaultdict(list)
        self.bandwidth = {link.name: link.bandwidth for link in platform.links}
        self.starts, self.ends, self.ready_at, self.pools = {}, {}, {}, {}
        self.attempts: list[tuple[str, str, float, float, str]] = []
        self.dead: set[str] = set()
        self.failures = dict(failures or {})
        self.heap: list = []
        self.sequence = 0
        self.flows: dict[int, _Flow] = {}
        self.groups: dict[tuple, _Group] = {}  # flows in flight by the links they cross
        self.flow_ids = 0
        self.dirty = False  # the flows or a bandwidth changed since the rates were shared
        self.touched: set = set()  # pools with a new ready task or a freed slot in this event
        self.routes: dict = {}  # (source, target) -> (link names, latency)
        self.moved, self.events, self.now = 0.0, 0, 0.0

    def push(self, at, kind, payload):
        self.sequence += 1
        heapq.heappush(self.heap, (at, self.sequence, kind, payload))

    def run(self) -> None:
        for link in self.platform.links:
            for at, bandwidth in link.changes:
                self.push(at, BANDWIDTH, (link.name, bandwidth))
        for task_id, task in self.tasks.items():
            if not task.parents:
                self.missing[task_id] = COMPLETE
                self.ready(task_id)
        for host, at in sorted(self.failures.items(), key=lambda item: (item[1], item[0])):
            if at > 0:
                self.push(at, FAIL, host)
            else:  # down from the start: its tasks move before anything runs
                self.fail(host)
        self.start_touched()
        self.loop()

    def loop(self) -> None:
        heap, flows, ends, epochs, total = self.heap, self.flows, self.ends, self.epoch, len(self.tasks)
        heappop, touched = heapq.heappop, self.touched
        flow_time, finishing = math.inf, None
        while (heap or flows) and len(ends) < total:
            if self.dirty:
                self.dirty = False
                flow_time, finishing = self.share() if flows else (math.inf, None)
            if heap and heap[0][0] <= flow_time:
                at, _, kind, payload = heappop(heap)
            else:
                at, kind, payload = flow_time, None, finishing
            self.now = at
            self.events += 1
            if kind == END:
                task_id, epoch = payload
                if epoch == epochs[task_id]:  # else the attempt failed with its host
                    self.end(task_id)
            elif kind is None:  # a flow delivered its data
                done = flows.pop(payload)
                heapq.heappop(done.group.targets)
                self.leave(done)
                self.deliver(done.parent, done.children)
            elif kind == TRANSMIT:
                self.transmit(*payload)
            elif kind == RELEASE:
                task_id, epoch = payload
                if epoch == epochs[task_id]:
                    self.enqueue(task_id)
            elif kind == FAIL:
                self.fail(payload)
            else:
                name, bandwidth = payload
                self.bandwidth[name] = bandwidth
                self.dirty = True
            if touched:
                self.start_touched()

    def start_touched(self) -> None:
        touched = self.touched
        if len(touched) == 1:
            self.start(touched.pop())
            return
        for pool in sorted(touched):
            self.start(pool)
        touched.clear()

    def ready(self, task_id) -> None:
        """Inputs all on the host: wait for the release time, then for a slot."""
        if self.release and self.release.get(task_id, 0.0) > self.now:
            self.push(self.release[task_id], RELEASE, (task_id, self.epoch[task_id]))
            return
        self.enqueue(task_id)

    def enqueue(self, task_id) -> None:
        self.ready_at[task_id] = self.now
        if self.instant and task_id in self.instant:  # a stream's request or response: no slot, no time
            self.starts[task_id], self.pools[task_id] = self.now, None
            self.push(self.now, END, (task_id, self.epoch[task_id]))
            return
        host = self.place[task_id]
        if self.has_gpu[host] and self.tasks[task_id].component in GPU_COMPONENTS:
            pool = self.gpus[host]
        else:
            pool = self.cores[host]
        heapq.heappush(self.queues[pool], (self.order[task_id], task_id))
        self.touched.add(pool)

    def start(self, pool) -> None:
        queue, free, now = self.queues[pool], self.free, self.now
        while free[pool] > 0 and queue:
            _, task_id = heapq.heappop(queue)
            free[pool] -= 1
            self.starts[task_id], self.pools[task_id] = now, pool
            self.sequence += 1
            at = now + self.tasks[task_id].runtime / self.speed[pool]
            heapq.heappush(self.heap, (at, self.sequence, END, (task_id, self.epoch[task_id])))

    def end(self, task_id) -> None:
        """``task_id`` ends: its slot frees, its output goes where children still need it."""
        self.ends[task_id] = self.now
        pool = self.pools[task_id]
        if pool is not None:
            self.free[pool] += 1
            self.touched.add(pool)
        host, place, missing = self.place[task_id], self.place, self.missing
        targets = None
        for child in self.children[task_id]:
            needs = missing.get(child)
            if needs is None or task_id in needs:  # self.needs(child, task_id), inline
                target = place[child]
                if target == host:  # same host: free and at once
                    self.arrive(child, task_id)
                else:
                    targets = targets or {}
                    targets.setdefault(target, []).append(child)
        if targets:
            for target, children in targets.items():
                self.send(task_id, host, target, children)

    def send(self, parent, source, target, children) -> None:
        """The output of ``parent`` from ``source`` to another host, ``target``, where ``children`` need it."""
        if (source, target) not in self.routes:
            links = self.platform.route(source, target)
            self.routes[source, target] = (tuple(link.name for link in links), sum(link.latency for link in links))
        links, latency = self.routes[source, target]
        size = float(self.tasks[parent].output_bytes)
        self.moved += size
        tagged = [(child, self.epoch[child]) for child in children]
        self.push(self.now + latency, TRANSMIT, (parent, source, target, links, size, tagged))

    def transmit(self, parent, source, target, links, size, children) -> None:
        if source in self.dead or target in self.dead:
            return  # lost with its host: the failure moved the children or re-runs the parent
        if size <= 0:
            self.deliver(parent, children)
            return
        group = self.groups.get(links)
        if group is None:
            group = self.groups[links] = _Group(links, self.now)
        group.advance(self.now)
        group.count += 1
        self.flow_ids += 1
        self.flows[self.flow_ids] = _Flow(group, parent, source, target, children)
        heapq.heappush(group.targets, (group.served + size, self.flow_ids))
        self.dirty = True

    def leave(self, flow) -> None:
        """``flow`` is no longer in flight: its group shrinks (and goes once empty)."""
        group = flow.group
        group.count -= 1
        if not group.count:
            del self.groups[group.links]
        self.dirty = True

    def deliver(self, parent, children) -> None:
        epochs = self.epoch
        for child, epoch in children:
            if epoch == epochs[child]:
                self.arrive(child, parent)

    def arrive(self, child, parent) -> None:
        """The output of ``parent`` is on the host of ``child``."""
        needs = self.missing.get(child)
        if needs is None:
            needs = self.missing[child] = set(self.tasks[child].parents)
        elif parent not in needs:
            return
        needs.discard(parent)
        if not needs:
            self.missing[child] = COMPLETE
            self.ready(child)

    def share(self) -> tuple[float, int]:
        """Max-min fair rates for the flows in flight; the time the first of them ends, and which."""
        now, flows = self.now, self.flows
        for group in self.groups.values():
            group.advance(now)
        _share(self.groups, self.bandwidth)
        best, finishing = math.inf, None
        for group in self.groups.values():
            targets = group.targets
            while targets[0][1] not in flows:  # a flow dropped with a failed host
                heapq.heappop(targets)
            left = max(targets[0][0] - group.served, 0.0) / group.rate
            if left < best:
                best, finishing = left, targets[0][1]
        return now + best, finishing

    def fail(self, host) -> None:
        """``host`` stops: attempts there fail, its tasks move, outputs held only there are re-produced."""
        now = self.now
        self.dead.add(host)
        for gpu in (False, True):
            self.free[host, gpu] = 0
            self.queues[host, gpu].clear()
        for key in [key for key, flow in self.flows.items() if host in (flow.source, flow.target)]:
            self.leave(self.flows.pop(key))
        moving = []
        for task_id, placed in self.place.items():
            if placed != host or task_id in self.ends:
                continue
            if task_id in self.starts:
                self.attempts.append((task_id, host, self.starts.pop(task_id), now, "host failed"))
            moving.append(task_id)
        lost = [t for t, placed in self.place.items() if placed == host and t in self.ends]
        self.relocate(moving)
        needed = [t for t in lost if t in self.ends and any(self.needs(c, t) for c in self.children[t])]
        self.relocate([self.forget(t) for t in needed])

    def needs(self, child, parent) -> bool:
        """Whether ``child`` still waits for the output of ``parent``."""
        waiting = self.missing.get(child)
        return waiting is None or parent in waiting

    def forget(self, task_id) -> str:
        """Drop the finished run of ``task_id`` whose output was lost (kept as an attempt)."""
        host = self.place[task_id]
        self.attempts.append((task_id, host, self.starts.pop(task_id), self.ends.pop(task_id), "output lost"))
        return task_id

    def relocate(self, task_ids) -> None:
        """Move unfinished tasks to their fallback hosts and gather their inputs there again."""
        pending = deque(task_ids)
        while pending:
            task_id = pending.popleft()
            host = self.place[task_id] = self.fallback(task_id)
            self.epoch[task_id] += 1
            self.ready_at.pop(task_id, None)
            missing = self.missing[task_id] = set()
            for parent in dict.fromkeys(self.tasks[task_id].parents):
                held = self.place[parent]
                if parent in self.ends and held not in self.dead:
                    if held != host:
                        missing.add(parent)
                        self.send(parent, held, host, [task_id])
                    continue
                missing.add(parent)
                if parent in self.ends:  # finished on a failed host: run it again
                    pending.append(self.forget(parent))
            if not missing:
                self.missing[task_id] = COMPLETE
                self.ready(task_id)

    def fallback(self, task_id) -> str:
        """Where a task of a failed host runs: an alive host of the same tier if any, else any alive host,
        whichever runs it soonest (the host's speed, or its GPUs'), then by name; GPU memory must fit."""
        task, platform = self.tasks[task_id], self.platform
        tier = platform.hosts[self.place[task_id]].tier
        alive = [h for name, h in platform.hosts.items() if name not in self.dead and h.fits(task)]
        if not alive:
            stuck = sorted(t for t in self.tasks if t not in self.ends)
            raise RuntimeError(
                f"host(s) {sorted(self.dead)} failed and no host is left to run task {task_id!r}; "
                f"task(s) that could not run: {stuck[:10]}{' ...' if len(stuck) > 10 else ''}"
            )
        return min(alive, key=lambda h: (h.tier != tier, h.duration(task), h.name)).name


def _share(groups: dict, bandwidth: dict) -> None:
    """Max-min fair rates by progressive filling over groups of flows with one route: the most shared link
    fixes the rate of its flows first."""
    users: dict = defaultdict(list)
    for group in groups.values():
        for name in group.links:
            users[name].append(group)
    capacity = {name: bandwidth[name] for name in users}
    counts = {name: sum(group.count for group in members) for name, members in users.items()}
    fixed: set = set()
    while len(fixed) < len(groups):
        share, bottleneck = min((capacity[name] / n, name) for name, n in counts.items() if n)
        for group in users[bottleneck]:
            if group.links in fixed:
                continue
            fixed.add(group.links)
            group.rate = share
            for name in group.links:
                capacity[name] -= share * group.count
                counts[name] -= group.count
