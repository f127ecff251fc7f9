"""Figures of deployment replay: how fast the engine replays traces of growing size."""

from __future__ import annotations

import xarray as xr
from matplotlib.figure import Figure


def replay_speed(data: xr.Dataset) -> Figure:
    """Replay time and events per second against trace size (``kit.replay.speed.replay_speed``), one line
    per placement; the 2 s mark of a 100,000-task trace in grey."""
    fig = Figure(figsize=(9.0, 3.8), layout="constrained")
    time_ax, rate_ax = fig.subplots(1, 2)
    for i, placement in enumerate(data.placement.values):
        run = data.sel(placement=placement)
        time_ax.plot(run.tasks, run.seconds, "o-", color=f"C{i}", label=str(placement))
        rate_ax.plot(run.tasks, run.events_per_second, "o-", color=f"C{i}", label=str(placement))
    time_ax.axhline(2.0, color="0.7", linewidth=0.8)
    time_ax.axvline(100_000, color="0.7", linewidth=0.8)
    time_ax.set(xscale="log", yscale="log", xlabel="tasks in the trace", ylabel="replay time [s]")
    rate_ax.set(xscale="log", xlabel="tasks in the trace", ylabel="events per second", ylim=(0, None))
    time_ax.legend(title="placement", fontsize="x-small")
    largest = data.sel(tasks=data.tasks.max())
    summary = ", ".join(f"{p}: {float(s):.2g} s" for p, s in zip(largest.placement.values, largest.seconds.values,
                                                                  strict=True))  # fmt: skip
    fig.suptitle(f"random layered DAGs (width {data.attrs.get('width')}) on '{data.attrs.get('platform')}'; "
                 f"{int(largest.tasks)} tasks: {summary}", fontsize="small")  # fmt: skip
    return fig


def fidelity(table: xr.Dataset, timeline: xr.Dataset) -> Figure:
    """Left: one recorded run's tasks per host (``kit.replay.calibrate.fidelity``), recorded (dark) above
    replayed (light); right: the makespan error of every run (``fidelity_table``) with the 10 % band."""
    fig = Figure(figsize=(12.0, 4.2), layout="constrained")
    lanes_ax, error_ax = fig.subplots(1, 2, width_ratios=[2.2, 1])
    hosts = sorted(set(timeline.host.values.tolist()))
    colors = {"simulation": "C0", "training": "C3", "validation": "C2", "inference": "C4", "other": "C7"}
    for lane, host in enumerate(hosts):
        on = timeline.sel(task=timeline.host == host)
        for kind, offset, alpha in (("recorded", 0.2, 0.9), ("replayed", -0.2, 0.45)):
            starts, ends = on[f"{kind}_start"].values, on[f"{kind}_end"].values
            for component in sorted(set(on.component.values.tolist())):
                pick = on.component.values == component
                bars = list(zip(starts[pick], (ends - starts)[pick], strict=True))
                lanes_ax.broken_barh(bars, (lane + offset - 0.17, 0.34), color=colors.get(component, "C7"),
                                     alpha=alpha, label=f"{component} {kind}" if lane == 0 else None)  # fmt: skip
    lanes_ax.set(yticks=range(len(hosts)), yticklabels=[_short(h) for h in hosts], xlabel="time [s]",
                 title=f"{timeline.attrs.get('run', '')}: recorded (upper) and replayed (lower) per host")  # fmt: skip
    lanes_ax.legend(fontsize="x-small", ncol=2, loc="upper right")
    errors = 100 * table.makespan_error
    error_ax.axhspan(-10, 10, color="0.9")
    error_ax.bar(range(table.sizes["run"]), errors, color="C0")
    error_ax.set(xticks=range(table.sizes["run"]), xticklabels=[str(r) for r in table.run.values],
                 ylabel="replayed / recorded makespan - 1 [%]", title="on the recording machine's model")  # fmt: skip
    error_ax.tick_params(axis="x", labelrotation=30, labelsize="x-small")
    return fig


def _short(host: str) -> str:
    """A worker address without its protocol and host part (``tcp://127.0.0.1:4321`` -> ``:4321``)."""
    return ":" + host.rsplit(":", 1)[-1] if host.count(":") >= 2 else host
