"""The dask task that runs one simulation and streams its time steps to the study, chunk by chunk.

Each chunk is scattered to the worker that made it and only its future goes through a
``distributed.Queue``: the scheduler sees keys, the field data travels from the worker straight to the
study's client when it gathers. The queue is bounded, so a full queue holds the simulation back.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np


class NonFiniteField(ArithmeticError):
    """A simulation produced NaN or inf."""


@dataclass(frozen=True)
class Chunk:
    """Consecutive time steps of one simulation, as they leave the worker."""

    sim_id: int
    run: str  # one id per execution of the task: a task rerun after a worker died gets a new one
    worker: str
    steps: np.ndarray
    times: np.ndarray
    fields: np.ndarray  # (k, ny, nx) float32


#: Simulators by study, kept per worker process so that one factorisation serves every simulation there.
_SIMULATORS: OrderedDict[str, object] = OrderedDict()


def _reuse(token: str, simulator):
    if token not in _SIMULATORS:
        _SIMULATORS[token] = simulator
        while len(_SIMULATORS) > 4:
            _SIMULATORS.popitem(last=False)
    return _SIMULATORS[token]


def simulate(simulator, token: str, params, seed: int, sim_id: int, queue_name: str, chunk_steps: int) -> int:
    """Run ``simulator`` at ``params`` and put each chunk of ``chunk_steps`` steps on the queue.

    ``token`` names the study: the first simulator received with it is reused by later tasks on the same
    worker. Returns the number of steps produced. Raises :class:`NonFiniteField` at the first NaN or inf.
    """
    from distributed import Queue, get_client, get_worker

    simulator = _reuse(token, simulator)
    client = get_client()
    queue = Queue(queue_name, client=client)
    worker = get_worker().address
    run = uuid.uuid4().hex
    steps, times, fields, produced = [], [], [], 0

    def send():
        chunk = Chunk(sim_id, run, worker, np.array(steps), np.array(times), np.stack(fields).astype(np.float32))
        (future,) = client.scatter([chunk], workers=[worker], direct=True, hash=False)
        queue.put(future)
        steps.clear(), times.clear(), fields.clear()

    for step in simulator.run(params, seed=seed):
        if not np.isfinite(step.field).all():
            raise NonFiniteField(f"simulation {sim_id}: non-finite value in the field at step {step.index}")
        steps.append(step.index)
        times.append(step.time)
        fields.append(step.field)
        produced += 1
        if len(steps) == chunk_steps:
            send()
    if steps:
        send()
    return produced
