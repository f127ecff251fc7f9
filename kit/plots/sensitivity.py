"""Figures of sensitivity indices."""

from __future__ import annotations

import numpy as np
import xarray as xr
from matplotlib.figure import Figure


def sobol_convergence(data: xr.Dataset) -> Figure:
    """First-order and total indices against the number of pick-freeze groups, with confidence bands and
    the exact values dashed; SALib's indices on the same groups with its bootstrap intervals as bars."""
    fig = Figure(figsize=(10, 4), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    for ax, index, title in zip(axes, ("S1", "ST"), ("first order", "total"), strict=True):
        for i, name in enumerate(data.parameter.values):
            color = f"C{i % 10}"
            curve = data.sel(parameter=name)
            ax.plot(curve.groups, curve[index], color=color, marker="o", markersize=3, label=str(name))
            if f"{index}_low" in data:
                ax.fill_between(curve.groups, curve[f"{index}_low"], curve[f"{index}_high"], color=color, alpha=0.15)
            if f"{index}_salib" in data:
                salib = curve[f"{index}_salib"].values
                bars = np.stack([salib - curve[f"{index}_salib_low"].values, curve[f"{index}_salib_high"] - salib])
                ax.errorbar(curve.groups * 1.12, salib, yerr=bars, color=color, fmt="x", markersize=3, linewidth=0.8)
            ax.axhline(float(curve[f"{index}_exact"]), color=color, linestyle="--", linewidth=0.8)
        ax.set(xscale="log", xlabel="pick-freeze groups", title=f"{title} ({data.attrs.get('model', '')})")
    axes[0].set_ylabel("Sobol index (dashed: exact; x: SALib, bootstrap bars)")
    axes[1].legend(ncol=2, fontsize="small")
    return fig


def interval_coverage(data: xr.Dataset) -> Figure:
    """Coverage of the exact indices against pick-freeze groups, one line per interval (the range over
    parameters shaded), the nominal level dashed and the 0.93-0.97 band shaded grey."""
    fig = Figure(figsize=(10, 4), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    level = float(data.attrs.get("confidence_level", 0.95))
    labels = {
        "martinez": "kit, Martinez (delta method)",
        "jansen": "kit, Jansen (delta method)",
        "fisher": "Fisher z, normal theory",
        "salib": "SALib bootstrap",
    }
    for ax, index, title in zip(axes, ("S1", "ST"), ("first order", "total"), strict=True):
        ax.axhspan(level - 0.02, level + 0.02, color="0.9")
        ax.axhline(level, color="0.3", linestyle="--", linewidth=0.8)
        for i, interval in enumerate(data.interval.values):
            curve = data.sel(interval=interval, index=index)
            mean, label = curve.coverage.mean("parameter"), labels[str(interval)]
            ax.plot(curve.groups, mean, color=f"C{i}", marker="o", label=label)
            ax.fill_between(curve.groups, curve.coverage_min, curve.coverage_max, color=f"C{i}", alpha=0.2)
        title = f"{title} ({data.attrs.get('model', '')})"
        ax.set(xscale="log", xlabel="pick-freeze groups per replicate", title=title)
        ax.set_xticks(data.groups.values, labels=[str(int(n)) for n in data.groups.values])
        ax.minorticks_off()
    axes[0].set_ylabel(f"coverage over {data.attrs.get('replicates', '?')} replicates")
    axes[1].legend(fontsize="small", loc="lower right")
    return fig


def salib_benchmark(data: xr.Dataset) -> Figure:
    """Time and peak memory against pick-freeze groups: one-pass ``IterativeSobol`` vs SALib looped over the
    field cells (one line per bootstrap size), log scales, SALib / kit ratios annotated."""
    fig = Figure(figsize=(10, 4), layout="constrained")
    axes = fig.subplots(1, 2)
    groups = data.groups.values
    panels = (("time", "seconds", 1.0, "time_ratio"), ("peak", "peak memory [MiB]", 2.0**20, "memory_ratio"))
    for ax, (what, label, scale, ratio) in zip(axes, panels, strict=True):
        ax.plot(groups, data[f"{what}_iterative"] / scale, color="C0", marker="o", label="kit IterativeSobol")
        for i, r in enumerate(data.num_resamples.values):
            curve = data.sel(num_resamples=r)
            style = {"color": "C3", "marker": "s", "linestyle": "-" if i == 0 else "--"}
            ax.plot(groups, curve[f"{what}_salib"] / scale, label=f"SALib, {int(r)} resamples", **style)
            for n, y, value in zip(groups, curve[f"{what}_salib"].values / scale, curve[ratio].values, strict=True):
                ax.annotate(
                    f"x{value:.3g}",
                    (n, y),
                    textcoords="offset points",
                    xytext=(0, 5 if i == 0 else -11),
                    ha="center",
                    fontsize="x-small",
                    color="C3",
                )
        if what == "peak":
            ax.plot(groups, data.stored_salib / scale, color="0.5", linestyle=":", label="outputs SALib stores")
        ax.set(xscale="log", yscale="log", xlabel="pick-freeze groups", ylabel=label)
        ax.set_xticks(groups, labels=[str(int(n)) for n in groups])
        ax.minorticks_off()
        ax.legend(fontsize="small")
    shape = "x".join(str(int(s)) for s in np.atleast_1d(data.attrs.get("shape", [])))
    timed = data.attrs.get("salib_cells_timed")
    note = f"; SALib timed on {timed} cells, extrapolated" if data.attrs.get("salib_time_extrapolated", 0) else ""
    axes[0].set_title(f"time, {shape} field{note}", fontsize="medium")
    axes[1].set_title("peak memory beyond the batch being fed", fontsize="medium")
    return fig


def sobol_maps(data: xr.Dataset, *, cmap: str = "viridis") -> Figure:
    """Per-cell first-order and total indices of each parameter at each kept time (left), and over time the
    whole-field indices and those of every scalar quantity such as SSIM (right).

    ``data`` is ``FieldSobol.to_dataset`` (``StudyResult.sensitivity``): ``S1``, ``ST`` ``(step, parameter,
    y, x)``, ``S1_field``/``ST_field`` and ``S1_<q>``/``ST_<q>`` ``(step, parameter)``, a ``time`` coordinate.
    """
    names, steps = list(data.parameter.values), data.sizes["step"]
    quantities = [
        str(name)[3:]
        for name in data.data_vars
        if str(name).startswith("S1_") and data[name].dims == ("step", "parameter")
    ]
    quantities.sort(key=lambda name: name != "field")  # the whole field first
    fig = Figure(figsize=(1.7 * 2 * steps + 4.5, 1.6 * len(names) + 1.2), layout="constrained")
    maps, lines = fig.subfigures(1, 2, width_ratios=[2 * steps, 3.2])
    axes = maps.subplots(len(names), 2 * steps, squeeze=False, sharex=True, sharey=True)
    extent = [float(data.x[0]), float(data.x[-1]), float(data.y[0]), float(data.y[-1])]
    times = data.time.values if "time" in data.coords else data.step.values
    for i, name in enumerate(names):
        for j in range(steps):
            for k, index in enumerate(("S1", "ST")):
                ax = axes[i, 2 * j + k]
                image = ax.imshow(
                    data[index].isel(step=j).sel(parameter=name).values,
                    origin="lower",
                    extent=extent,
                    vmin=0.0,
                    vmax=1.0,
                    cmap=cmap,
                )
                ax.set(xticks=[], yticks=[])
                if i == 0:
                    ax.set_title(f"{index}, t = {times[j]:.3g}", fontsize="small")
            axes[i, 0].set_ylabel(name)
    maps.colorbar(image, ax=axes, shrink=0.6, extend="both", label="Sobol index")
    title = f"per-cell indices ({data.attrs.get('n_groups')} pick-freeze groups)"
    if "S1_max_error" in data:
        worst = float(max(data.S1_max_error.max(), data.ST_max_error.max()))
        title += f"; largest error against the exact maps {worst:.2g}"
    maps.suptitle(title, fontsize="medium")
    panels = lines.subplots(len(quantities), 1, squeeze=False, sharex=True)[:, 0]
    for ax, quantity in zip(panels, quantities, strict=True):
        for i, name in enumerate(names):
            ax.plot(
                times,
                data[f"S1_{quantity}"].sel(parameter=name),
                color=f"C{i}",
                marker="o",
                markersize=3,
                label=f"{name}",
            )
            ax.plot(times, data[f"ST_{quantity}"].sel(parameter=name), color=f"C{i}", linestyle="--")
        title = "whole field (Gamboa et al.)" if quantity == "field" else f"{quantity} against the reference run"
        for bound in (0.0, 1.0):
            ax.axhline(bound, color="0.6", linestyle=":", linewidth=0.8, zorder=0)
        ax.set(ylim=_index_limits(data[f"S1_{quantity}"], data[f"ST_{quantity}"]), title=title,
               ylabel="index (solid S1, dashed ST)")  # fmt: skip
    panels[-1].set_xlabel("time")
    panels[0].legend(fontsize="x-small", ncol=2)
    return fig


def _index_limits(*indices: xr.DataArray, margin: float = 0.05) -> tuple[float, float]:
    """Axis limits that show [0, 1] and every estimated index, even one below 0 or above 1."""
    values = np.concatenate([np.ravel(index.values) for index in indices])
    values = values[np.isfinite(values)]
    return float(np.min(values, initial=0.0)) - margin, float(np.max(values, initial=1.0)) + margin
