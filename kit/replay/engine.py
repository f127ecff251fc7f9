"""The discrete-event loop behind :func:`kit.replay.replay`: one heap of plain-tuple events, no process per task.

Data moves as files (:class:`kit.replay.dataflow.Dataflow`): a task that lists the files it writes produces
them, any other task produces one output of ``output_bytes``; a task that lists the files it reads needs
exactly those (and waits for the end of any parent that gives it none), any other task needs everything its
parents produced.
Workflow inputs (files no task writes) start on the platform's storage host, or everywhere without one.

A task is ready once each file it needs is on its host (and its release time, if any, has come); after the
platform's per-task ``overhead`` (submission and scheduling) it waits for its cores (``Task.cores``, rounded
up) or a GPU (:meth:`Host.on_gpu`): the ready tasks of a host in trace order, each started as soon as its
cores are free (a wide task does not hold back narrower ones behind it). When a task ends, each file it wrote
goes once to each other host where a task still needs it (workflow inputs go at time 0): the transfer waits
the route's latency, then shares every link it crosses, and the disks it reads from and writes to, max-min
fairly with the flows in flight (:mod:`kit.replay.sharing`, recomputed whenever the flows or a link's
bandwidth change); on one host data is free, and a file on a host serves every task there.

A failed host stops at once (before any task ending at that very time) and loses what it held: its running
tasks become failed attempts; its unfinished tasks move to the fallback host (:meth:`Engine.fallback`) and
gather their inputs there again, re-sent from the hosts that produced them; transfers from or to it are
dropped; a finished task whose files lived only there (a file is sent from the host that produced it) and
are still needed runs again (an ``output lost`` attempt). Links keep forwarding through a failed host. Each
task carries an epoch, bumped when it moves, so that events meant for its old placement are ignored.
"""

from __future__ import annotations

import heapq
import math
from collections import defaultdict, deque

from kit.replay.dataflow import Dataflow, is_end
from kit.replay.platform import GPU_COMPONENTS, Platform
from kit.replay.sharing import Flow, Group, max_min_rates

END, TRANSMIT, RELEASE, QUEUE, FAIL, BANDWIDTH = range(6)
#: ``missing[task]`` once all its inputs are on its host (one shared object: no set per task stays alive).
COMPLETE = frozenset()
#: ``at[file, host]`` once the file is on the host.
PRESENT = object()


class _Fetch:
    """A file on its way to a host: where from, and the ``(task, epoch)`` s waiting for it there."""

    __slots__ = ("source", "waiters")

    def __init__(self, source, waiters):
        self.source, self.waiters = source, waiters


