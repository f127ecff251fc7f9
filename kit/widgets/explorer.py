"""A slider per simulator parameter and one for time; the field and its time evolution redraw on every change."""

from __future__ import annotations

import ipywidgets as widgets
import numpy as np
import xarray as xr
from IPython.display import display
from matplotlib.ticker import ScalarFormatter

from kit.plots import field_evolution

#: Width of the slider labels and of the sliders with their readouts: wide enough that nothing is clipped.
LABELS = {"description_width": "64px"}
SLIDER = {"width": "340px"}


class SimulatorExplorer:
    """Explore a simulator: move a parameter slider to rerun it, the time slider to move in time.

    It starts at ``point``, or at the simulator's ``example()`` (a point whose field has structure).
    ``trajectory`` holds the run (dims ``time, y, x``), ``frame`` the field shown (length 1 in time) and
    ``figure`` the field beside its evolution (mean, min, max over time), so the explorer can be driven and
    checked without a browser. The time slider's value is the step (1..steps), its readout the time.
    """

    def __init__(self, simulator, point=None, *, seed: int | None = None):
        self.simulator, self.seed = simulator, seed
        space = simulator.space
        start = space.to_dict(point if point is not None else simulator.example())
        self.sliders = {
            name: widgets.FloatSlider(
                value=start[name], min=low, max=high, step=(high - low) / 100, description=name,
                continuous_update=False, style=LABELS, layout=SLIDER,
            )
            for name, (low, high) in zip(space.names, space.bounds, strict=True)
        }  # fmt: skip
        self.trajectory = self._run()
        self.step = widgets.SelectionSlider(
            options=time_labels(self.trajectory.time.values), value=self.trajectory.sizes["time"], description="time",
            continuous_update=False, style=LABELS, layout=SLIDER,
        )  # fmt: skip
        self.output = widgets.Output()
        for slider in self.sliders.values():
            slider.observe(self._rerun, names="value")
        self.step.observe(self._redraw, names="value")
        controls = widgets.VBox([*self.sliders.values(), self.step], layout={"flex": "0 0 auto"})
        self.widget = widgets.HBox([controls, self.output], layout={"flex_flow": "row wrap"})
        self._redraw()

    @property
    def point(self) -> dict[str, float]:
        return {name: slider.value for name, slider in self.sliders.items()}

    def _run(self) -> xr.DataArray:
        # The explorer keeps one whole trajectory so the time slider moves without rerunning.
        sim = self.simulator
        steps = list(sim.run(self.point, seed=self.seed))
        return xr.DataArray(
            np.stack([s.field for s in steps]),
            dims=("time", "y", "x"),
            coords={"time": [s.time for s in steps], "y": sim.y, "x": sim.x},
            name=getattr(sim, "field_name", "field"),
            attrs={"units": getattr(sim, "units", "")},
        )

    def _rerun(self, _change=None) -> None:
        self.trajectory = self._run()
        self._redraw()

    def _redraw(self, _change=None) -> None:
        k = self.step.value - 1
        self.frame = self.trajectory.isel(time=[k])
        self.figure = field_evolution(self.trajectory, k)
        plain_scale(self.figure, colour_range(self.trajectory))
        with self.output:
            self.output.clear_output(wait=True)
            display(self.figure)

    def _ipython_display_(self) -> None:
        display(self.widget)


def time_labels(times) -> list[tuple[str, int]]:
    """``(readout, step)`` options of a time slider: each time with the fewest digits (3 or more) that tell
    all times apart, steps counted from 1."""
    for digits in range(3, 18):
        labels = [f"{t:.{digits}g}" for t in times]
        if len(set(labels)) == len(labels):
            break
    return [(label, k) for k, label in enumerate(labels, start=1)]


def colour_range(field: xr.DataArray) -> tuple[float, float]:
    """``(low, high)`` of ``field``; a constant field (up to rounding) gets 1 % of its value either side (1
    either side of 0), not a range of rounding noise."""
    low, high = float(field.min()), float(field.max())
    if high - low > 1e-9 * max(abs(low), abs(high)):
        return low, high
    centre = (low + high) / 2
    pad = 0.01 * abs(centre) or 1.0
    return centre - pad, centre + pad


def plain_scale(figure, limits: tuple[float, float]) -> None:
    """Set the colour scale of a :func:`kit.plots.field_evolution` figure to ``limits`` and its curve's axis
    just around them, tick labels without offset; the field's name and units label the curve's axis only
    (not the colorbar beside it too)."""
    (image,) = (image for ax in figure.axes for image in ax.images)
    curve_ax = next(ax for ax in figure.axes if ax.lines)
    image.set_clim(*limits)
    margin = 0.05 * (limits[1] - limits[0])
    curve_ax.set_ylim(limits[0] - margin, limits[1] + margin)
    image.colorbar.set_label("")
    image.colorbar.formatter = ScalarFormatter(useOffset=False)
    curve_ax.yaxis.set_major_formatter(ScalarFormatter(useOffset=False))
