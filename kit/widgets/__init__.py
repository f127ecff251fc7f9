"""Interactive dashboards (ipywidgets) and live figures. Built only when a notebook asks (``interactive=True``)."""

from kit.widgets.deployment import DeploymentExplorer
from kit.widgets.explorer import SimulatorExplorer
from kit.widgets.live import LiveFigure
from kit.widgets.monitor import StudyMonitor
from kit.widgets.plan_explorer import PlanExplorer
from kit.widgets.sobol_maps import SobolMapExplorer

__all__ = [
    "DeploymentExplorer",
    "LiveFigure",
    "PlanExplorer",
    "SimulatorExplorer",
    "SobolMapExplorer",
    "StudyMonitor",
]
