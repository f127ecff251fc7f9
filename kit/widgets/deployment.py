"""Choose a platform and a placement strategy: the trace is replayed and its Gantt chart and metrics redrawn."""

from __future__ import annotations

import html

import ipywidgets as widgets
from IPython.display import display

from kit.plots.replay import gantt
from kit.replay.analysis import latency_split
from kit.replay.platform import EXAMPLES, example
from kit.replay.simulate import replay
from kit.replay.strategies import STRATEGIES


class DeploymentExplorer:
    """Replay a trace (``kit.replay.Trace``) on a platform under a placement strategy of ``kit.replay.strategies``.

    ``platforms`` maps names to :class:`kit.replay.Platform` (default: the kit's examples). ``current`` holds
    the :class:`kit.replay.Replay` shown (None when the strategy does not apply to the platform, ``error``
    then says why), ``metrics`` its makespan, bytes moved and critical-path split, and ``figure`` the Gantt
    chart, so the explorer can be driven and checked without a browser.
    """

    def __init__(self, trace, *, platforms: dict | None = None, strategy: str = "heft", seed: int = 0):
        self.trace, self.seed = trace, seed
        self.platforms = platforms or {name: example(name) for name in EXAMPLES}
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}; choose one of {sorted(STRATEGIES)}")
        self.platform = widgets.Dropdown(options=list(self.platforms), description="platform")
        self.strategy = widgets.Dropdown(options=list(STRATEGIES), value=strategy, description="strategy")
        self.by = widgets.ToggleButtons(options=["host", "tier"], description="rows")
        self.summary = widgets.HTML()
        self.output = widgets.Output()
        for control in (self.platform, self.strategy, self.by):
            control.observe(self._replay, names="value")
        self.widget = widgets.HBox([widgets.VBox([self.platform, self.strategy, self.by, self.summary]), self.output])
        self._replay()

    def _replay(self, _change=None) -> None:
        platform = self.platforms[self.platform.value]
        try:
            self.current, self.error = replay(self.trace, platform, self.strategy.value, seed=self.seed), None
        except ValueError as exc:  # e.g. a tier strategy on a platform without that tier
            self.current, self.error = None, str(exc)
        self.figure = gantt(self.current, self.by.value, platform=platform) if self.current else None
        self.metrics = _metrics(self.current) if self.current else {}
        rows = [f"<b>{key}</b>: {value:.4g} {UNITS[key]}" for key, value in self.metrics.items()]
        if self.error:
            rows = [
                f"<b>{self.strategy.value!r} does not apply to {self.platform.value!r}</b>: {html.escape(self.error)}"
            ]
        self.summary.value = "<br>".join(rows)
        with self.output:
            self.output.clear_output(wait=True)
            if self.figure is not None:
                display(self.figure)

    def _ipython_display_(self) -> None:
        display(self.widget)


UNITS = {"makespan": "s", "bytes moved": "bytes", "hosts used": "", "critical compute": "s",
         "critical transfer": "s", "critical waiting": "s"}  # fmt: skip


def _metrics(result) -> dict[str, float]:
    """Makespan, bytes moved between hosts, hosts used, and the critical path's compute, transfer and waiting."""
    split = latency_split(result)
    return {
        "makespan": result.makespan,
        "bytes moved": result.bytes_moved,
        "hosts used": len(set(result.hosts.values())),
        **{f"critical {what}": float(split[f"{what}_time"].sum()) for what in ("compute", "transfer", "waiting")},
    }
