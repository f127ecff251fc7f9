"""How fast the online-training infrastructure moves data, measured against baselines run in the same process:
the simulations' own plain-loop rate (``streaming_efficiency``) and a bare pyzmq PUSH/PULL of the same bytes
(``data_plane``). Each returns the Dataset a figure of papers/online-training plots.

On a small machine the measurement is made honest by pinning the simulation workers and the study to
different cores where the OS allows, alternating the kit and its baseline, repeating, and recording the CPU
time of each process.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time

import numpy as np
import xarray as xr

from kit.cluster import connect
from kit.online.baselines import bare_push, plain_loop_rate
from kit.online.study import OnlineStudy
from kit.online.trainer import Trainer, seeded_model
from kit.sampling import random, sobol
from kit.simulators import Heat2D
from kit.simulators.premade import Premade


class DrawOnly(Trainer):
    """A trainer that draws its batches and trains nothing: a study run with it measures its data plane."""

    def step(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        self.batches += 1
        return np.zeros(len(x), dtype=np.float32)


def _cores() -> list[int]:
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []


def _pin(cores) -> None:
    """Run this process on ``cores`` (where the OS allows it): every thread it has (``sched_setaffinity`` of
    the process pins only its main thread) and those it will start."""
    if not hasattr(os, "sched_setaffinity") or not cores:
        return
    for thread in os.listdir("/proc/self/task") if os.path.isdir("/proc/self/task") else [0]:
        with contextlib.suppress(ProcessLookupError, PermissionError):  # a thread that ended meanwhile
            os.sched_setaffinity(int(thread), set(cores))


def _pin_workers(client, cores: list[int]) -> list[int]:
    """Pin worker ``i`` to core ``i`` (modulo the cores); the cores left for the study (all, if none is)."""
    if not cores:
        return []
    workers = sorted(client.scheduler_info()["workers"])
    for i, address in enumerate(workers):
        client.run(_pin, [cores[i % len(cores)]], workers=[address])
    return cores[len(workers) :] or cores


def _cpu_seconds(client) -> float:
    """CPU seconds used so far by the worker processes."""
    return float(sum(client.run(time.process_time).values()))


def _cheap(simulator):
    from torch import nn

    return nn.Sequential(
        nn.Linear(simulator.space.dim + 1, len(simulator.y) * len(simulator.x)),
        nn.Unflatten(1, (len(simulator.y), len(simulator.x))),
    )


def streaming_efficiency(
    grids=(32, 100),
    chunks=(1, 5, 25),
    workers=(1, 2),
    *,
    sim_seconds: float = 0.15,
    seconds: float = 1.0,
    repeats: int = 5,
    seed: int = 0,
    progress: bool = True,
) -> xr.Dataset:
    """Time steps per second reaching a cheap trainer through the kit (heat simulations of ``grids`` nodes a
    side, as many steps as take about ``sim_seconds`` in a plain loop, ``chunks`` steps per chunk,
    ``workers`` single-thread workers) against the plain loop of the same simulations on one of those
    workers, alternated, ``repeats`` times, each run about ``seconds`` long.

    Dims ``grid, chunk_steps, workers, repeat``: ``kit_rate``, ``plain_rate`` (steps/s), ``study_cpu`` (CPU
    seconds of the study process from its first launch) and ``worker_cpu`` (of all workers during the kit
    run), ``wall`` (s);
    ``steps`` per simulation by grid. ``streaming_efficiency`` = median over repeats of kit rate /
    (workers x plain rate); ``efficiency_of_cpu_left`` = the same against the cores the study's own CPU use
    left to simulations; ``_low`` and ``_high``: the smallest and largest repeat.
    """
    from tqdm.auto import tqdm

    names = ("kit_rate", "plain_rate", "study_cpu", "worker_cpu", "wall")
    values = {key: np.full((len(grids), len(chunks), len(workers), repeats), np.nan) for key in names}
    sizes = np.zeros(len(grids), dtype=np.int64)
    cores, own = _cores(), _cores()
    bar = tqdm(total=len(grids) * len(workers) * repeats * len(chunks), desc="streaming", disable=not progress)
    try:
        for w, count in enumerate(workers):
            with connect(None, n_workers=count) as client:
                _pin(_pin_workers(client, cores))
                worker = sorted(client.scheduler_info()["workers"])[0]
                for g, n in enumerate(grids):
                    probe = Heat2D(n=n, steps=50)
                    points = sobol(probe.space, 4, seed=seed)
                    rate = client.submit(plain_loop_rate, probe, points, seed, workers=[worker], pure=False).result()
                    sizes[g] = max(10, round(sim_seconds * rate))
                    simulator = Heat2D(n=n, steps=int(sizes[g]))
                    per_worker = max(2, int(np.ceil(seconds / sim_seconds)))
                    params = random(simulator.space, per_worker * count, seed=seed)
                    _kit_run(simulator, params[:count], chunks[0], count, client, seed)  # warm-up: imports, caches
                    for r in range(repeats):
                        for c, chunk in enumerate(chunks):
                            plain = client.submit(plain_loop_rate, simulator, params[:per_worker], seed,
                                                  workers=[worker], pure=False).result()  # fmt: skip
                            values["plain_rate"][g, c, w, r] = plain
                            run = _kit_run(simulator, params, chunk, count, client, seed)
                            for key in ("kit_rate", "study_cpu", "worker_cpu", "wall"):
                                values[key][g, c, w, r] = run[key]
                            bar.update()
    finally:
        _pin(own)
        bar.close()
    dims = ("grid", "chunk_steps", "workers", "repeat")
    data = xr.Dataset(
        {key: (dims, value) for key, value in values.items()},
        coords={
            "grid": list(grids),
            "chunk_steps": list(chunks),
            "workers": list(workers),
            "repeat": np.arange(repeats),
        },
    )
    data["steps"] = ("grid", sizes)
    ratio = data.kit_rate / (data.workers * data.plain_rate)
    cores_left = np.minimum(data.workers, len(cores) - data.study_cpu / data.wall) if cores else data.workers
    left = data.kit_rate / (cores_left * data.plain_rate)
    for name, value in (("streaming_efficiency", ratio), ("efficiency_of_cpu_left", left)):
        data[name] = value.median("repeat")
        data[f"{name}_low"], data[f"{name}_high"] = value.min("repeat"), value.max("repeat")
    for key in ("kit_rate", "plain_rate"):
        data[key].attrs["units"] = "steps/s"
    for key in ("study_cpu", "worker_cpu", "wall"):
        data[key].attrs["units"] = "s"
    data["streaming_efficiency"].attrs["description"] = "kit rate / (workers x plain-loop rate), median over repeats"
    data["efficiency_of_cpu_left"].attrs["description"] = (
        "kit rate / (plain-loop rate x cores not used by the study process), median over repeats"
    )
    return data.assign_attrs(sim_seconds=sim_seconds, cores=len(cores), pinned=int(bool(cores)), seed=seed)


def _kit_run(simulator, params, chunk_steps: int, workers: int, client, seed: int) -> dict:
    """One study of ``params`` through a cheap trainer: its rate and the CPU time of each process."""
    study = OnlineStudy(
        simulator,
        n_simulations=len(params),
        sampler=params,
        buffer="fifo",
        capacity=1024,
        watermark=64,
        batch_size=64,
        model=seeded_model(lambda: _cheap(simulator), seed),
        in_flight=3 * workers,
        chunk_steps=chunk_steps,
        client=client,
        seed=seed,
    )
    worker_cpu = _cpu_seconds(client)
    result = study.run(progress=False)
    worker_cpu = _cpu_seconds(client) - worker_cpu
    wall = float(result.arrivals.seconds.values.max())
    return {"kit_rate": result.ledger.produced / wall, "study_cpu": study.run_stats["cpu_seconds"],
            "worker_cpu": worker_cpu, "wall": wall}  # fmt: skip


#: The data-plane benchmark's runs: the kit, the kit with shared memory off, a bare PUSH/PULL.
RUNS = ("kit", "kit_tcp", "bare")


def data_plane(
    producers=(1, 2, 4, 8, 16, 32), *, n: int = 100, messages: int = 20_000, repeats: int = 3, progress: bool = True
) -> xr.Dataset:
    """Data-only producers (:class:`~kit.simulators.premade.Premade`: pre-made ``n x n`` float32 fields, one
    step a message) in ``producers`` worker processes streaming ``messages`` messages in all into one study
    that draws batches and trains nothing (:class:`DrawOnly`), against a bare pyzmq PUSH/PULL of the same
    bytes between the same processes, alternated, ``repeats`` times.

    The kit runs twice: as it is (its producers on the study's host put their fields in shared memory) and
    with shared memory off (``kit_tcp``: every byte over TCP, as from another host).

    Dims ``producers, repeat``, for each run of :data:`RUNS`: ``<run>_chunks_per_second``,
    ``<run>_receive_cost`` (CPU seconds per message of the receiving thread) and ``<run>_cpu_per_chunk`` (CPU
    seconds per message of every process: the study or bare receiver and the producers).
    Medians over repeats: ``chunks_per_second``, ``bytes_per_second``, ``data_plane_ratio`` (kit / bare),
    ``data_plane_ratio_tcp`` (kit over TCP / bare) and ``receive_cost_per_chunk`` (CPU seconds per chunk of
    the study's receiving thread, which stores each chunk in the buffer).
    """
    from tqdm.auto import tqdm

    names = [f"{run}_{key}" for run in RUNS for key in ("chunks_per_second", "receive_cost", "cpu_per_chunk")]
    values = {key: np.full((len(producers), repeats), np.nan) for key in names}
    nbytes = n * n * 4
    bar = tqdm(total=len(producers) * repeats, desc="data plane", disable=not progress)
    try:
        for p, count in enumerate(producers):
            per = max(1, messages // count)
            with connect(None, n_workers=count) as client:
                _draw_only_run(Premade(n, steps=min(per, 50)), count, client)  # warm-up
                for r in range(repeats):
                    runs = {"bare": _bare_run(client, count, per, nbytes)}
                    runs["kit"] = _draw_only_run(Premade(n, steps=per), count, client)
                    runs["kit_tcp"] = _draw_only_run(Premade(n, steps=per), count, client, shared_memory=False)
                    for key, (rate, receive, cpu) in runs.items():
                        values[f"{key}_chunks_per_second"][p, r] = rate
                        values[f"{key}_receive_cost"][p, r], values[f"{key}_cpu_per_chunk"][p, r] = receive, cpu
                    bar.update()
    finally:
        bar.close()
    data = xr.Dataset(
        {key: (("producers", "repeat"), value) for key, value in values.items()},
        coords={"producers": list(producers), "repeat": np.arange(repeats)},
    )
    data["chunks_per_second"] = data.kit_chunks_per_second.median("repeat")
    data["bytes_per_second"] = data.chunks_per_second * nbytes
    data["data_plane_ratio"] = (data.kit_chunks_per_second / data.bare_chunks_per_second).median("repeat")
    data["data_plane_ratio_tcp"] = (data.kit_tcp_chunks_per_second / data.bare_chunks_per_second).median("repeat")
    data["receive_cost_per_chunk"] = data.kit_receive_cost.median("repeat")
    for run in RUNS:
        data[f"{run}_chunks_per_second"].attrs["units"] = "chunks/s"
        data[f"{run}_receive_cost"].attrs["units"] = data[f"{run}_cpu_per_chunk"].attrs["units"] = "CPU s/chunk"
    data["chunks_per_second"].attrs["units"] = "chunks/s"
    data["bytes_per_second"].attrs["units"] = "B/s"
    data["receive_cost_per_chunk"].attrs["units"] = "CPU s/chunk"
    data["data_plane_ratio"].attrs["description"] = "kit chunks/s / bare PUSH/PULL chunks/s, median over repeats"
    data["data_plane_ratio_tcp"].attrs["description"] = "the same with the kit's shared memory off (TCP only)"
    return data.assign_attrs(n=n, chunk_bytes=nbytes, messages=messages, cores=len(_cores()))


def _draw_only_run(simulator, count: int, client, shared_memory: bool = True) -> tuple[float, float, float]:
    """Chunks per second through a study of ``count`` simulations that trains nothing, the receiving
    thread's CPU seconds per chunk and those of every process."""
    study = OnlineStudy(
        simulator,
        n_simulations=count,
        in_flight=count,
        sampler=np.full((count, 1), 0.5),
        buffer="fifo",
        capacity=4096,
        watermark=256,
        batch_size=256,
        model=DrawOnly(_cheap_of(simulator)),
        chunk_steps=1,
        client=client,
        shared_memory=shared_memory,
    )
    workers = _cpu_seconds(client)
    result = study.run(progress=False)
    cpu = _cpu_seconds(client) - workers + study.run_stats["cpu_seconds"]
    steps = result.ledger.produced  # one step a chunk: the chunks as the simulations made them
    rate = steps / float(result.arrivals.seconds.values.max())
    return rate, study.run_stats["receiver_cpu_seconds"] / steps, cpu / steps


def _cheap_of(simulator):
    from torch import nn

    return nn.Linear(simulator.space.dim + 1, 1)


def _bare_run(client, count: int, per: int, nbytes: int) -> tuple[float, float, float]:
    """``count`` workers each PUSH ``per`` messages of a kit header's size and ``nbytes`` to one PULL socket
    read by a thread here: messages per second, the thread's CPU seconds per message and those of every
    process."""
    import zmq

    context = zmq.Context()
    pull = context.socket(zmq.PULL)
    address = f"tcp://127.0.0.1:{pull.bind_to_random_port('tcp://127.0.0.1')}"
    total, got, cpu = count * per, [0], [0.0]

    def receive():
        begun = time.thread_time()
        while got[0] < total:
            pull.recv_multipart(copy=False)
            got[0] += 1
        cpu[0] = time.thread_time() - begun

    thread = threading.Thread(target=receive)
    spent = time.process_time() + _cpu_seconds(client)
    thread.start()
    begun = time.perf_counter()
    futures = [client.submit(bare_push, address, per, nbytes, pure=False) for _ in range(count)]
    thread.join()
    seconds = time.perf_counter() - begun
    client.gather(futures)
    spent = time.process_time() + _cpu_seconds(client) - spent
    pull.close(linger=0)
    context.term()
    return total / seconds, cpu[0] / total, spent / total
