"""A slider per simulator parameter and one for time; the field and its time evolution redraw on every change."""

from __future__ import annotations

import ipywidgets as widgets
import numpy as np
import xarray as xr
from IPython.display import display

from kit.plots import field_evolution


class SimulatorExplorer:
    """Explore a simulator: move a parameter slider to rerun it, the step slider to move in time.

    ``trajectory`` holds the run (dims ``time, y, x``), ``frame`` the field shown (length 1 in time) and
    ``figure`` the field beside its evolution (mean, min, max over time), so the explorer can be driven and
    checked without a browser.
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
        sim = self.simulator
        steps = list(sim.run(self.point, seed=self.seed))
        self.trajectory = xr.DataArray(
            np.stack([s.field for s in steps]),
            dims=("time", "y", "x"),
            coords={"time": [s.time for s in steps], "y": sim.y, "x": sim.x},
            name=getattr(sim, "field_name", "field"),
            attrs={"units": getattr(sim, "units", "")},
        )
        self._redraw()

    def _redraw(self, _change=None) -> None:
        k = self.step.value - 1
        self.frame = self.trajectory.isel(time=[k])
        self.figure = field_evolution(self.trajectory, k)
        with self.output:
            self.output.clear_output(wait=True)
            display(self.figure)

    def _ipython_display_(self) -> None:
        display(self.widget)
