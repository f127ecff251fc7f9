"""Models of infrastructures to replay traces on: hosts in tiers, links with bandwidth and latency, routes.

A platform is described in YAML::

    hosts:
      laptop: {tier: edge, cores: 4, speed: 1.0}
      cloud: {tier: cloud, cores: 32, speed: 2.5, gpus: {count: 2, speed: 4.0, memory: 8.0e10}}
    links:
      - {ends: [laptop, cloud], bandwidth: [[0, 1.25e7], [60, 2.5e6]], latency: 0.02}

``speed`` is relative to the host that recorded the trace (a task takes ``runtime / speed``); ``bandwidth``
is in bytes/s, either one number or a piecewise-constant profile ``[[time, bytes/s], ...]`` starting at time
0; ``latency`` is in seconds. A route between two hosts is the path of least total latency over the links
(fewest links on ties); two tasks on the same host exchange data for free. ``storage: <host>`` (optional)
names the host that holds the workflow's input files; without it they are on every host. ``overhead: <s>``
(optional, 0 by default) delays every task between its inputs arriving and its joining its host's queue: the
submission and scheduling time a workflow system spends per task.

A host's ``disk`` (optional: ``read`` and ``write`` in bytes/s, each unlimited when absent) bounds the files it
sends and receives: a transfer reads from its source's disk and writes to its target's, and the transfers
using one disk share its read (or write) bandwidth max-min fairly, as flows share a link (:class:`Disk`).
A task's reads and writes on its own host are in its recorded runtime and cost nothing more.

GPUs (optional: ``count``, ``speed`` relative to the device that ran the task in the recording, ``memory``
in bytes per GPU) run the tasks of :data:`GPU_COMPONENTS`: such a task takes a GPU instead of a core and
``runtime / gpu_speed``. On a host without GPUs it runs on a core at the host's ``speed``.
"""

from __future__ import annotations

import heapq
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

#: Tiers a host can belong to.
TIERS = ("edge", "fog", "cloud", "hpc")
#: Platforms shipped with the kit (``kit/replay/platforms/<name>.yaml``).
EXAMPLES = ("laptop", "continuum", "hpc-cloud")
#: Components whose tasks run on a GPU when their host has one.
GPU_COMPONENTS = ("training", "inference")


def example(name: str) -> Platform:
    """A platform shipped with the kit: ``laptop``, ``continuum`` (edge, fog, cloud) or ``hpc-cloud``."""
    if name not in EXAMPLES:
        raise ValueError(f"unknown example platform {name!r}; choose one of {list(EXAMPLES)}")
    return Platform.from_yaml(Path(__file__).with_name("platforms") / f"{name}.yaml")


@dataclass(frozen=True)
class Host:
    """A host: ``cores`` at ``speed``, ``gpus`` GPUs at ``gpu_speed`` with ``gpu_memory`` bytes each, and a disk
    that files leave at ``disk_read`` and arrive at ``disk_write`` bytes/s."""

    name: str
    tier: str
    cores: int
    speed: float = 1.0
    gpus: int = 0
    gpu_speed: float = 1.0
    gpu_memory: float = math.inf
    disk_read: float = math.inf
    disk_write: float = math.inf

    def on_gpu(self, task) -> bool:
        """Whether ``task`` runs on one of this host's GPUs (its component is a GPU one and the host has GPUs)."""
        return self.gpus > 0 and task.component in GPU_COMPONENTS

    def fits(self, task) -> bool:
        """Whether ``task`` can run here: its ``memory`` fits in one GPU, or its ``cores`` in the host's."""
        return task.memory <= self.gpu_memory if self.on_gpu(task) else math.ceil(task.cores) <= self.cores

    def duration(self, task) -> float:
        """Seconds ``task`` takes here: its runtime over the GPU speed or the host's speed."""
        return task.runtime / (self.gpu_speed if self.on_gpu(task) else self.speed)


