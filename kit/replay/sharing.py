"""Max-min fair sharing of links by the flows of a replay: flows with one route form a :class:`Group` served
at one rate; :func:`max_min_rates` sets the rates by progressive filling (the most shared link fixes its flows'
rate first)."""

from __future__ import annotations


class Flow:
    """A transfer in flight: its group, the file (``key``) it carries, its hosts and the fetch it serves."""

    __slots__ = ("group", "key", "source", "target", "fetch")

    def __init__(self, group, key, source, target, fetch):
        self.group, self.key, self.source, self.target, self.fetch = group, key, source, target, fetch


class Group:
    """The flows crossing the same links: max-min fairness gives them one rate, so they are served together.
    ``served`` counts the bytes each has received since the group formed; a flow ends when it reaches the
    target it joined with (a heap of targets: the next to end is on top)."""

    __slots__ = ("links", "served", "since", "rate", "count", "targets")

    def __init__(self, links, now):
        self.links, self.served, self.since, self.rate, self.count, self.targets = links, 0.0, now, 0.0, 0, []

    def advance(self, now) -> None:
        self.served += self.rate * (now - self.since)
        self.since = now


def max_min_rates(users: dict, load: dict, bandwidth: dict) -> None:
    """Max-min fair rates (``Group.rate``) of the groups crossing each link (``users``), by progressive
    filling: the most shared link (``load``: its flows) fixes the rate of its groups first."""
    counts = {name: n for name, n in load.items() if n}
    capacity = {name: bandwidth[name] for name in counts}
    fixed = set()
    while counts:
        share, bottleneck = min((capacity[name] / n, name) for name, n in counts.items())
        for group in users[bottleneck]:
            if group in fixed:
                continue
            fixed.add(group)
            group.rate = share
            taken, count = share * group.count, group.count
            for name in group.links:
                left = counts[name] - count
                if left:
                    counts[name] = left
                    capacity[name] -= taken
                else:
                    del counts[name]
