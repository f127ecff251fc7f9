"""Scale projection: an online-training study replayed with more and more simulation cores feeding one GPU
trainer, to see where the trainer stops being starved and what limits it next (streaming, network)."""

from __future__ import annotations

import functools

import numpy as np
import xarray as xr

from kit.replay.platform import Host, Link, Platform
from kit.replay.simulate import replay
from kit.replay.workloads import online_training

#: Where each component runs: simulations on the HPC partition, receiving and training on the GPU node.
PLACEMENT = {"simulation": "hpc", "other": "gpu-node", "training": "gpu-node"}


def gpu_platform(cores: int, *, bandwidth: float = 1.25e9, latency: float = 1e-4, stream_cores: int = 1) -> Platform:
    """An HPC partition of ``cores`` simulation cores linked (``bandwidth`` bytes/s, ``latency`` s) to a GPU
    node whose ``stream_cores`` cores receive chunks and run the trainer (kit's study does both in one
    process, its receiving thread and trainer sharing Python's lock: 1)."""
    hosts = {"hpc": Host("hpc", "hpc", int(cores), 1.0), "gpu-node": Host("gpu-node", "hpc", int(stream_cores), 1.0)}
    return Platform(hosts, [Link(("hpc", "gpu-node"), float(bandwidth), float(latency))])


def scale_projection(
    cores=(1, 4, 16, 64, 256, 1024, 2000),
    scenarios: dict | None = None,
    *,
    steps: int = 100,
    reuse: float = 1.0,
    **workload,
) -> xr.Dataset:
    """Replay :func:`~kit.replay.workloads.online_training` with one simulation per core on
    :func:`gpu_platform` for each number of ``cores``, under each scenario (``{name: {"bandwidth": ...,
    "receive_seconds": ..., "chunk_steps": ..., "stream_cores": ...}}``; default: kit's measured streaming
    cost and a 10 Gbit/s link, the same with free streaming, and with a 1 Gbit/s link). Dims ``scenario,
    cores``: ``makespan``, ``trained_per_second`` (samples trained per second), ``produced_per_second``,
    ``trainer_busy`` and ``stream_busy`` (fractions of the makespan the GPU node spent training and
    receiving), ``link_busy`` (bytes moved over the link's capacity in the makespan), ``events_per_second``."""
    scenarios = scenarios or {
        "measured streaming, 10 Gbit/s": {},
        "free streaming, 10 Gbit/s": {"receive_seconds": 0.0},
        "measured streaming, 1 Gbit/s": {"bandwidth": 1.25e8},
    }
    keys = ("makespan", "trained_per_second", "produced_per_second", "trainer_busy", "stream_busy", "link_busy",
            "events_per_second")  # fmt: skip
    values = {key: np.full((len(scenarios), len(cores)), np.nan) for key in keys}
    for i, settings in enumerate(scenarios.values()):
        settings = {**workload, **settings}
        network = {key: settings.pop(key) for key in ("bandwidth", "latency", "stream_cores") if key in settings}
        for k, count in enumerate(cores):
            trace = online_training(simulations=int(count), in_flight=int(count), steps=steps, reuse=reuse, **settings)
            platform = gpu_platform(int(count), **network)
            result = replay(trace, platform, PLACEMENT)
            busy = {"training": 0.0, "other": 0.0}
            for task in trace.tasks:
                if task.component in busy:
                    busy[task.component] += result.ends[task.id] - result.starts[task.id]
            span = result.makespan
            link = platform.links[0]
            values["makespan"][i, k] = span
            values["trained_per_second"][i, k] = trace.attrs["batches"] * trace.attrs["batch_size"] / span
            values["produced_per_second"][i, k] = trace.attrs["samples"] / span
            values["trainer_busy"][i, k] = busy["training"] / span
            values["stream_busy"][i, k] = busy["other"] / span
            values["link_busy"][i, k] = result.bytes_moved / (link.bandwidth * span)
            values["events_per_second"][i, k] = result.events_per_second
    data = xr.Dataset(
        {key: (("scenario", "cores"), value) for key, value in values.items()},
        coords={"scenario": list(scenarios), "cores": np.asarray(cores, dtype=np.int64)},
    )
    data["makespan"].attrs["units"] = "s"
    data["trained_per_second"].attrs["units"] = data["produced_per_second"].attrs["units"] = "samples/s"
    return data.assign_attrs(steps=steps, reuse=reuse, **{k: str(v) for k, v in workload.items()})


def workflow_scenario(**fixed):
    """A factor-study scenario (:func:`kit.replay.factors.factor_study`) over workflow and infrastructure
    factors of :func:`online_training` on :func:`gpu_platform`: any of ``in_flight`` (simulation cores),
    ``batch_size``, ``chunk_steps``, ``watermark`` (samples buffered before training), ``reuse``,
    ``receive_seconds``, ``bandwidth``, ``latency`` (rounded where they count things), with ``fixed``
    settings for the rest. Metrics: ``makespan``, ``trained_per_second``, ``latency_p99`` (s from a chunk
    made to the batch that first used it)."""
    return functools.partial(_workflow_point, fixed)


def _workflow_point(fixed: dict, values: dict) -> dict:
    from kit.replay.placements import data_latency

    settings = {**fixed, **values}
    network = {key: settings.pop(key) for key in ("bandwidth", "latency", "stream_cores") if key in settings}
    for key in ("in_flight", "batch_size", "chunk_steps", "watermark", "simulations", "steps"):
        if key in settings:
            settings[key] = max(1, round(settings[key])) if key != "watermark" else max(0, round(settings[key]))
    settings.setdefault("simulations", settings.get("in_flight", 4))
    trace = online_training(**settings)
    result = replay(trace, gpu_platform(trace.attrs["in_flight"], **network), PLACEMENT)
    trained = trace.attrs["batches"] * trace.attrs["batch_size"]
    latency = data_latency(result)
    return {
        "makespan": result.makespan,
        "trained_per_second": trained / result.makespan,
        "latency_p99": float(np.percentile(latency, 99)) if latency.size else 0.0,
    }
