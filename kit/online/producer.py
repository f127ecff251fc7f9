"""The dask task that runs one simulation and streams its time steps to the study, chunk by chunk.

dask sees the task start and end (its result: the number of steps made); the steps themselves go over the
data plane (:mod:`kit.online.dataplane`) straight to the study's socket. A full socket queue blocks the
simulation until the study reads again.
"""

from __future__ import annotations

import time
from collections import OrderedDict

import numpy as np

from kit.online.dataplane import Endpoint, Orphaned, Sender, Stopped, Unreachable


class NonFiniteField(ArithmeticError):
    """A simulation produced NaN or inf."""


#: Most bytes of steps one message gathers.
MESSAGE_BYTES = 1 << 18
#: Most seconds a chunk waits for the next ones to share its message (while the socket has room).
MESSAGE_SECONDS = 5e-3

#: Simulators by study, kept per worker process so that one factorisation serves every simulation there.
_SIMULATORS: OrderedDict[str, object] = OrderedDict()


def _reuse(token: str, simulator):
    if token not in _SIMULATORS:
        _SIMULATORS[token] = simulator
        while len(_SIMULATORS) > 4:
            _SIMULATORS.popitem(last=False)
    return _SIMULATORS[token]


def simulate(simulator, endpoint: Endpoint, params, seed: int, sim_id: int, attempt: int, chunk_steps: int) -> int:
    """Run ``simulator`` at ``params`` and send its steps to ``endpoint`` in chunks of ``chunk_steps``.

    A chunk leaves once made, unless the next one is due soon: while the chunks waiting in a message would
    wait less than :data:`MESSAGE_SECONDS` for it (judged by the last chunk's time), or while the socket's
    queue is full, the next chunks share their message (up to :data:`MESSAGE_BYTES`, or one chunk if larger):
    fast simulations pay the per-message costs once for several chunks, slow ones send each chunk at once. A
    full message waits for room (backpressure).

    The first simulator received for a study is reused by its later tasks on the same worker. Returns the
    number of steps made. Raises :class:`NonFiniteField` naming the first step with a NaN or inf (also a
    value beyond float32's range; checked once a message), :class:`~kit.online.dataplane.Stopped` when the
    study stopped, and the data plane's errors when the study cannot be reached.
    """
    from distributed import get_worker

    simulator = _reuse(endpoint.study, simulator)
    made = 0
    with Sender(endpoint, sim_id, attempt, stopped=_stop_event(endpoint), keep=True) as sender:
        sender.start(get_worker().address)
        started, done = time.time(), time.monotonic()
        k, checked, fields, failed = 0, 0, None, None
        try:
            for step in simulator.run(params, seed=seed):
                if fields is None:  # a fresh message (in shared memory on the study's host): sent as it is
                    rows = max(chunk_steps, MESSAGE_BYTES // max(1, 4 * np.size(step.field)))
                    steps, times = np.empty(rows, np.int64), np.empty(rows)
                    fields = sender.fields((rows, *np.shape(step.field)))
                    first, checked = time.monotonic(), 0
                fields[k] = step.field
                steps[k], times[k] = step.index, step.time
                k += 1
                if k % chunk_steps:
                    continue
                full = k + chunk_steps > len(fields)
                chunk_seconds, done = time.monotonic() - done, time.monotonic()
                if full or done - first + chunk_seconds >= MESSAGE_SECONDS:
                    k, error = _checked(fields, steps, checked, k, chunk_steps, sim_id)
                    if error is not None:
                        raise error
                    checked, now = k, time.time()
                    # Handing a chunk over holds the simulation's core too: the next chunk's time runs from now.
                    if sender.chunk(steps[:k], times[:k], fields[:k], started, now, wait=full):
                        made, k, fields, started = made + k, 0, None, now
        except (Stopped, Unreachable, Orphaned):
            raise
        except Exception as exc:  # the whole chunks made before a failure are still delivered
            failed = exc
        if k > checked:  # the run's last steps, or those made before a failure (a NaN among them named first)
            k, error = _checked(fields, steps, checked, k, chunk_steps, sim_id)
            if error is not None:  # found after the simulator's own failure, if any
                error.__context__, failed = failed, error
        if failed is not None:
            k -= k % chunk_steps
        if k:
            sender.chunk(steps[:k], times[:k], fields[:k], started, time.time())
            made += k
        if failed is not None:
            raise failed
        sender.end(made)
    return made


def _checked(fields: np.ndarray, steps: np.ndarray, begin: int, end: int, chunk_steps: int, sim_id: int):
    """Check the fields of steps ``begin:end`` of a message: ``(end, None)`` when finite, else the whole chunks
    to keep (those before the first step with a NaN or inf) and the error naming that step. One float64 sum
    checks them all: NaN and inf propagate through it, and float32 values cannot overflow it."""
    block = fields[begin:end]
    if np.isfinite(block.sum(dtype=np.float64)):
        return end, None
    bad = begin + int(np.flatnonzero(~np.isfinite(block.reshape(len(block), -1)).all(axis=1))[0])
    return bad - bad % chunk_steps, NonFiniteField(
        f"simulation {sim_id}: non-finite value in the field at step {steps[bad]}"
    )


def _stop_event(endpoint: Endpoint):
    """Whether the study's epoch ended: a dask ``Event`` the study sets when it stops (asked only while the
    sender is disconnected or waits for a shared-memory slot)."""

    def stopped() -> bool:
        from distributed import Event, get_client

        try:
            return Event(stop_event_name(endpoint), client=get_client()).is_set()
        except Exception:  # no scheduler to ask: the send timeout decides
            return False

    return stopped


def stop_event_name(endpoint: Endpoint) -> str:
    """The name of the dask ``Event`` that ends a study epoch's simulations."""
    return f"{endpoint.study}-{endpoint.epoch}-stop"


def epoch_of(stop_event: str) -> int:
    """The study epoch a :func:`stop_event_name` is of."""
    return int(stop_event.rsplit("-", 2)[-2])
