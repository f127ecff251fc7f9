"""Figures of online-training studies."""

from __future__ import annotations

import numpy as np
import xarray as xr
from matplotlib.figure import Figure


def study_monitor(
    metrics: xr.Dataset, validation: xr.Dataset, simulations: xr.Dataset | None = None, *, window: int = 10
) -> Figure:
    """A study at a glance: training loss and validation error (mean, p99, max); samples produced and
    consumed per second (over the last ``window`` batches, and since the start dotted); buffer occupancy;
    sample age; and, given ``simulations`` (``StudyResult.simulations``), where the sampler put them in the
    plane of the first two parameters (colour: launch order; crosses: failed or redrawn, rings: running)."""
    fig = Figure(figsize=(13, 6.5), layout="constrained")
    (loss, error, where), (rates, state, age) = fig.subplots(2, 3)
    if metrics.sizes.get("batch", 0):
        loss.semilogy(metrics.batch, metrics.loss)
        for i, (what, label) in enumerate((("produced", "produced"), ("consumed", "consumed (draws)"))):
            rates.plot(metrics.batch, _windowed_rate(metrics, what, window), color=f"C{i}", label=label)
            rates.plot(metrics.batch, metrics[f"{what}_per_second"], color=f"C{i}", linestyle=":", linewidth=1)
        rates.legend(fontsize="small")
        state.plot(metrics.batch, metrics.occupancy)
        age.plot(metrics.batch, metrics.age_mean, label="mean")
        age.plot(metrics.batch, metrics.age_max, label="max")
        age.legend(fontsize="small")
    if validation.sizes.get("check_batch", 0):
        error.plot(validation.check_batch, validation.val_mean, marker="o", label="mean")
        error.plot(validation.check_batch, validation.val_p99, marker="s", label="p99")
        error.plot(validation.check_batch, validation.val_max, marker="^", label="max")
        error.legend(fontsize="small")
    if simulations is not None:
        _placements(where, simulations)
    else:
        where.set_axis_off()
    loss.set(title="training loss (normalised MSE)", xlabel="batch")
    error.set(title="validation RMSE", xlabel="batch")
    rates.set(title=f"samples per second (last {window} batches)", xlabel="batch")
    state.set(title="buffer occupancy", xlabel="batch", ylim=(0, 1.05))
    age.set(title="sample age in the buffer", xlabel="batch", ylabel="batches")
    return fig


def _windowed_rate(metrics: xr.Dataset, what: str, window: int) -> np.ndarray:
    """Samples per second over the last ``window`` batches (since the start for the first ones)."""
    count, seconds = metrics[what].values.astype(float), metrics.seconds.values
    back = np.maximum(np.arange(len(count)) - window, -1)
    before = np.where(back >= 0, count[np.maximum(back, 0)], 0.0)
    since = np.where(back >= 0, seconds[np.maximum(back, 0)], 0.0)
    return (count - before) / np.maximum(seconds - since, 1e-9)


def _placements(ax, simulations: xr.Dataset) -> None:
    names = [str(p) for p in simulations.parameter.values]
    if simulations.sizes.get("simulation", 0):
        x, y = (simulations.params.isel(parameter=k).values for k in (0, min(1, len(names) - 1)))
        status = simulations.status.values
        order = simulations.simulation.values
        ok = np.isin(status, ["ok", "retried", "cancelled"])
        points = ax.scatter(x[ok], y[ok], c=order[ok], cmap="viridis", s=18, vmin=0, vmax=max(1, order.max()))
        ax.figure.colorbar(points, ax=ax, label="launch order")
        running = status == "running"
        ax.scatter(x[running], y[running], facecolors="none", edgecolors="C3", s=40, label="running")
        bad = np.isin(status, ["failed", "redrawn"])
        ax.scatter(x[bad], y[bad], marker="x", color="k", s=30, label="failed or redrawn")
        if running.any() or bad.any():
            ax.legend(fontsize="small")
    ax.set(
        title=f"where the sampler put {simulations.sizes.get('simulation', 0)} simulations",
        xlabel=names[0],
        ylabel=names[min(1, len(names) - 1)],
    )


