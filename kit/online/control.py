"""The control plane of an online study: dask places each simulation's task, and the study settles it when
it ends, retries it when it fails, hangs or loses data, and redraws its parameters when it keeps failing.
dask sees a handful of events per simulation; the steps themselves travel on the data plane.
"""

from __future__ import annotations

import logging
import time

from kit.online.dataplane import Endpoint
from kit.online.ledger import Ledger, Simulation
from kit.online.producer import simulate

log = logging.getLogger(__name__)

HUNG = "(hung)"


class StudyError(RuntimeError):
    """A study cannot go on (too many failed simulations); the message lists them."""


class Control:
    """Simulations of one study epoch on ``client``: submitted with ``endpoint`` as their data destination.

    ``lock`` guards the ledger (the intake writes it from the receiver's thread). ``on_submit(sim)`` and
    ``on_redrawn(sim)`` let the study note a launch (timeline) and drop a redrawn simulation's partial
    results (Sobol' groups). ``timeout``: seconds without a message from a started simulation (or, once its
    task finished, for its last steps to arrive) before it counts as hung (or its data as lost).
    """

    def __init__(self, client, simulator, endpoint: Endpoint, ledger: Ledger, lock, *, chunk_steps: int,
                 retries: int, timeout: float, max_failures: int, on_submit=None, on_redrawn=None):  # fmt: skip
        self.client, self.simulator, self.endpoint, self.ledger, self.lock = client, simulator, endpoint, ledger, lock
        self.chunk_steps, self.retries, self.timeout, self.max_failures = chunk_steps, retries, timeout, max_failures
        self.on_submit, self.on_redrawn = on_submit, on_redrawn
        self.futures = {}

    def submit(self, sim: Simulation) -> None:
        """Launch ``sim``'s current attempt (its hang clock starts with its first message)."""
        sim.active = None
        if self.on_submit is not None:
            self.on_submit(sim)
        self.futures[sim.sim_id] = self.client.submit(
            simulate,
            self.simulator,
            self.endpoint,
            sim.params,
            sim.seed,
            sim.sim_id,
            sim.attempts,
            self.chunk_steps,
            key=f"simulate-{self.endpoint.study}-{sim.sim_id}-attempt-{sim.attempts}",  # "simulate": traces label it
            pure=False,
        )

    def watch(self) -> None:
        """Settle finished simulations; retry failed, hung and incomplete ones."""
        with self.lock:
            verdicts = [(sim, self._verdict(sim)) for sim in list(self.ledger.running.values())]
        self._complete([sim for sim, verdict in verdicts if verdict == "complete"])
        for sim, verdict in verdicts:
            if verdict is not None and verdict != "complete":
                if verdict.endswith(HUNG):
                    self._restart_worker_of(self.futures[sim.sim_id])
                self._failed(sim, verdict)

    def _verdict(self, sim: Simulation) -> str | None:
        """``"complete"``, a failure's reason, or None (still going)."""
        future = self.futures[sim.sim_id]
        if future.status == "finished" and sim.active is None:
            sim.active = time.monotonic()  # its messages may wait in the study's socket: their clock starts now
        quiet = sim.active is not None and time.monotonic() - sim.active > self.timeout
        if sim.problem is not None:
            return f"bad data: {sim.problem}"
        if future.status == "error":
            return f"{type(future.exception()).__name__}: {future.exception()}"
        if future.status == "cancelled":
            return "cancelled by the cluster (worker lost or restarted)"
        if future.status != "finished":
            return f"no message for {self.timeout:g} s {HUNG}" if quiet else None
        ends = [run for run in sim.current_runs() if run.reported is not None]
        for run in ends:
            if run.reported != sim.steps:
                return f"it made {run.reported} steps, the simulator declares {sim.steps}"
        if sim.delivered():
            return "complete"
        if quiet:
            missing = max((run.reported - run.arrived for run in ends), default=None)
            what = f"{missing} of its {sim.steps} steps" if missing else "its end of stream"
            return f"{what} never reached the study ({self.timeout:g} s after its task ended): lost in transfer"
        return None

    def _complete(self, sims: list[Simulation]) -> None:
        """Settle simulations whose tasks ended with all their steps delivered (one scheduler call for all)."""
        if not sims:
            return
        keys = [self.futures.pop(sim.sim_id).key for sim in sims]
        lost = self.client.run_on_scheduler(workers_lost, keys=keys)
        with self.lock:
            for sim, key in zip(sims, keys, strict=True):
                if lost[key] or len(sim.current_runs()) > 1:  # dask reran the task elsewhere after its worker died
                    sim.reasons.append(f"worker lost while running ({max(lost[key], 1)} time(s)); rerun by dask")
                self.ledger.end(sim, "retried" if sim.attempts > 1 or sim.reasons else "ok")

    def _failed(self, sim: Simulation, reason: str) -> None:
        self.futures.pop(sim.sim_id).cancel()
        log.warning("simulation %d (attempt %d) failed: %s", sim.sim_id, sim.attempts, reason)
        with self.lock:
            sim.reasons.append(reason)
            sim.problem = None
            if sim.attempts <= self.retries:
                sim.attempts += 1
                retry = True
            else:
                retry = False
                if self.ledger.ended["redrawn"] >= self.max_failures:
                    failures = [s for s in self.ledger.simulations.values() if s.status == "redrawn"]
                    self.ledger.end(sim, "failed")
                    lines = "\n".join(f"  simulation {s.sim_id} {s.params.tolist()}: {s.reasons}"
                                      for s in [*failures, sim])  # fmt: skip
                    raise StudyError(
                        f"{len(failures) + 1} simulations failed (max_failures={self.max_failures}):\n{lines}"
                    )
                self.ledger.end(sim, "redrawn")  # the study gives its slot to new parameters
                if self.on_redrawn is not None:
                    self.on_redrawn(sim)
        if retry:
            self.submit(sim)

    def cancel_all(self) -> None:
        """Cancel what still runs (the study ended)."""
        with self.lock:
            for sim in list(self.ledger.running.values()):
                self.futures.pop(sim.sim_id).cancel()
                self.ledger.end(sim, "cancelled")

    def _restart_worker_of(self, future) -> None:
        """Restart the worker process running a hung simulation (a thread cannot be stopped)."""
        address = self.client.run_on_scheduler(_processing_on, key=future.key)
        future.cancel()
        if address is None:
            return
        try:
            self.client.restart_workers([address], timeout=30)
        except Exception as exc:  # a worker without a nanny cannot be restarted: its thread stays busy
            log.warning("could not restart worker %s running a hung simulation: %s", address, exc)


def workers_lost(dask_scheduler, keys) -> dict:
    """How many workers died while running each task of ``keys`` (dask reruns such a task)."""
    tasks = {key: dask_scheduler.tasks.get(key) for key in keys}
    return {key: task.suspicious if task is not None else 0 for key, task in tasks.items()}


def _processing_on(dask_scheduler, key):
    task = dask_scheduler.tasks.get(key)
    return task.processing_on.address if task is not None and task.processing_on is not None else None
