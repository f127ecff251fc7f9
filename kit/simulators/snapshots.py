"""A few time steps of a few simulations, streamed, as one labelled Dataset."""

from __future__ import annotations

import numpy as np


def snapshot_steps(steps: int, count: int) -> list[int]:
    """``count`` step indices spread evenly over ``1..steps``, the last step always included."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"count must be an int >= 1, got {count!r}")
    return sorted({int(i) for i in np.linspace(steps, 1, min(count, steps)).round()})


def snapshots(simulator, points, *, count: int = 4, seed: int | None = None):
    """Run ``simulator`` at each point and keep ``count`` evenly spread time steps.

    Only the kept steps are stored; the rest stream past. Returns a Dataset with the field
    (dims ``point, time, y, x``) and the parameter values (dims ``point, parameter``).

    Parameters
    ----------
    simulator
        Any kit simulator (``space``, ``steps``, ``x``, ``y``, ``run``).
    points
        Array ``(n_points, d)`` or a list of ``{name: value}`` mappings, checked against its space.
    """
    import xarray as xr

    space = simulator.space
    rows = [space.validate(p) for p in points] if not isinstance(points, np.ndarray) else space.validate(points)
    rows = np.atleast_2d(np.asarray(rows, dtype=float))
    keep = set(snapshot_steps(simulator.steps, count))
    fields, times = [], []
    for row in rows:
        kept = [step for step in simulator.run(row, seed=seed) if step.index in keep]
        fields.append(np.stack([step.field for step in kept]))
        times = [step.time for step in kept]
    name = getattr(simulator, "field_name", "field")
    field = xr.DataArray(
        np.stack(fields),
        dims=("point", "time", "y", "x"),
        coords={"time": times, "y": simulator.y, "x": simulator.x},
        name=name,
        attrs={"units": getattr(simulator, "units", "")},
    )
    parameters = xr.DataArray(rows, dims=("point", "parameter"), coords={"parameter": list(space.names)})
    return xr.Dataset(
        {name: field, "parameters": parameters},
        coords={"point": np.arange(len(rows))},
        attrs={"simulator": repr(simulator)},
    )
