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
    """Validation error (mean solid, p99 dashed) against gradient steps, online vs offline, per model."""
    models = list(data.model.values)
    fig = Figure(figsize=(5 * len(models), 4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(models), sharey=True))
    units = data.attrs.get("units", "")
    for ax, model in zip(axes, models, strict=True):
        for color, mode in zip(("C0", "C3"), ("online", "offline"), strict=True):
            curve = data.sel(model=model, mode=mode)
            ax.plot(curve.batch, curve.val_mean, color=color, label=f"{mode} mean")
            ax.plot(curve.batch, curve.val_p99, color=color, linestyle="--", label=f"{mode} p99")
        ratio = float(data.error_ratio.sel(model=model))
        ax.set(title=f"{model}: online / offline = {ratio:.2f}", xlabel="gradient steps", ylabel=f"RMSE [{units}]")
        ax.legend()
    return fig


def streaming_efficiency(data: xr.Dataset) -> Figure:
    """Samples per second reaching the trainer against the plain-loop rate, per number of workers."""
    fig = Figure(figsize=(5, 4), layout="constrained")
    ax = fig.subplots()
    x = np.arange(data.sizes["workers"])
    ax.bar(x - 0.2, data.workers * data.plain_rate, width=0.4, label="plain loop x workers")
    ax.bar(x + 0.2, data.kit_rate, width=0.4, label="through the kit")
    for i, efficiency in enumerate(data.streaming_efficiency.values):
        ax.annotate(f"{efficiency:.2f}", (i + 0.2, float(data.kit_rate[i])), ha="center", va="bottom")
    ax.set(xticks=x, xticklabels=[f"{w} worker(s)" for w in data.workers.values], ylabel="time steps per second")
    ax.legend()
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
