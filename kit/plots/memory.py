"""Figures of memory planning: time against peak memory, predicted and measured."""

from __future__ import annotations

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

MARKERS = {"optimal": "o", "uniform": "s", "store_all": "^", "recompute_all": "v"}


def memory_tradeoff(data: xr.Dataset) -> Figure:
    """One panel per chain: step time against peak memory of each strategy over the budgets, measured
    (filled, solid) and predicted (hollow, dashed); the budgets as grey ticks on the peak axis."""
    chains = list(data.chain.values) if "chain" in data.dims else [None]
    fig = Figure(figsize=(4.6 * len(chains), 4.0), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(chains), squeeze=False)[0])
    for ax, chain in zip(axes, chains, strict=True):
        part = data.sel(chain=chain) if chain is not None else data
        for i, strategy in enumerate(part.strategy.values):
            run = part.sel(strategy=strategy)
            style = {"color": f"C{i}", "marker": MARKERS.get(str(strategy), "o")}
            ax.plot(run.measured_peak / 2**20, run.measured_time, label=f"{strategy} measured", **style)
            ax.plot(
                run.predicted_peak / 2**20, run.predicted_time, linestyle="--", markerfacecolor="none",
                label=f"{strategy} predicted", **style,
            )  # fmt: skip
        for budget in np.atleast_1d(part.budget_bytes.values):
            ax.axvline(budget / 2**20, color="0.85", linewidth=0.8, zorder=0)
        ratio = float(part.time_ratio_vs_uniform.min()) if np.isfinite(part.time_ratio_vs_uniform).any() else np.nan
        ax.set(
            xlabel="peak memory of a training step [MiB]",
            ylabel="time of a training step [s]",
            title=f"{chain or ''} (best optimal / uniform time {ratio:.2f})",
        )
    axes[0].legend(fontsize="x-small", ncol=2)
    fig.suptitle(f"device: {data.attrs.get('device', '')}; grey lines: budgets", fontsize="small")
    return fig


def partitioning(data: xr.Dataset) -> Figure:
    """Per chain: the objective (pipeline period or latency) of the partition and of the greedy fill against
    the fast device's memory; a greedy fill that overflows is marked on the axis (it cannot run)."""
    chains = list(data.chain.values)
    fig = Figure(figsize=(4.4 * len(chains), 3.8), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(chains), squeeze=False)[0])
    for ax, chain in zip(axes, chains, strict=True):
        part = data.sel(chain=chain)
        memory = part.fast_memory / 2**20
        ax.plot(memory, part.objective_partition, "o-", color="C0", label="partition (dynamic program)")
        ax.plot(memory, part.objective_greedy, "s--", color="C3", label="greedy fill by parameters")
        overflow = part.greedy_fits == 0
        if overflow.any():
            low = float(np.nanmin(part.objective_partition))
            ax.plot(memory[overflow], np.full(int(overflow.sum()), low), "x", color="C3", markersize=9,
                    label="greedy overflows the fast device")  # fmt: skip
        what = "period" if data.attrs.get("mode") == "training" else "latency"
        ax.set(xlabel="fast device memory [MiB]", ylabel=f"{what} [s]", title=str(chain), yscale="log")
    axes[0].legend(fontsize="x-small")
    fig.suptitle(
        f"fast device {data.attrs.get('fast_speed', '')}x the profiled one, then a host of ample memory "
        f"({data.attrs.get('mode', '')}; modelled from CPU profiles)",
        fontsize="small",
    )
    return fig
