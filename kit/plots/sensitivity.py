"""Figures of sensitivity indices."""

from __future__ import annotations

import xarray as xr
from matplotlib.figure import Figure


def sobol_convergence(data: xr.Dataset) -> Figure:
    """First-order and total indices against the number of pick-freeze groups, with confidence bands and
    the exact values dashed."""
    fig = Figure(figsize=(10, 4), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    for ax, index, title in zip(axes, ("S1", "ST"), ("first order", "total"), strict=True):
        for i, name in enumerate(data.parameter.values):
            color = f"C{i % 10}"
            curve = data.sel(parameter=name)
            ax.plot(curve.groups, curve[index], color=color, marker="o", markersize=3, label=str(name))
            if f"{index}_low" in data:
                ax.fill_between(curve.groups, curve[f"{index}_low"], curve[f"{index}_high"], color=color, alpha=0.15)
            ax.axhline(float(curve[f"{index}_exact"]), color=color, linestyle="--", linewidth=0.8)
        ax.set(xscale="log", xlabel="pick-freeze groups", title=f"{title} ({data.attrs.get('model', '')})")
    axes[0].set_ylabel("Sobol index (dashed: exact)")
    axes[1].legend(ncol=2, fontsize="small")
    return fig
