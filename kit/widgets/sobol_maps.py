"""Browse Sobol' maps: a parameter menu and a time slider redraw the first-order and total maps."""

from __future__ import annotations

import ipywidgets as widgets
import xarray as xr
from IPython.display import display
from matplotlib.figure import Figure


class SobolMapExplorer:
    """Explore ``FieldSobol.to_dataset`` output (``StudyResult.sensitivity``): pick a parameter and a time.

    ``frame`` holds the maps shown (``S1`` and ``ST`` of one parameter at one step), so the explorer can be
    driven and checked without a browser.
    """

    def __init__(self, data: xr.Dataset):
        missing = {"S1", "ST"} - set(data.data_vars)
        if missing:
            raise ValueError(f"data must hold Sobol maps S1 and ST (FieldSobol.to_dataset); missing {sorted(missing)}")
        self.data = data
        self.parameter = widgets.Dropdown(options=[str(p) for p in data.parameter.values], description="parameter")
        self.step = widgets.SelectionSlider(
            options=[int(s) for s in data.step.values],
            value=int(data.step.values[-1]),
            description="step",
            continuous_update=False,
        )
        self.output = widgets.Output()
        self.parameter.observe(self._redraw, names="value")
        self.step.observe(self._redraw, names="value")
        self.widget = widgets.HBox([widgets.VBox([self.parameter, self.step]), self.output])
        self._redraw()

    def _redraw(self, _change=None) -> None:
        self.frame = self.data[["S1", "ST"]].sel(parameter=self.parameter.value, step=self.step.value)
        fig = Figure(figsize=(7, 3.2), layout="constrained")
        axes = fig.subplots(1, 2)
        when = f"t = {float(self.frame.time):.3g}" if "time" in self.frame.coords else f"step {self.step.value}"
        for ax, index in zip(axes, ("S1", "ST"), strict=True):
            image = ax.imshow(self.frame[index].values, origin="lower", vmin=0.0, vmax=1.0, cmap="viridis")
            ax.set(title=f"{index} of {self.parameter.value}, {when}", xticks=[], yticks=[])
        fig.colorbar(image, ax=axes, shrink=0.8, label="Sobol index")
        with self.output:
            self.output.clear_output(wait=True)
            display(fig)

    def _ipython_display_(self) -> None:
        display(self.widget)
