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
MESSAGE_SECONDS = 1e-3

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
    number of steps made. Raises :class:`NonFiniteField` at the first NaN or inf (also a value beyond
    float32's range), :class:`~kit.online.dataplane.Stopped` when the study stopped, and the data plane's
    errors when the study cannot be reached.
    """
    from distributed import get_worker

    simulator = _reuse(endpoint.study, simulator)
    made = 0
    with Sender(endpoint, sim_id, attempt, stopped=_stop_event(endpoint), keep=True) as sender:
        sender.start(get_worker().address)
        started, done = time.time(), time.monotonic()
        k, fields = 0, None
        try:
            for step in simulator.run(params, seed=seed):
                if fields is None:  # a fresh message: sent without a copy, so never reused
                    rows = max(chunk_steps, MESSAGE_BYTES // max(1, 4 * np.size(step.field)))
                    steps, times = np.empty(rows, np.int64), np.empty(rows)
                    fields = np.empty((rows, *np.shape(step.field)), np.float32)
                    first = time.monotonic()
                fields[k] = step.field
                if not _finite(fields[k]):
                    raise NonFiniteField(f"simulation {sim_id}: non-finite value in the field at step {step.index}")
                steps[k], times[k] = step.index, step.time
                k += 1
                made += 1
                if k % chunk_steps:
                    continue
                full = k + chunk_steps > len(fields)
                chunk_seconds, done = time.monotonic() - done, time.monotonic()
                if full or done - first + chunk_seconds >= MESSAGE_SECONDS:
                    now = time.time()
                    # Handing a chunk over holds the simulation's core too: the next chunk's time runs from now.
                    if sender.chunk(steps[:k], times[:k], fields[:k], started, now, wait=full):
                        k, fields, started = 0, None, now
        except (Stopped, Unreachable, Orphaned):
            raise
        except Exception as exc:  # the whole chunks made before a failure are still delivered
            failed, k = exc, k - k % chunk_steps
        else:
            failed = None
        if k:
            sender.chunk(steps[:k], times[:k], fields[:k], started, time.time())
        if failed is not None:
            raise failed
        sender.end(made)
    return made


def _finite(field: np.ndarray) -> bool:
    """Whether every value is finite: NaN and inf propagate through a sum (which a finite field overflows
    only in extreme cases, checked value by value)."""
    return bool(np.isfinite(field.sum())) or bool(np.isfinite(field).all())


def _stop_event(endpoint: Endpoint):
    """Whether the study's epoch ended: a dask ``Event`` the study sets when it stops (asked only while the
    sender is disconnected)."""

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
