"""An independent reference for the kit's replay engine: the same platform and workflow DAG, simulated by SimGrid 3.32.

Run it with the system Python that holds SimGrid's bindings (never imported by the kit)::

    /usr/bin/python3 kit/replay/simgrid_dag.py input.json output.json

The input describes hosts, links, routes, files and placed tasks; the output gives the makespan, the start and end
of every task and the wall time of the simulation. One controller actor owns the policy (each host's queue by
``order``, greedy on free cores; outputs pushed once per other host where a reader is placed); each task runs as a
SimGrid execution and each transfer as a host-to-host communication, in helper actors that report to the
controller when they are done. SimGrid is set to plain max-min sharing (CM02, no factors, no cross-traffic).
A route's latency is slept by the sender before its bytes flow, so that SimGrid shares links equally
rather than by round-trip time, as CM02 does when links carry their latency.
"""

import bisect
import json
import sys
import time
from collections import defaultdict

import simgrid

CONFIG = (
    "--cfg=network/model:CM02",  # max-min sharing, latency and bandwidth factors 1, weight-S 0
    "--cfg=network/crosstraffic:0",  # no 5 % reverse flow on the return route
    "--log=root.thresh:warning",
)


class Replay:
    """The controller's state: what each host holds, what each task waits for, the queues and the free cores."""

    def __init__(self, spec, hosts, latency):
        self.hosts, self.latency, self.sizes = hosts, latency, spec["files"]
        self.tasks = {task["id"]: task for task in spec["tasks"]}
        self.free = {name: host["cores"] for name, host in spec["hosts"].items()}
        self.queues = {name: [] for name in spec["hosts"]}
        self.children = defaultdict(list)
        self.readers = defaultdict(lambda: defaultdict(list))  # file -> host -> tasks there that read it
        self.waiting = {}  # task -> parents not ended + files not yet on its host
        self.starts, self.ends, self.done = {}, {}, []
        self.signal = simgrid.Semaphore(0)
        for task_id, task in self.tasks.items():
            for parent in set(task["parents"]):
                self.children[parent].append(task_id)
            for name in set(task["reads"]):
                self.readers[name][task["host"]].append(task_id)
            self.waiting[task_id] = len(set(task["parents"])) + len(set(task["reads"]))
            if not self.waiting[task_id]:
                self.enqueue(task_id)

    def run(self, storage, inputs):
        """The controller actor: place the inputs, then handle completions until every task has ended."""
        touched = set(self.queues)
        for name in inputs:
            for host in self.readers[name]:
                if storage is None or host == storage:
                    self.arrive(name, host, touched)
                else:
                    self.send(name, storage, host)
        self.start_ready(touched)
        while len(self.ends) < len(self.tasks):
            self.signal.acquire()
            batch, self.done = self.done, []
            touched = set()
            for kind, *payload in batch:
                if kind == "end":
                    self.end(*payload, touched)
                else:
                    self.arrive(*payload, touched)
            self.start_ready(touched)

    def report(self, kind, *payload):
        """Called by a helper actor: its activity is done; wake the controller."""
        self.done.append((kind, *payload))
        self.signal.release()

    def end(self, task_id, touched):
        """``task_id`` ended: free its cores, hand its files to the readers, release its children."""
        task, now = self.tasks[task_id], simgrid.Engine.clock
        self.ends[task_id] = now
        self.free[task["host"]] += task["cores"]
        touched.add(task["host"])
        for name in set(task["writes"]):
            for host in self.readers[name]:
                if host == task["host"]:
                    self.arrive(name, host, touched)
                else:
                    self.send(name, task["host"], host)
        for child in self.children[task_id]:
            self.satisfy(child, touched)

    def arrive(self, name, host, touched):
        """File ``name`` is now on ``host``."""
        for task_id in self.readers[name][host]:
            self.satisfy(task_id, touched)

    def satisfy(self, task_id, touched):
        """One more input or parent of ``task_id`` is there; queue it once none is missing."""
        self.waiting[task_id] -= 1
        if not self.waiting[task_id]:
            touched.add(self.enqueue(task_id))

    def enqueue(self, task_id):
        """Put a ready task in its host's queue, kept by ``order``; returns the host."""
        host = self.tasks[task_id]["host"]
        bisect.insort(self.queues[host], task_id, key=lambda queued: self.tasks[queued]["order"])
        return host

    def start_ready(self, touched):
        """Each touched host starts, in ``order``, every queued task whose cores fit in its free cores."""
        for host in sorted(touched):
            left = []
            for task_id in self.queues[host]:
                if self.free[host] >= self.tasks[task_id]["cores"]:
                    self.start(task_id)
                else:
                    left.append(task_id)
            self.queues[host] = left

    def start(self, task_id):
        """Run ``task_id`` on its host: ``runtime`` flops at ``speed`` flop/s."""
        task = self.tasks[task_id]
        self.free[task["host"]] -= task["cores"]
        self.starts[task_id] = simgrid.Engine.clock
        simgrid.Actor.create(task_id, self.hosts[task["host"]], self.execute, task_id, task["runtime"])

    def execute(self, task_id, flops):
        """Helper actor: compute, then report the end."""
        simgrid.this_actor.execute(flops)
        self.report("end", task_id)

    def send(self, name, source, target):
        """Start moving file ``name`` from ``source`` to ``target``."""
        simgrid.Actor.create(f"{name}:{target}", self.hosts[source], self.transfer, name, source, target)

    def transfer(self, name, source, target):
        """Helper actor: wait the route's latency, push the bytes through the links, then report the arrival."""
        if self.latency[source, target] > 0:
            simgrid.this_actor.sleep_for(self.latency[source, target])
        size = round(self.sizes[name])
        if size > 0:
            simgrid.Comm.sendto(self.hosts[source], self.hosts[target], size)
        self.report("arrive", name, target)


