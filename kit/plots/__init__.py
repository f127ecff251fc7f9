"""Figures from results: xarray in, ``matplotlib.figure.Figure`` out (no pyplot state)."""

from kit.plots.fields import field_snapshots
from kit.plots.memory import memory_tradeoff, offloading, partitioning, profiler_accuracy
from kit.plots.online import buffer_policies, online_vs_offline, streaming_efficiency, study_monitor
from kit.plots.replay import fidelity, replay_speed
from kit.plots.sampling import sampler_comparison
from kit.plots.save import save
from kit.plots.sensitivity import salib_benchmark, sobol_convergence, sobol_maps

__all__ = [
    "buffer_policies",
    "fidelity",
    "field_snapshots",
    "memory_tradeoff",
    "offloading",
    "online_vs_offline",
    "partitioning",
    "replay_speed",
    "profiler_accuracy",
    "salib_benchmark",
    "sampler_comparison",
    "save",
    "sobol_convergence",
    "sobol_maps",
    "streaming_efficiency",
    "study_monitor",
]
