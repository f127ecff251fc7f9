"""Figures of online-training studies."""

from __future__ import annotations

import numpy as np
import xarray as xr
from matplotlib.figure import Figure


def study_monitor(metrics: xr.Dataset, validation: xr.Dataset) -> Figure:
    """Loss, validation error (mean and p99), throughput and buffer state over training batches."""
    fig = Figure(figsize=(10, 6.5), layout="constrained")
    (loss, error), (rates, state) = fig.subplots(2, 2)
    if metrics.sizes.get("batch", 0):
        loss.semilogy(metrics.batch, metrics.loss)
        rates.plot(metrics.batch, metrics.produced_per_second, label="produced")
        rates.plot(metrics.batch, metrics.consumed_per_second, label="consumed (draws)")
        state.plot(metrics.batch, metrics.occupancy, label="occupancy")
        twin = state.twinx()
        twin.plot(metrics.batch, metrics.age_mean, color="C1", label="mean sample age")
        twin.set_ylabel("age [batches]")
    if validation.sizes.get("check_batch", 0):
        error.plot(validation.check_batch, validation.val_mean, marker="o", label="mean")
        error.plot(validation.check_batch, validation.val_p99, marker="s", label="p99")
        error.plot(validation.check_batch, validation.val_max, marker="^", label="max")
        error.legend()
    loss.set(title="training loss (normalised MSE)", xlabel="batch")
    error.set(title="validation RMSE", xlabel="batch")
    rates.set(title="samples per second", xlabel="batch")
    state.set(title="buffer", xlabel="batch", ylabel="occupancy", ylim=(0, 1.05))
    if metrics.sizes.get("batch", 0):
        rates.legend()
    return fig


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