def build_platform(spec):
    """One full-routing zone: hosts with their speed and cores, links without latency (see the module docstring),
    one route per listed ordered pair. Returns the hosts by name and each route's total latency."""
    zone = simgrid.NetZone.create_full_zone("platform")
    hosts = {}
    for name, host in spec["hosts"].items():
        hosts[name] = zone.create_host(name, float(host["speed"]))
        hosts[name].core_count = host["cores"]
        hosts[name].seal()
    links = {link["name"]: zone.create_link(link["name"], float(link["bandwidth"])).seal() for link in spec["links"]}
    delays = {link["name"]: link["latency"] for link in spec["links"]}
    latency = {}
    for source, target, names in spec["routes"]:
        route = [simgrid.LinkInRoute(links[name]) for name in names]
        zone.add_route(hosts[source].netpoint, hosts[target].netpoint, None, None, route, False)
        latency[source, target] = sum(delays[name] for name in names)
    zone.seal()
    return hosts, latency


def check(spec):
    """Refuse what would stall the replay (a task wider than its host, an unknown file, a file written twice);
    returns the workflow inputs, the files no task writes."""
    written = set()
    for task in spec["tasks"]:
        if task["cores"] > spec["hosts"][task["host"]]["cores"]:
            raise ValueError(f"task {task['id']} needs {task['cores']} cores, more than its host {task['host']} has")
        unknown = set(task["reads"]).union(task["writes"]).difference(spec["files"])
        if unknown:
            raise ValueError(f"task {task['id']} uses file(s) {sorted(unknown)} missing from files")
        for name in set(task["writes"]):
            if name in written:
                raise ValueError(f"file {name} is written by more than one task")
            written.add(name)
    return [name for name in spec["files"] if name not in written]


def simulate(spec):
    """Replay ``spec`` in SimGrid; the output as a dict."""
    inputs = check(spec)
    began = time.perf_counter()
    engine = simgrid.Engine([sys.argv[0], *CONFIG])
    hosts, latency = build_platform(spec)
    replay = Replay(spec, hosts, latency)
    controller_host = hosts[min(hosts)]
    simgrid.Actor.create("controller", controller_host, replay.run, spec["storage"], inputs)
    engine.run()
    wall = time.perf_counter() - began
    return {
        "makespan": max(replay.ends.values(), default=0.0),
        "starts": replay.starts,
        "ends": replay.ends,
        "wall_seconds": wall,
        "simgrid": str(simgrid.simgrid_version),
    }


def main(argv):
    """``simgrid_dag.py input.json output.json``."""
    if len(argv) != 3:
        sys.exit(f"usage: {argv[0]} input.json output.json")
    with open(argv[1]) as handle:
        spec = json.load(handle)
    with open(argv[2], "w") as handle:
        json.dump(simulate(spec), handle, indent=1)


if __name__ == "__main__":
    main(sys.argv)