@dataclass(frozen=True)
class Link:
    """A link between two hosts; ``bandwidth`` (bytes/s) holds from time 0 until the first of ``changes``,
    ``(time, bytes/s)`` pairs in increasing time."""

    ends: tuple[str, str]
    bandwidth: float
    latency: float = 0.0
    changes: tuple[tuple[float, float], ...] = ()

    @property
    def name(self) -> str:
        return f"{self.ends[0]}--{self.ends[1]}"


@dataclass(frozen=True)
class Disk:
    """One direction of a host's disk as transfers see it (``mode`` ``read``: files sent from the host;
    ``write``: files sent to it): a link of ``bandwidth`` bytes/s without latency, at the end of a route."""

    host: str
    mode: str
    bandwidth: float
    latency: ClassVar[float] = 0.0

    @property
    def name(self) -> str:
        return f"{self.host}:disk-{self.mode}"


@dataclass
class Platform:
    """Hosts and links, checked on construction (errors name the host, the link and the field); ``storage``
    names the host that holds the workflow's input files (none: they are on every host); ``overhead`` is the
    seconds each task waits, once ready, before it joins its host's queue."""

    hosts: dict[str, Host]
    links: list[Link] = field(default_factory=list)
    storage: str | None = None
    overhead: float = 0.0

    def __post_init__(self):
        for host in self.hosts.values():
            _check_host(host)
        for i, link in enumerate(self.links):
            _check_link(i, link, self.hosts)
        if self.storage is not None and self.storage not in self.hosts:
            raise ValueError(f"storage {self.storage!r} is not a host; hosts are {sorted(self.hosts)}")
        if not self.overhead >= 0:
            raise ValueError(f"overhead must be >= 0 s, got {self.overhead!r}")
        self._routes: dict[tuple[str, str], list[Link | Disk]] = {}
        self._disks = {
            (host.name, mode): Disk(host.name, mode, bandwidth)
            for host in self.hosts.values()
            for mode, bandwidth in (("read", host.disk_read), ("write", host.disk_write))
            if bandwidth < math.inf
        }

    @property
    def disks(self) -> list[Disk]:
        """The disks with a bandwidth (a host's read and write directions apart)."""
        return list(self._disks.values())

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> Platform:
        """Read a platform file; an error names the file, the line, the entry and the field."""
        import yaml

        path = Path(path)
        try:
            text = path.read_text()
            content, lines = yaml.safe_load(text), _lines(yaml.compose(text))
        except (OSError, yaml.YAMLError) as exc:
            raise ValueError(f"{path}: not a readable YAML platform: {exc}") from exc
        return cls.from_dict(content, source=str(path), lines=lines)

    @classmethod
    def from_dict(cls, content, *, source: str = "platform", lines: dict | None = None) -> Platform:
        """A platform from the content of a platform file; ``lines`` (entry -> line) locate errors."""
        lines = lines or {}
        if not isinstance(content, dict) or not isinstance(content.get("hosts"), dict) or not content["hosts"]:
            raise ValueError(f"{source}: needs a 'hosts' mapping of host name -> {{tier, cores, speed}}")
        hosts = {}
        for name, entry in content["hosts"].items():
            at = f"{source}{lines.get(('hosts', name), '')}"
            where = f"{at}: host {name!r}"
            if not isinstance(entry, dict):
                raise ValueError(f"{where}: expected a mapping {{tier, cores, speed}}, got {entry!r}")
            unknown = sorted(set(entry) - {"tier", "cores", "speed", "gpus", "disk"})
            if unknown:
                raise ValueError(f"{where}: unknown field(s) {unknown}; fields are tier, cores, speed, gpus, disk")
            for key in ("tier", "cores"):
                if key not in entry:
                    raise ValueError(f"{where}: missing field {key!r}")
            gpus = _gpus(entry.get("gpus", {"count": 0}), f"{where}: gpus")
            speed = _number(entry.get("speed", 1.0), f"{where}: speed")
            disk = _disk(entry.get("disk", {}), f"{where}: disk")
            hosts[str(name)] = host = Host(str(name), entry["tier"], entry["cores"], speed, **gpus, **disk)
            _located(_check_host, at, host)
        links = []
        for i, entry in enumerate(content.get("links") or []):
            at = f"{source}{lines.get(('links', i), '')}"
            where = f"{at}: link {i}"
            if not isinstance(entry, dict):
                raise ValueError(f"{where}: expected a mapping {{ends, bandwidth, latency}}, got {entry!r}")
            for key in ("ends", "bandwidth"):
                if key not in entry:
                    raise ValueError(f"{where}: missing field {key!r}")
            ends = entry["ends"]
            if not isinstance(ends, list | tuple) or len(ends) != 2:
                raise ValueError(f"{where}: 'ends' must name two hosts, got {ends!r}")
            bandwidth, *changes = _profile(entry["bandwidth"], f"{where}: bandwidth")
            latency = _number(entry.get("latency", 0.0), f"{where}: latency")
            links.append(link := Link((str(ends[0]), str(ends[1])), bandwidth, latency, tuple(changes)))
            _located(_check_link, at, i, link, hosts)
        storage = content.get("storage")
        if storage is not None and str(storage) not in hosts:
            raise ValueError(f"{source}: storage {storage!r} is not a host; hosts are {sorted(hosts)}")
        overhead = _number(content.get("overhead", 0.0), f"{source}: overhead")
        if not overhead >= 0:
            raise ValueError(f"{source}: overhead must be >= 0 s, got {overhead!r}")
        return cls(hosts, links, None if storage is None else str(storage), overhead)

    def route(self, source: str, target: str) -> list[Link | Disk]:
        """What a transfer from ``source`` to ``target`` crosses: the links (least total latency, then fewest
        links), between the source's disk read and the target's disk write where they have a bandwidth; [] on
        one host."""
        if source == target:
            return []
        key = (source, target)
        if key not in self._routes:
            read, write = self._disks.get((source, "read")), self._disks.get((target, "write"))
            links = self._shortest(source, target)
            self._routes[key] = [*([read] if read else []), *links, *([write] if write else [])]
        return self._routes[key]

    def _shortest(self, source: str, target: str) -> list[Link]:
        for host in (source, target):
            if host not in self.hosts:
                raise ValueError(f"host {host!r} is not in the platform; hosts are {sorted(self.hosts)}")
        neighbours: dict[str, list[tuple[str, Link]]] = {name: [] for name in self.hosts}
        for link in self.links:
            a, b = link.ends
            neighbours[a].append((b, link))
            neighbours[b].append((a, link))
        queue, done, pushed = [(0.0, 0, 0, source, [])], set(), 0
        while queue:
            latency, hops, _, host, path = heapq.heappop(queue)
            if host == target:
                return path
            if host in done:
                continue
            done.add(host)
            for other, link in neighbours[host]:
                if other not in done:
                    pushed += 1  # a unique tie-breaker: paths are never compared
                    heapq.heappush(queue, (latency + link.latency, hops + 1, pushed, other, [*path, link]))
        raise ValueError(f"no route from host {source!r} to host {target!r}: no chain of links connects them")


