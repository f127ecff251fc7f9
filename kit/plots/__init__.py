"""Figures from results: xarray in, ``matplotlib.figure.Figure`` out (no pyplot state)."""

from kit.plots.fields import field_snapshots
from kit.plots.online import buffer_policies, online_vs_offline, streaming_efficiency, study_monitor
from kit.plots.save import save
from kit.plots.sensitivity import sobol_convergence

__all__ = [
    "buffer_policies",
    "field_snapshots",
    "online_vs_offline",
    "save",
    "sobol_convergence",
    "streaming_efficiency",
    "study_monitor",
]
