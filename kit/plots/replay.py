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
