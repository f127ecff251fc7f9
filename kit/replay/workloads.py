"""Synthetic traces to replay: random layered DAGs, for measuring the engine at any size."""

from __future__ import annotations

import numpy as np

from kit.replay.trace import Task, Trace


def layered_dag(
    tasks: int,
    *,
    width: int = 100,
    fan_in: int = 2,
    runtime=(0.01, 0.1),
    output_bytes=(1e3, 1e6),
    seed: int = 0,
) -> Trace:
    """``tasks`` tasks in layers of ``width``; each task after the first layer reads from ``fan_in`` distinct
    tasks of the layer before (fewer if the layer is smaller). Runtimes (s) and output sizes (bytes) are
    uniform in their ranges; the recorded times lay the layers one after the other on host ``recorder``."""
    if isinstance(tasks, bool) or not isinstance(tasks, int) or tasks < 1:
        raise ValueError(f"tasks must be an int >= 1, got {tasks!r}")
    if width < 1 or fan_in < 1:
        raise ValueError(f"width and fan_in must be >= 1, got width={width!r}, fan_in={fan_in!r}")
    rng = np.random.default_rng(seed)
    seconds = rng.uniform(*runtime, tasks)
    sizes = rng.uniform(*output_bytes, tasks).astype(np.int64)
    out, layer_start = [], 0.0
    for first in range(0, tasks, width):
        layer = range(first, min(first + width, tasks))
        previous = range(max(0, first - width), first)
        for i in layer:
            chosen = rng.choice(len(previous), size=min(fan_in, len(previous)), replace=False) if previous else []
            parents = tuple(f"t{previous[j]}" for j in sorted(chosen))
            start = layer_start
            out.append(Task(f"t{i}", "task", start, start + float(seconds[i]), "recorder", parents,
                            output_bytes=int(sizes[i])))  # fmt: skip
        layer_start += float(runtime[1])
    return Trace(f"layered-{tasks}", out, attrs={"width": width, "fan_in": fan_in, "seed": seed})
