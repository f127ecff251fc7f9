"""How fast the replay engine runs: replay time and events per second against trace size."""

from __future__ import annotations

import numpy as np
import xarray as xr

from kit.replay.platform import example
from kit.replay.simulate import replay
from kit.replay.workloads import layered_dag


def replay_speed(
    sizes=(1_000, 10_000, 100_000),
    *,
    platform: str = "continuum",
    placements=("cloud-1", "round-robin"),
    width: int = 100,
    repeats: int = 3,
    seed: int = 0,
) -> xr.Dataset:
    """Replay random layered DAGs (:func:`~kit.replay.workloads.layered_dag`) of ``sizes`` tasks on an
    example ``platform`` under each of ``placements`` (one host: no transfers; a strategy spreading tasks:
    transfers sharing links); dims ``placement, tasks``: ``seconds`` (median of ``repeats``), ``events``,
    ``events_per_second``, ``makespan``."""
    model = example(platform)
    shape = (len(placements), len(sizes))
    values = {key: np.zeros(shape) for key in ("seconds", "events", "events_per_second", "makespan")}
    for k, size in enumerate(sizes):
        trace = layered_dag(int(size), width=width, seed=seed)
        for i, placement in enumerate(placements):
            runs = [replay(trace, model, placement, seed=seed) for _ in range(repeats)]
            seconds = float(np.median([run.seconds for run in runs]))
            values["seconds"][i, k], values["events"][i, k] = seconds, runs[0].events
            values["events_per_second"][i, k] = runs[0].events / seconds
            values["makespan"][i, k] = runs[0].makespan
    data = xr.Dataset(
        {key: (("placement", "tasks"), value) for key, value in values.items()},
        coords={"placement": list(placements), "tasks": np.asarray(sizes, dtype=np.int64)},
    )
    data["seconds"].attrs["units"] = data["makespan"].attrs["units"] = "s"
    data["events_per_second"].attrs["units"] = "1/s"
    return data.assign_attrs(platform=platform, width=width, repeats=repeats, seed=seed)
