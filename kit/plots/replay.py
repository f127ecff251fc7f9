"""Figures of deployment replays: where and when each task ran, how faithful a replay is, how fast it runs."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from kit.online.timeline import CLIENT
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


def replay_speed(data: xr.Dataset) -> Figure:
    """Replay time and events per second against trace size (``kit.replay.speed.replay_speed``), one line
    per placement; the target (100,000 tasks in under 2 s) dashed."""
    fig = Figure(figsize=(9.0, 3.8), layout="constrained")
    time_ax, rate_ax = fig.subplots(1, 2)
    for i, placement in enumerate(data.placement.values):
        run = data.sel(placement=placement)
        time_ax.plot(run.tasks, run.seconds, "o-", color=f"C{i}", label=str(placement))
        rate_ax.plot(run.tasks, run.events_per_second, "o-", color=f"C{i}", label=str(placement))
    time_ax.axhline(2.0, color="0.4", linestyle="--", linewidth=1, label="target: 100,000 tasks in < 2 s")
    time_ax.axvline(100_000, color="0.4", linestyle="--", linewidth=1)
    time_ax.set(xscale="log", yscale="log", xlabel="tasks in the trace", ylabel="replay time [s]")
    rate_ax.set(xscale="log", xlabel="tasks in the trace", ylabel="events per second", ylim=(0, None))
    time_ax.legend(title="placement", fontsize="x-small")
    largest = data.sel(tasks=data.tasks.max())
    summary = ", ".join(f"{p}: {float(s):.2g} s" for p, s in zip(largest.placement.values, largest.seconds.values,
                                                                  strict=True))  # fmt: skip
    fig.suptitle(f"random layered DAGs (width {data.attrs.get('width')}) on '{data.attrs.get('platform')}'; "
                 f"{int(largest.tasks)} tasks: {summary}", fontsize="small")  # fmt: skip
    return fig


def simgrid_agreement(data: xr.Dataset) -> Figure:
    """The kit's makespans against SimGrid's (``kit.replay.agreement.agreement``), one marker per recipe and
    platform and size, on the diagonal when they agree; right, SimGrid's wall time over the kit's against the
    number of tasks."""
    fig = Figure(figsize=(10.0, 4.0), layout="constrained")
    makespan_ax, speed_ax = fig.subplots(1, 2)
    markers = dict(zip(data.platform.values, "os^D", strict=False))
    for i, recipe in enumerate(data.recipe.values):
        for platform in data.platform.values:
            run = data.sel(recipe=recipe, platform=platform)
            label = f"{recipe}, {platform}"
            makespan_ax.plot(run.simgrid_makespan, run.kit_makespan, markers[platform], color=f"C{i}", label=label,
                             fillstyle="none")  # fmt: skip
            speed_ax.plot(run.tasks, run.speed_vs_simgrid, markers[platform] + "-", color=f"C{i}", fillstyle="none")
    low, high = float(data.simgrid_makespan.min()), float(data.simgrid_makespan.max())
    makespan_ax.plot([low, high], [low, high], color="0.5", linewidth=1, zorder=0, label="kit = SimGrid")
    makespan_ax.set(xscale="log", yscale="log", xlabel="SimGrid makespan [s]", ylabel="kit makespan [s]")
    worst = float(abs(data.simgrid_makespan_error).max())
    makespan_ax.set_title(f"largest |kit / SimGrid - 1|: {worst:.1e} (target 1e-2)", fontsize="small")
    makespan_ax.legend(fontsize="x-small", ncols=2)
    speed_ax.axhline(1.0, color="0.5", linestyle="--", linewidth=1)
    speed_ax.set(xscale="log", yscale="log", xlabel="tasks in the instance", ylabel="SimGrid time / kit time")
    speed_ax.set_title(f"same machine, same run ({data.attrs.get('simgrid_run', 'here')})", fontsize="small")
    fig.suptitle(f"WfCommons instances replayed by the kit and by SimGrid {data.attrs.get('simgrid_version', '')} "
                 "(plain max-min network model)", fontsize="small")  # fmt: skip
    return fig


def fidelity(table: xr.Dataset, timeline: xr.Dataset) -> Figure:
    """Left: one recorded run's tasks per host (``kit.replay.calibrate.fidelity``), recorded (dark, upper)
    above replayed (light, lower), rows named by role and worker index (:func:`host_labels`); right: the
    makespan error of every run (``fidelity_table``) against the 10 % target band."""
    fig = Figure(figsize=(12.0, 4.6), layout="constrained")
    lanes_ax, error_ax = fig.subplots(1, 2, width_ratios=[2.2, 1])
    labels = host_labels(timeline)
    for lane, host in enumerate(labels):
        on = timeline.sel(task=timeline.host == host)
        for kind, offset, alpha in FIDELITY_KINDS:
            starts, ends = on[f"{kind}_start"].values, on[f"{kind}_end"].values
            for component in sorted(set(on.component.values.tolist())):
                pick = on.component.values == component
                bars = list(zip(starts[pick], (ends - starts)[pick], strict=True))
                lanes_ax.broken_barh(bars, (lane + offset - 0.17, 0.34), color=_color(component), alpha=alpha)
    lanes_ax.set(yticks=range(len(labels)), yticklabels=list(labels.values()), ylim=(len(labels) - 0.5, -0.5),
                 xlabel="time [s]", title=f"{timeline.attrs.get('run', '')}: tasks per host")  # fmt: skip
    lanes_ax.legend(handles=_fidelity_handles(timeline), fontsize="x-small", ncol=2, loc="upper left",
                    bbox_to_anchor=(0.0, -0.14))  # fmt: skip
    errors = 100 * table.makespan_error
    error_ax.axhspan(-10, 10, color="0.88", label="target: within 10 %")
    error_ax.axhline(0, color="0.5", linewidth=0.8)
    error_ax.bar(range(table.sizes["run"]), errors, color="C0", label="replayed / recorded makespan - 1")
    error_ax.set(xticks=range(table.sizes["run"]), xticklabels=[str(r) for r in table.run.values],
                 ylabel="makespan error [%]", title="on the recording machine's model")  # fmt: skip
    error_ax.tick_params(axis="x", labelrotation=30, labelsize="x-small")
    error_ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(0.0, -0.2))
    return fig


#: How :func:`fidelity` draws each side of a task: (kind, offset in its row, opacity).
FIDELITY_KINDS = (("recorded", -0.2, 0.9), ("replayed", 0.2, 0.4))


def _color(component: str) -> str:
    return COLORS.get(component, COLORS["other"])


def _fidelity_handles(timeline: xr.Dataset) -> list:
    """Legend entries: one colour per component present, then what dark (upper) and light (lower) mean."""
    present = set(timeline.component.values.tolist())
    handles = [Patch(color=_color(c), label=c) for c in (*COMPONENTS, *sorted(present - set(COMPONENTS)))
               if c in present]  # fmt: skip
    sides = {"recorded": "recorded (dark, upper)", "replayed": "replayed (light, lower)"}
    return handles + [Patch(color="0.3", alpha=alpha, label=sides[kind]) for kind, _, alpha in FIDELITY_KINDS]


def host_labels(timeline: xr.Dataset) -> dict[str, str]:
    """Stable names of a timeline's hosts, in row order: the ``client`` first (it trains), then each worker
    as ``worker <i> (<machine>)``, numbered by its first recorded task (worker ports change every run)."""
    first = {}
    for host, start in zip(timeline.host.values.tolist(), timeline.recorded_start.values, strict=True):
        first[host] = min(first.get(host, np.inf), float(start))
    workers = sorted((h for h in first if "://" in h), key=lambda h: (first[h], h))
    others = sorted(h for h in first if "://" not in h)
    return {h: f"{h} (trains)" if h == CLIENT else h for h in others} | {
        h: f"worker {i} ({_machine(h)})" for i, h in enumerate(workers)
    }


def _machine(address: str) -> str:
    """The machine of a worker address (``tcp://10.0.0.5:4321`` -> ``10.0.0.5``)."""
    return address.split("://", 1)[-1].rsplit(":", 1)[0]


def placements(data: xr.Dataset) -> Figure:
    """The same trace on each platform under each strategy (``kit.replay.placements.compare_placements``):
    makespan, p99 data latency and bytes moved, grouped bars per platform (a strategy that cannot place the
    trace there has no bar)."""
    keys = [("makespan", "makespan [s]", 1.0), ("latency_p99", "p99 data latency [s]", 1.0),
            ("bytes_moved", "bytes moved [MB]", 1e-6)]  # fmt: skip
    fig = Figure(figsize=(13.0, 3.8), layout="constrained")
    axes = fig.subplots(1, len(keys))
    platforms, strategies = list(data.platform.values), list(data.strategy.values)
    width = 0.8 / len(strategies)
    for ax, (key, label, scale) in zip(axes, keys, strict=True):
        for k, strategy in enumerate(strategies):
            values = data[key].sel(strategy=strategy).values * scale
            ax.bar([i + k * width for i in range(len(platforms))], values, width, color=f"C{k}", label=strategy)
        ax.set(xticks=[i + 0.4 - width / 2 for i in range(len(platforms))], xticklabels=platforms, ylabel=label)
    axes[0].legend(fontsize="x-small", ncol=2)
    fig.suptitle(f"trace '{data.attrs.get('trace', '')}' ({data.attrs.get('tasks', '')} tasks) placed by each "
                 "strategy on each example platform", fontsize="small")  # fmt: skip
    return fig


def factor_indices(data: xr.Dataset) -> Figure:
    """Sobol' (S1 and ST with their confidence) or Morris (mu* and sigma) indices of each metric with respect
    to each factor (``kit.replay.factors.factor_study``), one panel per metric."""
    metrics = list(data.metric.values)
    fig = Figure(figsize=(4.3 * len(metrics), 3.8), layout="constrained")
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    factors = list(data.factor.values)
    positions = range(len(factors))
    sobol = data.attrs.get("method") == "sobol"
    pairs = [("S1", "S1_conf"), ("ST", "ST_conf")] if sobol else [("mu_star", "mu_star_conf"), ("sigma", None)]
    for ax, metric in zip(axes, metrics, strict=True):
        part = data.sel(metric=metric)
        for j, (key, conf) in enumerate(pairs):
            errors = part[conf].values if conf else None
            ax.bar([p + 0.4 * j for p in positions], part[key].values, 0.4, yerr=errors, color=f"C{j}", label=key)
        ax.set(xticks=[p + 0.2 for p in positions], title=str(metric), ylabel="index" if sobol else "effect")
        ax.set_xticklabels(factors, rotation=30, ha="right", fontsize="small")
    axes[0].legend(fontsize="x-small")
    fig.suptitle(f"{data.attrs.get('method', '')} indices from {data.attrs.get('points', '')} replays",
                 fontsize="small")  # fmt: skip
    return fig


def scale_projection(data: xr.Dataset) -> Figure:
    """Samples trained per second against simulation cores feeding one GPU node, per scenario
    (``kit.replay.projection.scale_projection``), and what each resource is busy doing: the trainer, the
    streaming layer, the link."""
    fig = Figure(figsize=(12.0, 4.0), layout="constrained")
    rate_ax, *busy_axes = fig.subplots(1, 4)
    for i, scenario in enumerate(data.scenario.values):
        run = data.sel(scenario=scenario)
        rate_ax.plot(run.cores, run.trained_per_second, "o-", color=f"C{i}", label=str(scenario))
        for ax, key in zip(busy_axes, ("trainer_busy", "stream_busy", "link_busy"), strict=True):
            ax.plot(run.cores, run[key], "o-", color=f"C{i}")
    rate_ax.set(xscale="log", yscale="log", xlabel="simulation cores", ylabel="samples trained per second")
    rate_ax.legend(fontsize="x-small")
    for ax, title in zip(busy_axes, ("trainer busy", "streaming layer busy", "link busy"), strict=True):
        ax.set(xscale="log", xlabel="simulation cores", ylabel="fraction of the makespan", title=title, ylim=(0, 1.05))
    fig.suptitle("one GPU node fed by more and more simulation cores (replayed)", fontsize="small")
    return fig
