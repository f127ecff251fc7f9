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


def field_evolution(trajectory: xr.DataArray, step: int, *, cmap: str = "inferno") -> Figure:
    """The field of ``trajectory`` (dims ``time, y, x``) at index ``step`` beside its time evolution: spatial
    mean, min and max over time, with the step shown marked."""
    missing = {"time", "y", "x"} - set(trajectory.dims)
    if missing:
        raise ValueError(f"field_evolution needs dims ('time', 'y', 'x'); {sorted(missing)} missing")
    if not 0 <= step < trajectory.sizes["time"]:
        raise ValueError(f"step must be in [0, {trajectory.sizes['time']}), got {step!r}")
    trajectory = trajectory.transpose("time", "y", "x")
    fig = Figure(figsize=(8.4, 3.3), layout="constrained")
    image_ax, curve_ax = fig.subplots(1, 2, width_ratios=(1, 1.3))
    extent = [float(trajectory.x[0]), float(trajectory.x[-1]), float(trajectory.y[0]), float(trajectory.y[-1])]
    low, high = float(trajectory.min()), float(trajectory.max())
    image = image_ax.imshow(
        trajectory[step].values, origin="lower", extent=extent, vmin=low, vmax=high, cmap=cmap, aspect="equal"
    )
    label = f"{trajectory.name or ''} [{trajectory.attrs.get('units', '')}]".strip()
    fig.colorbar(image, ax=image_ax, shrink=0.8, label=label)
    at = float(trajectory.time[step])
    image_ax.set(title=f"t = {at:.3g}", xlabel="x", ylabel="y")
    space = ("y", "x")
    curve_ax.fill_between(trajectory.time, trajectory.min(space), trajectory.max(space), alpha=0.25, label="min to max")
    curve_ax.plot(trajectory.time, trajectory.mean(space), label="mean")
    curve_ax.axvline(at, color="0.4", linestyle=":")
    curve_ax.set(title="over the plate, in time", xlabel="time", ylabel=label)
    curve_ax.legend(fontsize="small")
    return fig
