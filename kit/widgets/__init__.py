"""Interactive dashboards (ipywidgets). Built only when a notebook asks (``interactive=True``)."""

from kit.widgets.explorer import SimulatorExplorer

__all__ = ["SimulatorExplorer"]