def _gpus(entry, where: str) -> dict:
    """Host fields from a ``gpus: {count, speed, memory}`` entry."""
    if not isinstance(entry, dict) or "count" not in entry:
        raise ValueError(f"{where}: expected a mapping {{count, speed, memory}}, got {entry!r}")
    unknown = sorted(set(entry) - {"count", "speed", "memory"})
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {unknown}; fields are count, speed, memory")
    return {
        "gpus": entry["count"],
        "gpu_speed": _number(entry.get("speed", 1.0), f"{where}: speed"),
        "gpu_memory": _number(entry.get("memory", math.inf), f"{where}: memory"),
    }


def _disk(entry, where: str) -> dict:
    """Host fields from a ``disk: {read, write}`` entry (bytes/s; unlimited when absent)."""
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: expected a mapping {{read, write}} in bytes/s, got {entry!r}")
    unknown = sorted(set(entry) - {"read", "write"})
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {unknown}; fields are read, write")
    return {f"disk_{mode}": _number(entry.get(mode, math.inf), f"{where}: {mode}") for mode in ("read", "write")}


def _profile(entry, where: str) -> list:
    """``[bandwidth at 0, (time, bandwidth), ...]`` from a number or a list of ``[time, bytes/s]`` pairs."""
    if not isinstance(entry, list):
        return [_number(entry, where)]
    if not entry:
        raise ValueError(f"{where}: a profile needs at least one [time, bytes/s] entry")
    pairs = []
    for k, pair in enumerate(entry):
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise ValueError(f"{where}: entry {k} must be [time, bytes/s], got {pair!r}")
        pairs.append((_number(pair[0], f"{where}: entry {k} time"), _number(pair[1], f"{where}: entry {k}")))
    if pairs[0][0] != 0:
        raise ValueError(f"{where}: entry 0 must be at time 0, got {pairs[0][0]!r}")
    return [pairs[0][1], *pairs[1:]]


