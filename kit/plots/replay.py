"""Figures of deployment replays: where and when each task ran."""

from __future__ import annotations

from collections import defaultdict

from matplotlib.figure import Figure
from matplotlib.patches import Patch

from kit.replay.platform import TIERS
from kit.replay.trace import COMPONENTS

COLORS = {component: f"C{i}" for i, component in enumerate(COMPONENTS)}


def gantt(result, by: str = "host", *, platform=None) -> Figure:
    """A Gantt chart of a replay (``kit.replay.replay``): one bar per task from its start to its end, coloured
    by component, in rows of hosts (``by="host"``) or tiers (``by="tier"``, which needs the ``platform``).

    Tasks that overlap on a row get lanes of their own (one per busy core). With ``platform``, idle hosts get
    an empty row too. The dashed line marks the makespan.
    """
    if by not in ("host", "tier"):
        raise ValueError(f"by must be 'host' or 'tier', got {by!r}")
    if by == "tier" and platform is None:
        raise ValueError("by='tier' needs the platform the trace was replayed on (platform=...)")
    group_of = _grouping(result, by, platform)
    rows = defaultdict(list)
    for task in result.trace.tasks:
        rows[group_of(result.hosts[task.id])].append(task)
    lanes_of = {name: _lanes(rows[name], result) or [[]] for name in _row_order(rows, by, platform)}
    fig = Figure(figsize=(9, 1.2 + 0.45 * sum(map(len, lanes_of.values()))), layout="constrained")
    ax = fig.subplots()
    y, ticks = 0.0, []
    for name, lanes in lanes_of.items():
        for lane, tasks in enumerate(lanes):
            starts = [result.starts[t.id] for t in tasks]
            widths = [result.ends[t.id] - result.starts[t.id] for t in tasks]
            colors = [COLORS.get(t.component, COLORS["other"]) for t in tasks]
            ax.barh(y + lane, widths, left=starts, height=0.8, color=colors, edgecolor="white", linewidth=0.3)
        ticks.append((y + (len(lanes) - 1) / 2, name))
        y += len(lanes)
        ax.axhline(y - 0.5, color="0.85", linewidth=0.8)
    ax.axvline(result.makespan, color="0.3", linestyle="--", linewidth=1)
    used = [c for c in COMPONENTS if any(t.component == c for t in result.trace.tasks)]
    ax.set_yticks([position for position, _ in ticks], [name for _, name in ticks])
    ax.set(
        xlabel="time [s]",
        ylim=(y - 0.5, -0.5),
        title=f"{result.trace.name}: makespan {result.makespan:.3g} s, {result.bytes_moved / 1e6:.3g} MB moved",
    )
    handles = [Patch(color=COLORS[component], label=component) for component in used]
    fig.legend(handles=handles, fontsize="small", loc="outside lower center", ncol=max(1, len(used)))
    return fig


def _grouping(result, by: str, platform):
    if by == "host":
        return lambda host: host
    missing = sorted(set(result.hosts.values()) - set(platform.hosts))
    if missing:
        raise ValueError(
            f"host(s) {missing} of the replay are not in the platform; its hosts are {sorted(platform.hosts)}"
        )
    return lambda host: platform.hosts[host].tier


def _row_order(rows: dict, by: str, platform) -> list[str]:
    if platform is None:
        return sorted(rows)
    if by == "tier":
        return [tier for tier in TIERS if tier in {h.tier for h in platform.hosts.values()}]
    return sorted(platform.hosts, key=lambda name: (TIERS.index(platform.hosts[name].tier), name))


def _lanes(tasks: list, result) -> list[list]:
    """Tasks split into lanes in which none overlap: each goes to the first lane free at its start."""
    lanes: list[list] = []
    for task in sorted(tasks, key=lambda t: (result.starts[t.id], t.id)):
        for lane in lanes:
            if result.ends[lane[-1].id] <= result.starts[task.id]:
                lane.append(task)
                break
        else:
            lanes.append([task])
    return lanes
