"""Synthetic traces to replay: random layered DAGs (to measure the engine at any size) and online-training
studies built from rates (to project them to scales no machine here has)."""

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


def online_training(
    *,
    simulations: int = 16,
    in_flight: int = 4,
    steps: int = 100,
    chunk_steps: int = 10,
    step_seconds: float = 1 / 680,
    step_bytes: int = 100 * 100 * 4,
    receive_seconds: float = 3.5e-4,
    batch_size: int = 256,
    batch_seconds: float = 256 / 170_000,
    watermark: int = 1024,
    reuse: float = 1.0,
) -> Trace:
    """The DAG of an online-training study (as :meth:`kit.online.StudyResult.trace` records one), built from
    rates instead of a run: ``simulations`` runs of ``steps`` steps, ``in_flight`` at a time (run ``i`` starts
    after run ``i - in_flight`` ends), each streaming chunks of ``chunk_steps`` steps (``step_seconds`` and
    ``step_bytes`` per step) through a ``receive`` task of ``receive_seconds`` on the streaming host
    (``stream``: the study's receiving thread); training batches of ``batch_size`` samples
    (``batch_seconds`` each, on ``trainer``) start once ``watermark`` samples arrived, one after the other,
    each later one needing ``batch_size / reuse`` more samples (``reuse``: how often a buffer serves one).
    The defaults are this project's measured rates: a CPU core makes 680 implicit 100x100 heat steps/s, an
    H100 trains 170,000 samples/s at batch 256 (../shared/anchors.md), the study's receiving thread spends
    about 35 us of CPU per 100x100 step (``receive_cost_per_chunk`` of the ``online-training/data-plane``
    figure, 31 to 48 us on the 2-core CPU: 10 steps a chunk, 3.5e-4 s)."""
    for name, value in (("simulations", simulations), ("in_flight", in_flight), ("steps", steps),
                        ("chunk_steps", chunk_steps), ("batch_size", batch_size)):  # fmt: skip
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    if not reuse > 0 or watermark < 0:
        raise ValueError(f"reuse must be > 0 and watermark >= 0, got reuse={reuse!r}, watermark={watermark!r}")
    tasks, arrivals = [], []  # arrivals: (time the chunk's samples reach the study in the nominal run, receive id)
    chunks = -(-steps // chunk_steps)
    ends = {}
    for sim in range(simulations):
        start = ends.get(sim - in_flight, 0.0)
        previous = f"sim{sim - in_flight}-c{chunks - 1}" if sim >= in_flight else None
        for c in range(chunks):
            size = min(chunk_steps, steps - c * chunk_steps)
            chunk, receive = f"sim{sim}-c{c}", f"recv{sim}-c{c}"
            parents = (f"sim{sim}-c{c - 1}",) if c else ((previous,) if previous else ())
            end = start + size * step_seconds
            tasks.append(Task(chunk, "simulate", start, end, f"worker{sim % in_flight}", parents, "simulation",
                              output_bytes=size * step_bytes))  # fmt: skip
            tasks.append(Task(receive, "receive", end, end + receive_seconds, "stream", (chunk,), "other",
                              input_bytes=size * step_bytes, output_bytes=size * step_bytes))  # fmt: skip
            arrivals.append((end + receive_seconds, size, receive))
            start = end
        ends[sim] = start
    arrivals.sort()
    produced = np.cumsum([size for _, size, _ in arrivals])
    total = int(produced[-1])
    batches = int((total - watermark) * reuse // batch_size) + 1 if total >= watermark else 0
    clock, last, given = 0.0, None, -1  # given: the last arrival some batch already depends on
    for b in range(batches):
        needed = min(total, max(1, watermark + int(np.ceil(b * batch_size / reuse))))
        k = max(int(np.searchsorted(produced, needed)), given)
        parents = ((last,) if last else ()) + tuple(receive for _, _, receive in arrivals[given + 1 : k + 1])
        given, clock = k, max(clock, arrivals[k][0])
        last = f"train{b}"
        tasks.append(Task(last, "train", clock, clock + batch_seconds, "trainer", parents, "training",
                          input_bytes=batch_size * step_bytes))  # fmt: skip
        clock += batch_seconds
    attrs = {"simulations": simulations, "in_flight": in_flight, "batches": batches, "batch_size": batch_size,
             "samples": total}  # fmt: skip
    return Trace("online-training", tasks, attrs=attrs)
