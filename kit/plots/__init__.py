"""Figures from results: xarray in, ``matplotlib.figure.Figure`` out (no pyplot state); in a Jupyter kernel
figures display as PNG images."""

from kit.plots.display import register_png_display
from kit.plots.fields import field_evolution, field_snapshots
from kit.plots.memory import memory_tradeoff, offloading, partitioning, plan_schedule, profiler_accuracy, real_models
from kit.plots.online import (
    buffer_policies,
    data_parallel,
    data_plane,
    online_vs_offline,
    streaming_efficiency,
    study_monitor,
)
from kit.plots.replay import (
    factor_indices,
    fidelity,
    gantt,
    placements,
    replay_speed,
    scale_projection,
    simgrid_agreement,
)
from kit.plots.sampling import sampler_comparison
from kit.plots.save import save
from kit.plots.sensitivity import interval_coverage, salib_benchmark, sobol_convergence, sobol_maps

__all__ = [
    "buffer_policies",
    "data_parallel",
    "data_plane",
    "factor_indices",
    "fidelity",
    "field_evolution",
    "field_snapshots",
    "gantt",
    "memory_tradeoff",
    "offloading",
    "online_vs_offline",
    "partitioning",
    "placements",
    "plan_schedule",
    "profiler_accuracy",
    "real_models",
    "replay_speed",
    "interval_coverage",
    "salib_benchmark",
    "sampler_comparison",
    "save",
    "scale_projection",
    "simgrid_agreement",
    "sobol_convergence",
    "sobol_maps",
    "streaming_efficiency",
    "study_monitor",
]

register_png_display()
