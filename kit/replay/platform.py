"""Models of infrastructures to replay traces on: hosts in tiers, links with bandwidth and latency, routes.

A platform is described in YAML::

    hosts:
      laptop: {tier: edge, cores: 4, speed: 1.0}
      cloud: {tier: cloud, cores: 32, speed: 2.5}
    links:
      - {ends: [laptop, cloud], bandwidth: 1.25e7, latency: 0.02}

``speed`` is relative to the host that recorded the trace (a task takes ``runtime / speed``); ``bandwidth``
is in bytes/s and ``latency`` in seconds. A route between two hosts is the path of least total latency over
the links (fewest links on ties); two tasks on the same host exchange data for free.
"""

from __future__ import annotations

import heapq
import os
from dataclasses import dataclass, field
from pathlib import Path

#: Tiers a host can belong to.
TIERS = ("edge", "fog", "cloud", "hpc")
#: Platforms shipped with the kit (``kit/replay/platforms/<name>.yaml``).
EXAMPLES = ("laptop", "continuum", "hpc-cloud")


def example(name: str) -> Platform:
    """A platform shipped with the kit: ``laptop``, ``continuum`` (edge, fog, cloud) or ``hpc-cloud``."""
    if name not in EXAMPLES:
        raise ValueError(f"unknown example platform {name!r}; choose one of {list(EXAMPLES)}")
    return Platform.from_yaml(Path(__file__).with_name("platforms") / f"{name}.yaml")


@dataclass(frozen=True)
class Host:
    name: str
    tier: str
    cores: int
    speed: float = 1.0


@dataclass(frozen=True)
class Link:
    ends: tuple[str, str]
    bandwidth: float
    latency: float = 0.0

    @property
    def name(self) -> str:
        return f"{self.ends[0]}--{self.ends[1]}"


@dataclass
class Platform:
    """Hosts and links, checked on construction (errors name the host, the link and the field)."""

    hosts: dict[str, Host]
    links: list[Link] = field(default_factory=list)

    def __post_init__(self):
        for host in self.hosts.values():
            if host.tier not in TIERS:
                raise ValueError(f"host {host.name!r}: tier {host.tier!r} is not one of {list(TIERS)}")
            if isinstance(host.cores, bool) or not isinstance(host.cores, int) or host.cores < 1:
                raise ValueError(f"host {host.name!r}: cores must be an int >= 1, got {host.cores!r}")
            if not host.speed > 0:
                raise ValueError(f"host {host.name!r}: speed must be > 0, got {host.speed!r}")
        for i, link in enumerate(self.links):
            for end in link.ends:
                if end not in self.hosts:
                    raise ValueError(
                        f"link {i} ({link.name}): end {end!r} is not a host; hosts are {sorted(self.hosts)}"
                    )
            if not link.bandwidth > 0:
                raise ValueError(f"link {i} ({link.name}): bandwidth must be > 0 bytes/s, got {link.bandwidth!r}")
            if not link.latency >= 0:
                raise ValueError(f"link {i} ({link.name}): latency must be >= 0 s, got {link.latency!r}")
        self._routes: dict[tuple[str, str], list[Link]] = {}

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> Platform:
        """Read a platform file; an error names the file, the entry and the field."""
        import yaml

        path = Path(path)
        try:
            content = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise ValueError(f"{path}: not a readable YAML platform: {exc}") from exc
        return cls.from_dict(content, source=str(path))

    @classmethod
    def from_dict(cls, content, *, source: str = "platform") -> Platform:
        if not isinstance(content, dict) or not isinstance(content.get("hosts"), dict) or not content["hosts"]:
            raise ValueError(f"{source}: needs a 'hosts' mapping of host name -> {{tier, cores, speed}}")
        hosts = {}
        for name, entry in content["hosts"].items():
            where = f"{source}: host {name!r}"
            if not isinstance(entry, dict):
                raise ValueError(f"{where}: expected a mapping {{tier, cores, speed}}, got {entry!r}")
            unknown = sorted(set(entry) - {"tier", "cores", "speed"})
            if unknown:
                raise ValueError(f"{where}: unknown field(s) {unknown}; fields are tier, cores, speed")
            for key in ("tier", "cores"):
                if key not in entry:
                    raise ValueError(f"{where}: missing field {key!r}")
            hosts[str(name)] = Host(str(name), entry["tier"], entry["cores"], float(entry.get("speed", 1.0)))
        links = []
        for i, entry in enumerate(content.get("links") or []):
            where = f"{source}: link {i}"
            if not isinstance(entry, dict):
                raise ValueError(f"{where}: expected a mapping {{ends, bandwidth, latency}}, got {entry!r}")
            for key in ("ends", "bandwidth"):
                if key not in entry:
                    raise ValueError(f"{where}: missing field {key!r}")
            ends = entry["ends"]
            if not isinstance(ends, list | tuple) or len(ends) != 2:
                raise ValueError(f"{where}: 'ends' must name two hosts, got {ends!r}")
            links.append(
                Link((str(ends[0]), str(ends[1])), float(entry["bandwidth"]), float(entry.get("latency", 0.0)))
            )
        try:
            return cls(hosts, links)
        except ValueError as exc:
            raise ValueError(f"{source}: {exc}") from exc

    def route(self, source: str, target: str) -> list[Link]:
        """The links from ``source`` to ``target`` (least total latency, then fewest links); [] on one host."""
        if source == target:
            return []
        key = (source, target)
        if key not in self._routes:
            self._routes[key] = self._shortest(source, target)
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