def _check_host(host: Host) -> None:
    if host.tier not in TIERS:
        raise ValueError(f"host {host.name!r}: tier {host.tier!r} is not one of {list(TIERS)}")
    if isinstance(host.cores, bool) or not isinstance(host.cores, int) or host.cores < 1:
        raise ValueError(f"host {host.name!r}: cores must be an int >= 1, got {host.cores!r}")
    if not host.speed > 0:
        raise ValueError(f"host {host.name!r}: speed must be > 0, got {host.speed!r}")
    if isinstance(host.gpus, bool) or not isinstance(host.gpus, int) or host.gpus < 0:
        raise ValueError(f"host {host.name!r}: gpus count must be an int >= 0, got {host.gpus!r}")
    if not host.gpu_speed > 0:
        raise ValueError(f"host {host.name!r}: gpus speed must be > 0, got {host.gpu_speed!r}")
    if not host.gpu_memory > 0:
        raise ValueError(f"host {host.name!r}: gpus memory must be > 0 bytes, got {host.gpu_memory!r}")
    for mode in ("read", "write"):
        if not getattr(host, f"disk_{mode}") > 0:
            raise ValueError(
                f"host {host.name!r}: disk {mode} must be > 0 bytes/s, got {getattr(host, f'disk_{mode}')!r}"
            )


def _check_link(i: int, link: Link, hosts: dict) -> None:
    for end in link.ends:
        if end not in hosts:
            raise ValueError(f"link {i} ({link.name}): end {end!r} is not a host; hosts are {sorted(hosts)}")
    if not link.bandwidth > 0:
        raise ValueError(f"link {i} ({link.name}): bandwidth must be > 0 bytes/s, got {link.bandwidth!r}")
    if not link.latency >= 0:
        raise ValueError(f"link {i} ({link.name}): latency must be >= 0 s, got {link.latency!r}")
    previous = 0.0
    for k, (at, bandwidth) in enumerate(link.changes, start=1):
        if not at > previous:
            raise ValueError(f"link {i} ({link.name}): bandwidth entry {k} at time {at!r} must come after {previous!r}")
        if not bandwidth > 0:
            raise ValueError(f"link {i} ({link.name}): bandwidth entry {k} must be > 0 bytes/s, got {bandwidth!r}")
        previous = at


def _located(check, at: str, *args) -> None:
    """Run ``check(*args)``; its error starts with ``at`` (the file and line)."""
    try:
        check(*args)
    except ValueError as exc:
        raise ValueError(f"{at}: {exc}") from exc


def _lines(node) -> dict:
    """``(hosts, name)`` and ``(links, index)`` -> ``", line N"`` from a composed YAML document."""
    import yaml

    lines = {}
    if not isinstance(node, yaml.MappingNode):
        return lines
    for key, value in node.value:
        if key.value == "hosts" and isinstance(value, yaml.MappingNode):
            lines.update({("hosts", k.value): f", line {k.start_mark.line + 1}" for k, _ in value.value})
        elif key.value == "links" and isinstance(value, yaml.SequenceNode):
            lines.update({("links", i): f", line {v.start_mark.line + 1}" for i, v in enumerate(value.value)})
    return lines


def _number(value, where: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: expected a number, got {value!r}") from None
