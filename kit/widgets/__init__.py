"""Interactive dashboards (ipywidgets) and live figures. Built only when a notebook asks (``interactive=True``)."""

from kit.widgets.explorer import SimulatorExplorer
from kit.widgets.live import LiveFigure, live_study_monitor

__all__ = ["LiveFigure", "SimulatorExplorer", "live_study_monitor"]
