"""Snapshots of 2D fields over time."""

from __future__ import annotations

import xarray as xr
from matplotlib.figure import Figure


def field_snapshots(field: xr.DataArray, *, row: str = "point", cmap: str = "inferno") -> Figure:
    """A grid of images: one row per ``row`` coordinate, one column per time, shared colour scale.

    ``field`` has dims ``(row, "time", "y", "x")`` or ``("time", "y", "x")``.
    """
    if row not in field.dims:
        field = field.expand_dims(row)
    missing = {row, "time", "y", "x"} - set(field.dims)
    if missing:
        raise ValueError(f"field_snapshots needs dims ({row!r}, 'time', 'y', 'x'); {sorted(missing)} missing")
    field = field.transpose(row, "time", "y", "x")
    nrows, ncols = field.sizes[row], field.sizes["time"]
    fig = Figure(figsize=(2.2 * ncols + 0.8, 2.1 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=True, sharey=True)
    vmin, vmax = float(field.min()), float(field.max())
    extent = [float(field.x[0]), float(field.x[-1]), float(field.y[0]), float(field.y[-1])]
    units = field.attrs.get("units", "")
    for i in range(nrows):
        for j in range(ncols):
            ax = axes[i, j]
            image = ax.imshow(
                field[i, j].values, origin="lower", extent=extent, vmin=vmin, vmax=vmax, cmap=cmap, aspect="equal"
            )
            if i == 0:
                ax.set_title(f"t = {float(field.time[j]):.3g}")
            if j == 0:
                ax.set_ylabel(f"{row} {i}\ny")
            if i == nrows - 1:
                ax.set_xlabel("x")
    fig.colorbar(image, ax=axes, shrink=0.8, label=f"{field.name or ''} [{units}]".strip())
    return fig
