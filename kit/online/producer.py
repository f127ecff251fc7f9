"""The dask task that runs one simulation and streams its time steps to the study, chunk by chunk.

Each chunk is scattered to the worker that made it and only its future goes through a
``distributed.Queue``: the scheduler sees keys, the field data travels from the worker straight to the
study's client when it gathers. The queue is bounded, so a full queue holds the simulation back.
"""

from __future__ import annotations

import queue as queue_module
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np


class NonFiniteField(ArithmeticError):
    """A simulation produced NaN or inf."""


class Stopped(RuntimeError):
    """The study asked its simulations to stop (it ended, or gave up on this one)."""


@dataclass(frozen=True)
class Chunk:
    """Consecutive time steps of one simulation attempt, as they leave the worker."""

    sim_id: int
    attempt: int
    run: str  # one id per execution of the task: a task rerun after a worker died gets a new one
    steps: np.ndarray
    times: np.ndarray
    fields: np.ndarray  # (k, ny, nx) float32
    worker: str = ""  # where it was made
    started: float = 0.0  # wall-clock seconds (time.time()) when the previous chunk was made (or the run began)
    made: float = 0.0  # and when it was complete


#: Simulators by study, kept per worker process so that one factorisation serves every simulation there.
_SIMULATORS: OrderedDict[str, object] = OrderedDict()


def _reuse(token: str, simulator):
    if token not in _SIMULATORS:
        _SIMULATORS[token] = simulator
        while len(_SIMULATORS) > 4:
            _SIMULATORS.popitem(last=False)
    return _SIMULATORS[token]


def simulate(simulator, study: str, params, seed: int, sim_id: int, attempt: int, chunk_steps: int) -> int:
    """Run ``simulator`` at ``params`` and put each chunk of ``chunk_steps`` steps on the study's queue.

    ``study`` names the queue and the stop event; the first simulator received with it is reused by
    later tasks on the same worker. Returns the number of steps produced. Raises
    :class:`NonFiniteField` at the first NaN or inf and :class:`Stopped` when the study stopped.
    """
    from distributed import get_worker

    simulator = _reuse(study, simulator)
    worker = get_worker().address
    run = uuid.uuid4().hex
    steps, times, fields, produced = [], [], [], 0
    started = time.time()

    def chunk() -> Chunk:
        return Chunk(sim_id, attempt, run, np.array(steps), np.array(times), np.stack(fields), worker, started,
                     time.time())  # fmt: skip

    with _Sender(study, worker) as sender:
        for step in simulator.run(params, seed=seed):
            if not np.isfinite(step.field).all():
                raise NonFiniteField(f"simulation {sim_id}: non-finite value in the field at step {step.index}")
            steps.append(step.index)
            times.append(step.time)
            fields.append(step.field.astype(np.float32))
            produced += 1
            if len(steps) == chunk_steps:
                made = chunk()
                # Handing a chunk over (scatter, queue) holds the simulation's core too: the next chunk's
                # time runs from this one made.
                sender.send(made)
                steps, times, fields, started = [], [], [], made.made
        if steps:
            sender.send(chunk())
    return produced


class _Sender:
    """Sends chunks from a background thread, so the simulation computes while the last chunk travels.

    At most ``depth`` chunks wait; a full sender holds the simulation back, as a full queue does. Chunks
    made before a failure are still sent: they are valid time steps. While the queue is full, the study's
    stop event is checked every ``poll`` seconds, so a cancelled simulation never blocks a worker for good.
    """

    def __init__(self, study: str, worker: str, depth: int = 2, poll: float = 1.0):
        from distributed import Event, Queue, get_client

        self.client = get_client()
        self.queue, self.stop = Queue(study, client=self.client), Event(f"{study}-stop", client=self.client)
        self.worker, self.poll = worker, poll
        self.waiting: queue_module.Queue = queue_module.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._loop, name="kit-sender", daemon=True)
        self.thread.start()

    def send(self, chunk: Chunk) -> None:
        if self.error is not None:
            self._raise()
        self.waiting.put(chunk)

    def _raise(self):
        if isinstance(self.error, Stopped):
            raise self.error
        raise RuntimeError("sending a streamed chunk failed") from self.error

    def _loop(self) -> None:
        while (chunk := self.waiting.get()) is not None:
            if self.error is not None:
                continue
            try:
                (future,) = self.client.scatter([chunk], workers=[self.worker], direct=True, hash=False)
                self._put(future)
            except BaseException as exc:  # reported by the simulation thread at its next send or at exit
                self.error = exc

    def _put(self, future) -> None:
        while True:
            try:
                return self.queue.put(future, timeout=self.poll)
            except TimeoutError:
                if self.stop.is_set():
                    raise Stopped("the study stopped") from None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.waiting.put(None)
        self.thread.join()
        self.queue.close()  # releases this task's reference to the study's queue
        if self.error is not None and exc_info[0] is None:
            self._raise()
