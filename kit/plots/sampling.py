"""Figures of adaptive sampling: error curves, tail metrics and where each sampler put its simulations."""

from __future__ import annotations

import numpy as np
import xarray as xr
from matplotlib.figure import Figure


def sampler_comparison(data: xr.Dataset, *, x: str | None = None, y: str | None = None) -> Figure:
    """Validation error against simulations received (median over seeds, band from min to max), the final
    ratios to the uniform baseline with their intervals, and the simulations of the first seed in the
    plane of parameters ``x`` and ``y`` (default: the first two).

    ``data`` is ``kit.online.sampler_comparison.compare_samplers``'s Dataset.
    """
    names = list(data.parameter.values)
    x, y = x or names[0], y or names[1 % len(names)]
    samplers = list(data.sampler.values)
    fig = Figure(figsize=(4.0 * 3 + 0.5, 7.5), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[1, 1])
    curves = top.subplots(1, 3)
    for i, sampler in enumerate(samplers):
        run = data.sel(sampler=sampler)
        for ax, key in zip(curves[:2], ("check_mean", "check_p99"), strict=True):
            simulations = run.check_simulations.median("seed")
            ax.plot(simulations, run[key].median("seed"), color=f"C{i}", label=sampler)
            ax.fill_between(simulations, run[key].min("seed"), run[key].max("seed"), color=f"C{i}", alpha=0.15)
    units = data.val_mean.attrs.get("units", "")
    for ax, what in zip(curves[:2], ("mean", "p99"), strict=True):
        ax.set(xlabel="simulations received", ylabel=f"validation {what} error [{units}]", yscale="log")
    curves[0].legend(fontsize="small")
    ax = curves[2]
    width = 0.8 / 3
    positions = np.arange(len(samplers))
    for k, metric in enumerate(("mean", "p99", "max")):
        ratio = data[f"{metric}_ratio"]
        errors = np.abs(np.stack([ratio - data[f"{metric}_ratio_low"], data[f"{metric}_ratio_high"] - ratio]))
        ax.bar(positions + (k - 1) * width, ratio, width, yerr=errors, capsize=2, label=metric, color=f"C{k + 4}")
    ax.axhline(1.0, color="0.3", linewidth=0.8)
    ax.set_xticks(positions, samplers, rotation=20)
    level = data.attrs.get("confidence_level", 0.95)
    ax.set(ylabel=f"error / {data.attrs.get('baseline', 'random')} ({level:.0%} interval over seeds)")
    ax.legend(fontsize="small", title="final error", title_fontsize="small")
    places = bottom.subplots(1, len(samplers), sharex=True, sharey=True, squeeze=False)[0]
    seed = data.seed.values[0]
    for i, (ax, sampler) in enumerate(zip(places, samplers, strict=True)):
        points = data.points.sel(sampler=sampler, seed=seed)
        ax.scatter(points.sel(parameter=x), points.sel(parameter=y), s=8, color=f"C{i}")
        ax.set(title=f"{sampler} (seed {seed})", xlabel=x)
    places[0].set_ylabel(y)
    return fig
