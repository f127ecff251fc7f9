"""The dask task that runs one simulation and streams its time steps to the study, chunk by chunk.

dask sees the task start and end (its result: the number of steps made); the steps themselves go over the
data plane (:mod:`kit.online.dataplane`) straight to the study's socket. A full socket queue blocks the
simulation until the study reads again.
"""

from __future__ import annotations

import time
from collections import OrderedDict

import numpy as np

from kit.online.dataplane import Endpoint, Sender


class NonFiniteField(ArithmeticError):
    """A simulation produced NaN or inf."""


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

    The first simulator received for a study is reused by its later tasks on the same worker. Returns the
    number of steps made. Raises :class:`NonFiniteField` at the first NaN or inf,
    :class:`~kit.online.dataplane.Stopped` when the study stopped, and the data plane's errors when the
    study cannot be reached.
    """
    from distributed import get_worker

    simulator = _reuse(endpoint.study, simulator)
    made = 0
    with Sender(endpoint, sim_id, attempt, stopped=_stop_event(endpoint)) as sender:
        sender.start(get_worker().address)
        started = time.time()
        k, steps, times, fields = 0, None, None, None
        for step in simulator.run(params, seed=seed):
            if not np.isfinite(step.field).all():
                raise NonFiniteField(f"simulation {sim_id}: non-finite value in the field at step {step.index}")
            if fields is None:  # a fresh chunk: sent without a copy, so never reused
                steps, times = np.empty(chunk_steps, np.int64), np.empty(chunk_steps)
                fields = np.empty((chunk_steps, *np.shape(step.field)), np.float32)
            steps[k], times[k], fields[k] = step.index, step.time, step.field
            k += 1
            made += 1
            if k == chunk_steps:
                now = time.time()
                # Handing a chunk over holds the simulation's core too: the next chunk's time runs from now.
                sender.chunk(steps, times, fields, started, now)
                k, fields, started = 0, None, now
        if k:
            sender.chunk(steps[:k], times[:k], fields[:k], started, time.time())
        sender.end(made)
    return made


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
