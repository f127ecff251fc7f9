"""Figures from results: xarray in, ``matplotlib.figure.Figure`` out (no pyplot state)."""

from kit.plots.fields import field_snapshots
from kit.plots.save import save

__all__ = ["field_snapshots", "save"]