class Engine:
    """The state of one replay; :meth:`run` fills ``starts``, ``ends``, ``ready_at``, ``pools``, ``attempts``
    and ``last_input`` (the dependency whose arrival made each task ready)."""

    def __init__(self, trace, platform: Platform, place, *, release=None, instant=(), failures=None):
        self.tasks = {t.id: t for t in trace.tasks}
        self.platform, self.place = platform, place
        self.dataflow = Dataflow(trace, platform.storage)
        self.order = {t.id: (t.start, t.id) for t in trace.tasks}  # ready tasks start in trace order
        self.release, self.instant, self.overhead = release or {}, frozenset(instant), platform.overhead
        # Keys not yet on the task's host: absent while none arrived (all missing), a set once some did,
        # COMPLETE when all did.
        self.missing: dict[str, set | frozenset] = {}
        self.at: dict = {}  # (key, host) -> PRESENT or the _Fetch bringing it
        self.epoch = dict.fromkeys(self.tasks, 0)
        self.free, self.speed = {}, {}
        self.has_gpu = {name: host.gpus > 0 for name, host in platform.hosts.items()}
        for name, host in platform.hosts.items():
            self.free[name, False], self.speed[name, False] = host.cores, host.speed
            self.free[name, True], self.speed[name, True] = host.gpus, host.gpu_speed
        self.cores = {name: (name, False) for name in platform.hosts}  # pool keys, made once
        self.gpus = {name: (name, True) for name in platform.hosts}
        self.width = {t.id: math.ceil(t.cores) for t in trace.tasks if t.cores > 1}  # cores beyond one
        self.queues: dict = defaultdict(list)
        self.bandwidth = {link.name: link.bandwidth for link in [*platform.links, *platform.disks]}
        self.starts, self.ends, self.ready_at, self.pools, self.last_input = {}, {}, {}, {}, {}
        self.attempts: list[tuple[str, str, float, float, str]] = []
        self.dead: set[str] = set()
        self.failures = dict(failures or {})
        self.heap: list = []
        self.sequence = 0
        self.flows: dict[int, Flow] = {}
        self.groups: dict[tuple, Group] = {}  # flows in flight by the links they cross
        self.flow_ids = 0
        self.dirty = False  # the flows or a bandwidth changed since the rates were shared
        self.touched: set = set()  # pools with a new ready task or a freed slot in this event
        self.routes: dict = {}  # (source, target) -> (link names, latency)
        self.users: dict = defaultdict(list)  # link -> groups crossing it
        self.load: dict = defaultdict(int)  # link -> flows crossing it
        self.moved, self.events, self.now = 0.0, 0, 0.0

    def push(self, at, kind, payload):
        self.sequence += 1
        heapq.heappush(self.heap, (at, self.sequence, kind, payload))

    def run(self) -> None:
        for link in self.platform.links:
            for at, bandwidth in link.changes:
                self.push(at, BANDWIDTH, (link.name, bandwidth))
        storage = self.platform.storage
        for key in {key for keys in self.dataflow.inputs.values() for key in keys}:
            self.at[key, storage] = PRESENT
        for task_id in self.tasks:
            if not self.dataflow.needs[task_id]:
                self.missing[task_id] = COMPLETE
                self.ready(task_id)
            for key in self.dataflow.inputs.get(task_id, ()):
                self.fetch(key, storage, self.place[task_id], task_id)
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
                self.deliver(done.key, done.target, done.fetch)
            elif kind == TRANSMIT:
                self.transmit(*payload)
            elif kind in (RELEASE, QUEUE):
                task_id, epoch = payload
                if epoch == epochs[task_id]:
                    self.ready(task_id) if kind == RELEASE else self.enqueue(task_id)
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
        """Inputs all on the host: wait for the release time, then the platform's overhead, then a slot."""
        if self.release and self.release.get(task_id, 0.0) > self.now:
            self.push(self.release[task_id], RELEASE, (task_id, self.epoch[task_id]))
            return
        self.ready_at[task_id] = self.now
        if self.overhead and task_id not in self.instant:
            self.push(self.now + self.overhead, QUEUE, (task_id, self.epoch[task_id]))
            return
        self.enqueue(task_id)

    def enqueue(self, task_id) -> None:
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
        """Start the ready tasks of ``pool`` in trace order while slots are free; with wide tasks about, each
        that fits (one that does not waits, the next ones may start)."""
        if self.width and not pool[1]:
            self.start_wide(pool)
            return
        queue, free, now, heap = self.queues[pool], self.free, self.now, self.heap
        while free[pool] > 0 and queue:  # self.launch, inline
            _, task_id = heapq.heappop(queue)
            free[pool] -= 1
            self.starts[task_id], self.pools[task_id] = now, pool
            self.sequence += 1
            at = now + self.tasks[task_id].runtime / self.speed[pool]
            heapq.heappush(heap, (at, self.sequence, END, (task_id, self.epoch[task_id])))

    def start_wide(self, pool) -> None:
        queue, free, now, width = self.queues[pool], self.free, self.now, self.width
        skipped = []
        while free[pool] > 0 and queue:
            item = heapq.heappop(queue)
            slots = width.get(item[1], 1)
            if slots > free[pool]:
                skipped.append(item)
                continue
            free[pool] -= slots
            self.launch(item[1], pool, now)
        for item in skipped:
            heapq.heappush(queue, item)

    def launch(self, task_id, pool, now) -> None:
        self.starts[task_id], self.pools[task_id] = now, pool
        self.sequence += 1
        at = now + self.tasks[task_id].runtime / self.speed[pool]
        heapq.heappush(self.heap, (at, self.sequence, END, (task_id, self.epoch[task_id])))

    def end(self, task_id) -> None:
        """``task_id`` ends: its slots free, its files go where tasks still need them."""
        self.ends[task_id] = self.now
        pool = self.pools[task_id]
        if pool is not None:
            self.free[pool] += 1 if pool[1] or not self.width else self.width.get(task_id, 1)
            self.touched.add(pool)
        host, place, missing, readers = self.place[task_id], self.place, self.missing, self.dataflow.readers
        for key in self.dataflow.produces[task_id]:
            targets = None
            for child in readers.get(key, ()):
                needs = missing.get(child)
                if needs is None or key in needs:  # self.waits(child, key), inline
                    target = place[child]
                    if target == host:  # same host: free and at once
                        self.arrive(child, key)
                    else:
                        targets = targets or {}
                        targets.setdefault(target, []).append(child)
            if targets:
                for target, children in targets.items():
                    self.fetch(key, host, target, *children)
        if self.dataflow.after and task_id in self.dataflow.after:
            for child in self.dataflow.after[task_id]:
                self.arrive(child, ("task", task_id))

    def fetch(self, key, source, target, *children) -> None:
        """``children`` on ``target`` need ``key``, held on ``source``: it moves once per host."""
        state = PRESENT if source == target else self.at.get((key, target))
        if state is PRESENT:
            for child in children:
                self.arrive(child, key)
            return
        waiters = [(child, self.epoch[child]) for child in children]
        if state is not None:
            state.waiters += waiters
            return
        state = self.at[key, target] = _Fetch(source, waiters)
        if (source, target) not in self.routes:
            links = self.platform.route(source, target)
            self.routes[source, target] = (tuple(link.name for link in links), sum(link.latency for link in links))
        links, latency = self.routes[source, target]
        size = self.dataflow.size[key]
        self.moved += size
        self.push(self.now + latency, TRANSMIT, (key, source, target, links, size, state))

    def transmit(self, key, source, target, links, size, fetch) -> None:
        if self.at.get((key, target)) is not fetch:
            return  # lost with a failed host: the failure moved the children or re-runs the producer
        if size <= 0:
            self.deliver(key, target, fetch)
            return
        group = self.groups.get(links)
        if group is None:
            group = self.groups[links] = Group(links, self.now)
            for name in links:
                self.users[name].append(group)
        group.advance(self.now)
        group.count += 1
        load = self.load
        for name in links:
            load[name] += 1
        self.flow_ids += 1
        self.flows[self.flow_ids] = Flow(group, key, source, target, fetch)
        heapq.heappush(group.targets, (group.served + size, self.flow_ids))
        self.dirty = True

    def leave(self, flow) -> None:
        """``flow`` is no longer in flight: its group shrinks (and goes once empty)."""
        group, load = flow.group, self.load
        group.count -= 1
        for name in group.links:
            load[name] -= 1
        if not group.count:
            del self.groups[group.links]
            for name in group.links:
                self.users[name].remove(group)
        self.dirty = True

    def deliver(self, key, target, fetch) -> None:
        if self.at.get((key, target)) is not fetch:
            return
        self.at[key, target] = PRESENT
        epochs = self.epoch
        for child, epoch in fetch.waiters:
            if epoch == epochs[child]:
                self.arrive(child, key)

    def arrive(self, child, key) -> None:
        """``key`` (a file, or a parent's end) is there for ``child``."""
        needs = self.missing.get(child)
        if needs is None:
            needed = self.dataflow.needs[child]
            if len(needed) > 1:
                needs = self.missing[child] = set(needed)
            else:  # its one input: ready at once
                needs = set()
        elif key not in needs:
            return
        needs.discard(key)
        if not needs:
            self.missing[child] = COMPLETE
            self.last_input[child] = key
            self.ready(child)

    def share(self) -> tuple[float, int]:
        """Max-min fair rates for the flows in flight; the time the first of them ends, and which."""
        now, groups = self.now, self.groups.values()
        for group in groups:  # each group's bytes so far, at the rates until now
            group.served += group.rate * (now - group.since)
            group.since = now
        max_min_rates(self.users, self.load, self.bandwidth)
        best, finishing = math.inf, None
        for group in groups:
            target, flow = group.targets[0]
            left = (target - group.served) / group.rate
            if left < best:
                best, finishing = left, flow
        return now + max(best, 0.0), finishing

    def fail(self, host) -> None:
        """``host`` stops: attempts there fail, its tasks move, files held only there are re-produced."""
        now = self.now
        self.dead.add(host)
        for gpu in (False, True):
            self.free[host, gpu] = 0
            self.queues[host, gpu].clear()
        dropped = {key for key, flow in self.flows.items() if host in (flow.source, flow.target)}
        for group in {self.flows[key].group for key in dropped}:  # the targets left are of flows in flight
            group.targets = [target for target in group.targets if target[1] not in dropped]
            heapq.heapify(group.targets)
        for key in dropped:
            self.leave(self.flows.pop(key))
        gone = [entry for entry, state in self.at.items() if entry[1] == host or getattr(state, "source", None) == host]
        for entry in gone:
            del self.at[entry]
        if host == self.platform.storage:
            waiting = [t for t, keys in self.dataflow.inputs.items() if any(self.waits(t, key) for key in keys)]
            if waiting:
                raise RuntimeError(
                    f"storage host {host!r} failed while task(s) {waiting[:5]} still needed workflow inputs from it"
                )
        moving = []
        for task_id, placed in self.place.items():
            if placed != host or task_id in self.ends:
                continue
            if task_id in self.starts:
                self.attempts.append((task_id, host, self.starts.pop(task_id), now, "host failed"))
            moving.append(task_id)
        lost = [t for t, placed in self.place.items() if placed == host and t in self.ends]
        self.relocate(moving)
        needed = [t for t in lost if t in self.ends and self.still_needed(t)]
        self.relocate([self.forget(t) for t in needed])

    def still_needed(self, task_id) -> bool:
        """Whether a task that has not ended waits for a file ``task_id`` wrote."""
        readers, ends = self.dataflow.readers, self.ends
        return any(
            child not in ends and self.waits(child, key)
            for key in self.dataflow.produces[task_id]
            for child in readers.get(key, ())
        )

    def waits(self, child, key) -> bool:
        """Whether ``child`` still waits for ``key``."""
        waiting = self.missing.get(child)
        return waiting is None or key in waiting

    def forget(self, task_id) -> str:
        """Drop the finished run of ``task_id`` whose output was lost (kept as an attempt)."""
        host = self.place[task_id]
        self.attempts.append((task_id, host, self.starts.pop(task_id), self.ends.pop(task_id), "output lost"))
        return task_id

    def relocate(self, task_ids) -> None:
        """Move unfinished tasks to their fallback hosts and gather their inputs there again."""
        pending = deque(task_ids)
        dataflow, at, ends, storage = self.dataflow, self.at, self.ends, self.platform.storage
        while pending:
            task_id = pending.popleft()
            host = self.place[task_id] = self.fallback(task_id)
            self.epoch[task_id] += 1
            self.ready_at.pop(task_id, None)
            self.last_input.pop(task_id, None)
            missing, requests = set(), []
            for key in dataflow.needs[task_id]:
                producer = dataflow.producer.get(key)
                if producer is not None and producer not in ends:
                    missing.add(key)  # sent when its producer ends
                elif is_end(key) or at.get((key, host)) is PRESENT or self.place.get(producer) == host:
                    continue  # a parent's end, or a file already on the host
                elif producer is None:  # a workflow input
                    if storage in self.dead:
                        raise RuntimeError(
                            f"storage host {storage!r} failed: task {task_id!r}, moved to {host!r}, cannot read "
                            f"workflow input {key[1]!r} again"
                        )
                    missing.add(key)
                    requests.append((key, storage))
                elif self.place[producer] not in self.dead:
                    missing.add(key)
                    requests.append((key, self.place[producer]))
                else:  # finished on a failed host: run it again
                    missing.add(key)
                    pending.append(self.forget(producer))
            self.missing[task_id] = missing or COMPLETE
            if not missing:
                self.ready(task_id)
            for key, source in requests:
                self.fetch(key, source, host, task_id)

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
