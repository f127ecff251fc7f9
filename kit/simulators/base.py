"""Types shared by the simulators."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class Step:
    """One time step yielded by a simulator's ``run``.

    Attributes
    ----------
    index
        Step number, ``1..steps``.
    time
        Simulated time after the step.
    field
        The state after the step, a fresh array owned by the caller.
    """

    index: int
    time: float
    field: np.ndarray


class Simulator:
    """What the kit's simulators share: subclasses set ``space``, ``steps``, ``x``, ``y``, ``field_name``,
    ``units``, ``field_range`` and implement ``run(params, seed)``, a generator of :class:`Step`."""

    def example(self) -> dict[str, float]:
        """A parameter point whose run shows what the model does: the centre of ``space`` unless a simulator
        knows a better one (where dashboards start)."""
        return dict(zip(self.space.names, self.space.bounds.mean(1).tolist(), strict=True))

    def trajectory(self, params, seed=None):
        """All steps of ``run`` as an ``xarray.DataArray`` ``(time, y, x)``, built only when asked.

        Examples
        --------
        >>> from kit.simulators import Heat2D
        >>> da = Heat2D(n=8, steps=4).trajectory([300.0, 100.0, 200.0, 300.0, 400.0])
        >>> da.dims, da.shape, da.name, da.attrs["units"]
        (('time', 'y', 'x'), (4, 8, 8), 'temperature', 'K')
        """
        import xarray as xr

        steps = list(self.run(params, seed))
        return xr.DataArray(
            np.stack([s.field for s in steps]),
            dims=("time", "y", "x"),
            coords={"time": [s.time for s in steps], "y": self.y, "x": self.x},
            name=self.field_name,
            attrs={"units": self.units},
        )
