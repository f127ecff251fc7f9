"""Figures of adaptive sampling: error curves, tail metrics and where each sampler put its simulations."""

from __future__ import annotations

import numpy as np
import xarray as xr
from matplotlib.figure import Figure


def sampler_comparison(
    data: xr.Dataset, *, x: str | None = None, y: str | None = None, targets: dict[str, float] | None = None
) -> Figure:
    """Validation error against simulations received (median over seeds, band from the first to the third
    quartile), the final ratios to the uniform baseline with their intervals and the ``targets`` ratio of
    each metric (``{"p99": 0.75}``: dashed, labelled), and the simulations of the first seed in the plane of
    parameters ``x`` and ``y`` (default: the first two).

    ``data`` is ``kit.online.sampler_comparison.compare_samplers``'s Dataset.
    """
    names = list(data.parameter.values)
    x, y = x or names[0], y or names[1 % len(names)]
    fig = Figure(figsize=(4.0 * 3 + 0.5, 7.5), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[1, 1])
    curves = top.subplots(1, 3)
    _error_curves(curves[:2], data)
    _ratio_bars(curves[2], data, targets or {})
    _placements(bottom, data, x, y)
    return fig


def _error_curves(axes, data: xr.Dataset) -> None:
    """Mean and p99 validation error of each sampler: median over seeds and its interquartile band."""
    units = data.val_mean.attrs.get("units", "")
    for i, sampler in enumerate(data.sampler.values):
        run = data.sel(sampler=sampler)
        simulations = run.check_simulations.median("seed")
        for ax, key in zip(axes, ("check_mean", "check_p99"), strict=True):
            low, high = run[key].quantile([0.25, 0.75], dim="seed").values
            ax.fill_between(simulations, low, high, color=f"C{i}", alpha=0.1, linewidth=0)
            for edge in (low, high):
                ax.plot(simulations, edge, color=f"C{i}", linewidth=0.5, alpha=0.6)
            ax.plot(simulations, run[key].median("seed"), color=f"C{i}", linewidth=2, label=str(sampler))
    for ax, what in zip(axes, ("mean", "p99"), strict=True):
        ax.set(xlabel="simulations received", ylabel=f"validation {what} error [{units}]", yscale="log")
    axes[0].legend(fontsize="small", title=f"median of {data.sizes['seed']} seeds, band: quartiles",
                   title_fontsize="x-small")  # fmt: skip


def _ratio_bars(ax, data: xr.Dataset, targets: dict[str, float]) -> None:
    """Final mean, p99 and max error over the baseline's per sampler, with intervals and targets."""
    samplers = list(data.sampler.values)
    width = 0.8 / 3
    positions = np.arange(len(samplers))
    for k, metric in enumerate(("mean", "p99", "max")):
        ratio = data[f"{metric}_ratio"]
        errors = np.abs(np.stack([ratio - data[f"{metric}_ratio_low"], data[f"{metric}_ratio_high"] - ratio]))
        ax.bar(positions + (k - 1) * width, ratio, width, yerr=errors, capsize=2, label=metric, color=f"C{k + 4}")
        if metric in targets:
            label = f"{metric} target <= {targets[metric]:g}"
            ax.axhline(targets[metric], color=f"C{k + 4}", linestyle="--", linewidth=1.5, zorder=3, label=label)
    ax.axhline(1.0, color="0.3", linewidth=0.8)
    ax.set_xticks(positions, samplers, rotation=20)
    level = data.attrs.get("confidence_level", 0.95)
    ax.set(ylabel=f"error / {data.attrs.get('baseline', 'random')} ({level:.0%} interval over seeds)")
    top = float(np.nanmax([data[f"{metric}_ratio_high"].max() for metric in ("mean", "p99", "max")] + [1.0]))
    ax.set_ylim(0, 1.45 * top)  # headroom: the legend sits above the bars, not on them
    ax.legend(fontsize="x-small", title="final error", title_fontsize="small", loc="upper center", ncol=2)


def _placements(fig, data: xr.Dataset, x: str, y: str) -> None:
    """Where each sampler put the simulations of the first seed."""
    samplers = list(data.sampler.values)
    places = fig.subplots(1, len(samplers), sharex=True, sharey=True, squeeze=False)[0]
    seed = data.seed.values[0]
    for i, (ax, sampler) in enumerate(zip(places, samplers, strict=True)):
        points = data.points.sel(sampler=sampler, seed=seed)
        ax.scatter(points.sel(parameter=x), points.sel(parameter=y), s=8, color=f"C{i}")
        ax.set(title=f"{sampler} (seed {seed})", xlabel=x)
    places[0].set_ylabel(y)
