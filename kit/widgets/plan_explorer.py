"""Move a budget slider and the chain is re-planned live: optimal against uniform, predicted peak and time,
and the chosen schedules drawn."""

from __future__ import annotations

import ipywidgets as widgets
import numpy as np
from IPython.display import display
from matplotlib.figure import Figure

from kit.memory.plan import least_peak, plan
from kit.memory.schedule import Costs
from kit.plots.memory import plan_schedule

MIB = 2**20


class PlanExplorer:
    """Explore the plans of a profiled chain (``kit.memory.profile``) over budgets.

    The slider reads MiB; ``budget_bytes`` is its value in bytes, what :func:`kit.memory.plan` takes.
    ``current`` holds the plans for that budget (``{"optimal": Plan, "uniform": Plan or None}``) and
    ``figure`` the trade-off curves beside their schedules, so the explorer can be driven and checked without
    a browser.
    """

    def __init__(self, profile, *, points: int = 24):
        self.costs = Costs.from_profile(profile)
        self.least = least_peak(self.costs)
        self.full = plan(self.costs, strategy="store_all").predicted_peak
        budgets = np.linspace(self.least, self.full, points).astype(int)
        self.curve = {name: [self._plan(int(b), name) for b in budgets] for name in ("optimal", "uniform")}
        self.budgets = budgets
        self.budget = widgets.FloatSlider(
            value=self.full / MIB, min=self.least / MIB, max=self.full / MIB, step=(self.full - self.least) / MIB / 100,
            readout_format=".3f", description="budget [MiB]", continuous_update=False,
            style={"description_width": "initial"}, layout={"width": "480px"},
        )  # fmt: skip
        self.output = widgets.Output()
        self.budget.observe(self._replan, names="value")
        self.widget = widgets.VBox([self.budget, self.output])
        self._replan()

    @property
    def budget_bytes(self) -> int:
        """The slider's budget in bytes (rounded down: a plan for it fits what the slider shows)."""
        return int(self.budget.value * MIB)

    def _plan(self, budget: int, strategy: str):
        try:
            return plan(self.costs, budget, strategy)
        except ValueError:  # this strategy cannot fit the budget
            return None

    def _replan(self, _change=None) -> None:
        budget = self.budget_bytes
        self.current = {name: self._plan(budget, name) for name in ("optimal", "uniform")}
        self.figure = fig = Figure(figsize=(12, 4.2), layout="constrained")
        curve, schedules = fig.subfigures(1, 2, width_ratios=(1, 1.2))
        ax = curve.subplots()
        for i, (name, plans) in enumerate(self.curve.items()):
            times = [p.predicted_time if p is not None else np.nan for p in plans]
            ax.plot(self.budgets / MIB, times, color=f"C{i}", label=f"{name} (predicted)")
            chosen = self.current[name]
            if chosen is not None:
                ax.plot(chosen.predicted_peak / MIB, chosen.predicted_time, "o", color=f"C{i}")
        ax.axvline(budget / MIB, color="0.5", linestyle=":")
        ax.set(xlabel="budget [MiB]", ylabel="time of a training step [s]")
        ax.legend(fontsize="small")
        plan_schedule(self.current, self.costs, fig=schedules)
        with self.output:
            self.output.clear_output(wait=True)
            display(fig)

    def _ipython_display_(self) -> None:
        display(self.widget)
