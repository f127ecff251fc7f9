"""The replay engine's speed on seeded random layered DAGs, in events per second (measured, never asserted).

Example
-------
>>> data = speed(200, repeats=1)
>>> data.events.values.tolist()
[200, 494]
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from kit.replay.platform import example
from kit.replay.simulate import replay
from kit.replay.trace import Task, Trace

#: Scenarios: name -> (example platform, placement).
SCENARIOS = {"one-host": ("laptop", "laptop"), "round-robin": ("hpc-cloud", "round-robin")}


def layered_trace(tasks: int, *, width: int = 100, parents: int = 2, seed: int = 0) -> Trace:
    """``tasks`` tasks in layers of ``width``, each with ``parents`` parents drawn (with repeats, kept once)
    from the layer before, a runtime uniform in [0.5, 1.5] s and a 1 MB output."""
    rng = np.random.default_rng(seed)
    runtimes = rng.uniform(0.5, 1.5, size=tasks)
    picks = rng.integers(0, width, size=(tasks, parents))
    trace = []
    for i in range(tasks):
        previous = (i // width - 1) * width
        chosen = sorted({f"t{previous + k}" for k in picks[i]}) if previous >= 0 else ()
        trace.append(Task(f"t{i}", "layer", 0.0, float(runtimes[i]), "recorder", tuple(chosen), "simulation",
                          output_bytes=10**6))  # fmt: skip
    return Trace("layered", trace)


def speed(tasks: int = 100_000, *, repeats: int = 3, seed: int = 0) -> xr.Dataset:
    """Replay :func:`layered_trace` in each of :data:`SCENARIOS`, the fastest of ``repeats`` runs: per scenario
    ``events``, ``seconds`` (wall time of :func:`replay`), ``events_per_second`` and the ``makespan``."""
    trace = layered_trace(tasks, seed=seed)
    rows = []
    for platform, placement in SCENARIOS.values():
        runs = [replay(trace, example(platform), placement) for _ in range(repeats)]
        best = min(runs, key=lambda run: run.seconds)
        rows.append((best.events, best.seconds, best.events_per_second, best.makespan))
    events, seconds, rates, makespans = zip(*rows, strict=True)
    return xr.Dataset(
        {
            "events": ("scenario", list(events)),
            "seconds": ("scenario", list(seconds), {"units": "s"}),
            "events_per_second": ("scenario", list(rates), {"units": "1/s"}),
            "makespan": ("scenario", list(makespans), {"units": "s"}),
        },
        coords={"scenario": list(SCENARIOS)},
        attrs={"tasks": tasks, "seed": seed, "repeats": repeats},
    )