def online_vs_offline(data: xr.Dataset) -> Figure:
    """Validation error against gradient steps, online vs offline, per model: mean over seeds (mean RMSE
    solid with its min-max band over seeds, p99 dashed; offline's error on its own stored simulations
    dotted) and ``error_ratio`` over seeds in each title."""
    models = list(data.model.values)
    fig = Figure(figsize=(5 * len(models), 4.3), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(models), sharey=True))
    units = data.attrs.get("units", "")
    for ax, model in zip(axes, models, strict=True):
        for color, mode in zip(("C0", "C3"), ("online", "offline"), strict=True):
            curve = data.sel(model=model, mode=mode)
            ax.fill_between(curve.batch, curve.val_mean.min("seed"), curve.val_mean.max("seed"), color=color,
                            alpha=0.2, linewidth=0)  # fmt: skip
            ax.plot(curve.batch, curve.val_mean.mean("seed"), color=color, label=f"{mode} mean")
            ax.plot(curve.batch, curve.val_p99.mean("seed"), color=color, linestyle="--", label=f"{mode} p99")
        if "train_mean" in data:
            stored = data.train_mean.sel(model=model, mode="offline").mean("seed")
            ax.plot(stored.batch, stored, color="C3", linestyle=":", label="offline, on its stored set")
        mean, low, high = (float(data[f"error_ratio_mean{s}"].sel(model=model)) for s in ("", "_low", "_high"))
        ax.set(title=f"{model}: error_ratio {mean:.2f} [{low:.2f}, {high:.2f}]", xlabel="gradient steps",
               ylabel=f"validation RMSE [{units}]")  # fmt: skip
        ax.legend(fontsize="small")
    seeds = data.sizes["seed"]
    fig.suptitle(f"error_ratio = online / offline final mean validation RMSE at equal gradient steps; mean "
                 f"[min, max] over {seeds} seeds; bands: min-max over seeds", fontsize="small")  # fmt: skip
    return fig


def streaming_efficiency(data: xr.Dataset) -> Figure:
    """Time steps per second reaching the trainer over the plain-loop rate (median and range over repeats),
    per grid, chunk size and number of workers, with the targets; below, the CPU the study process used."""
    grids = data.grid.values
    fig = Figure(figsize=(4.2 * len(grids), 6.4), layout="constrained")
    axes = fig.subplots(2, len(grids), squeeze=False, sharey="row")
    x = np.arange(data.sizes["chunk_steps"])
    width = 0.8 / data.sizes["workers"]
    for column, grid in enumerate(grids):
        top, bottom = axes[0, column], axes[1, column]
        for i, workers in enumerate(data.workers.values):
            run = data.sel(grid=grid, workers=workers)
            offset = (i - (data.sizes["workers"] - 1) / 2) * width
            low, mid, high = (run[f"streaming_efficiency{s}"].values for s in ("_low", "", "_high"))
            top.bar(x + offset, mid, width, yerr=[mid - low, high - mid], capsize=3, color=f"C{i}",
                    label=f"{workers} worker(s)")  # fmt: skip
            for xi, value in zip(x + offset, mid, strict=True):
                top.annotate(f"{value:.2f}", (xi, 0.02), ha="center", va="bottom", fontsize="x-small", color="w")
            if workers > 1:
                top.scatter(x + offset, run.efficiency_of_cpu_left, marker="_", s=200, color="k", zorder=3,
                            label="against the CPU left to simulations" if column == 0 else None)  # fmt: skip
            bottom.bar(x + offset, (run.study_cpu / run.wall).median("repeat"), width, color=f"C{i}")
        top.axhline(0.95, color="0.4", linestyle="--", linewidth=1)
        top.axhline(0.8, color="0.4", linestyle=":", linewidth=1)
        top.set(title=f"heat {grid}x{grid}", xticks=x, xticklabels=data.chunk_steps.values, xlabel="steps per chunk")
        bottom.set(xticks=x, xticklabels=data.chunk_steps.values, xlabel="steps per chunk")
    axes[0, 0].set_ylabel("kit rate / (workers x plain loop)")
    axes[1, 0].set_ylabel("study process CPU (cores)")
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside lower center", ncols=3, fontsize="small")
    pinned = "pinned to separate cores" if data.attrs.get("pinned") else "not pinned"
    fig.suptitle(f"streaming efficiency ({data.attrs.get('cores', '?')} cores, workers and study {pinned}; "
                 "targets 0.95 dashed, 0.8 dotted)", fontsize="small")  # fmt: skip
    return fig


