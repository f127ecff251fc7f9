"""A slider per simulator parameter and one for time; the field redraws on every change."""

from __future__ import annotations

import ipywidgets as widgets
import numpy as np
import xarray as xr
from IPython.display import display

from kit.plots import field_snapshots


class SimulatorExplorer:
    """Explore a simulator: move a parameter slider to rerun it, the step slider to move in time.

    ``frame`` holds the field shown (a DataArray with dims ``time, y, x`` of length 1 in time), so the
    explorer can be driven and checked without a browser.
    """

    def __init__(self, simulator, point=None, *, seed: int | None = None):
        self.simulator, self.seed = simulator, seed
        space = simulator.space
        start = space.to_dict(point) if point is not None else dict(zip(space.names, space.bounds.mean(1), strict=True))
        self.sliders = {
            name: widgets.FloatSlider(
                value=start[name], min=low, max=high, step=(high - low) / 100, description=name, continuous_update=False
            )
            for name, (low, high) in zip(space.names, space.bounds, strict=True)
        }
        self.step = widgets.IntSlider(
            value=simulator.steps, min=1, max=simulator.steps, description="step", continuous_update=False
        )
        self.output = widgets.Output()
        for slider in self.sliders.values():
            slider.observe(self._rerun, names="value")
        self.step.observe(self._redraw, names="value")
        self.widget = widgets.HBox([widgets.VBox([*self.sliders.values(), self.step]), self.output])
        self._rerun()

    @property
    def point(self) -> dict[str, float]:
        return {name: slider.value for name, slider in self.sliders.items()}

    def _rerun(self, _change=None) -> None:
        # The explorer keeps one whole trajectory so the step slider moves without rerunning.
        steps = list(self.simulator.run(self.point, seed=self.seed))
        self._fields = np.stack([s.field for s in steps])
        self._times = [s.time for s in steps]
        self._redraw()

    def _redraw(self, _change=None) -> None:
        sim, k = self.simulator, self.step.value
        self.frame = xr.DataArray(
            self._fields[k - 1][None],
            dims=("time", "y", "x"),
            coords={"time": [self._times[k - 1]], "y": sim.y, "x": sim.x},
            name=getattr(sim, "field_name", "field"),
            attrs={"units": getattr(sim, "units", "")},
        )
        fig = field_snapshots(self.frame)
        with self.output:
            self.output.clear_output(wait=True)
            display(fig)

    def _ipython_display_(self) -> None:
        display(self.widget)