def data_plane(data: xr.Dataset) -> Figure:
    """Chunks per second into one study (with its same-host shared memory, and over TCP only) against a bare
    pyzmq PUSH/PULL of the same bytes, per number of producer processes, and the CPU per chunk of the receiving
    thread and of all processes (median and range over repeats)."""
    fig = Figure(figsize=(10, 4), layout="constrained")
    rate, cost = fig.subplots(1, 2)
    producers = data.producers.values
    runs = (("kit", "kit (study, trains nothing)"), ("kit_tcp", "kit over TCP only"), ("bare", "bare PUSH/PULL"))
    for i, (key, label) in enumerate((key, label) for key, label in runs if f"{key}_chunks_per_second" in data):
        values = data[f"{key}_chunks_per_second"]
        rate.plot(producers, values.median("repeat"), "o-", color=f"C{i}", label=label)
        rate.fill_between(producers, values.min("repeat"), values.max("repeat"), color=f"C{i}", alpha=0.2)
        for kind, style, what in (
            ("receive_cost", "o-", "receiving thread"),
            ("cpu_per_chunk", "s--", "all processes"),
        ):
            if f"{key}_{kind}" in data:
                spent = data[f"{key}_{kind}"]
                cost.plot(
                    producers, spent.median("repeat"), style, color=f"C{i}", label=f"{label.split(' (')[0]}: {what}"
                )
                cost.fill_between(producers, spent.min("repeat"), spent.max("repeat"), color=f"C{i}", alpha=0.2)
    for p, ratio, value in zip(producers, data.data_plane_ratio.values, data.chunks_per_second.values, strict=True):
        rate.annotate(f"{ratio:.2f}", (p, value), textcoords="offset points", xytext=(0, -12), ha="center",
                      fontsize="x-small")  # fmt: skip
    cost.axhline(1e-4, color="0.4", linestyle="--", linewidth=1, label="target (receiving thread)")
    kilobytes = data.attrs.get("chunk_bytes", 0) / 1e3
    rate.set(xscale="log", xlabel="producer processes", ylabel="chunks per second",
             title=f"{kilobytes:.0f} kB chunks (kit / bare annotated, target >= 0.8)")  # fmt: skip
    cost.set(xscale="log", yscale="log", xlabel="producer processes", ylabel="CPU seconds per chunk",
             title="CPU per chunk")  # fmt: skip
    rate.legend(fontsize="small")
    cost.legend(fontsize="x-small", loc="upper left")
    return fig


def buffer_policies(data: xr.Dataset) -> Figure:
    """Validation error over wall time per buffer policy, and how often samples were used."""
    fig = Figure(figsize=(10, 4), layout="constrained")
    error, uses = fig.subplots(1, 2)
    count = data.sizes["policy"]
    width = 0.8 / count
    for i, policy in enumerate(data.policy.values):
        curve = data.sel(policy=policy)
        error.plot(curve.seconds, curve.val_mean, marker="o", label=f"{policy} ({int(curve.batches)} batches)")
        uses.bar(data.uses + (i - (count - 1) / 2) * width, curve.samples_by_uses, width=width, label=policy)
    error.set(title="validation RMSE (mean)", xlabel="seconds", ylabel="RMSE")
    uses.set(title="sample reuse", xlabel="times used", ylabel="samples", yscale="log")
    error.legend()
    uses.legend()
    return fig


def data_parallel(data: xr.Dataset) -> Figure:
    """Left: samples per second through the trainer by number of training ranks (median bar, range over
    repeats), each bar labelled with ``rank_scaling`` and ``rank_scaling_per_cpu``; right: validation error
    over wall time, one line a repeat."""
    fig = Figure(figsize=(10.5, 4.2), layout="constrained")
    rates, error = fig.subplots(1, 2)
    trainers = data.trainers.values
    x = np.arange(len(trainers))
    median = data.samples_per_second.median("repeat").values
    low, high = (data.samples_per_second.reduce(f, "repeat").values for f in (np.min, np.max))
    rates.bar(x, median, 0.6, yerr=[median - low, high - median], capsize=4, color=[f"C{i}" for i in x])
    for xi, n, value in zip(x, trainers, median, strict=True):
        scaling, per_cpu = (float(data[name].sel(trainers=n)) for name in ("rank_scaling", "rank_scaling_per_cpu"))
        rates.annotate(f"rank_scaling {scaling:.2f}\nper CPU second {per_cpu:.2f}", (xi, value), ha="center",
                       va="bottom", fontsize="small", xytext=(0, 4), textcoords="offset points")  # fmt: skip
    rates.set(xticks=x, xticklabels=[f"{n} rank(s)" for n in trainers], ylabel="samples / s through the trainer",
              title=f"{data.attrs.get('model', '')}, batch {data.attrs.get('batch_size', '')} a rank")  # fmt: skip
    for i, n in enumerate(trainers):
        for repeat in data.repeat.values:
            run = data.sel(trainers=n, repeat=repeat)
            error.plot(run.check_seconds, run.val_mean, color=f"C{i}", alpha=0.8, marker=".",
                       label=f"{n} rank(s)" if repeat == 0 else None)  # fmt: skip
    error.set(xlabel="wall time [s]", ylabel=f"validation RMSE [{data.attrs.get('units', '')}]", yscale="log",
              title=f"{data.attrs.get('batches', '')} gradient steps; one line a repeat")  # fmt: skip
    error.legend(fontsize="small")
    fig.suptitle("rank_scaling = samples/s with n ranks / (n x one rank's); per CPU second: samples per CPU second of "
                 "the training loops / one rank's; medians over repeats", fontsize="small")  # fmt: skip
    return fig
