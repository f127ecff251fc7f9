"""Bookkeeping of a study: every simulation's status, its runs, and every time step's fate, per chunk."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from kit.online.history import History

#: What :meth:`Ledger.receive` returns when every step of a chunk is new: an index that takes them all.
ALL = slice(None)


@dataclass
class Run:
    """One execution of a simulation attempt's task (dask reruns a task whose worker died)."""

    attempt: int
    worker: str = ""
    arrived: int = 0  # steps received from it, duplicates included
    reported: int | None = None  # steps it says it made (its end message)


@dataclass
class Simulation:
    """One simulation id: its parameters, attempts, runs and what came of them.

    ``status`` is ``running`` until it ends ``ok``, ``retried`` (ok after a retry or a rerun),
    ``redrawn`` (gave up: its slot went to new parameters), ``failed`` (the study stopped) or ``cancelled``.
    ``active``: ``time.monotonic()`` of its current attempt's last message (None before its task started).
    ``problem``: what went wrong with its data (a step outside its range), for the control plane to act on.
    """

    sim_id: int
    params: np.ndarray
    seed: int
    steps: int
    attempts: int = 1
    status: str = "running"
    reasons: list[str] = field(default_factory=list)
    runs: dict[int, Run] = field(default_factory=dict)
    received: np.ndarray | None = None  # which steps arrived (1..steps), while running
    n_received: int = 0
    active: float | None = None
    problem: str | None = None

    def __post_init__(self):
        if self.received is None and self.status == "running":
            self.received = np.zeros(self.steps, dtype=bool)

    def current_runs(self) -> list[Run]:
        return [run for run in self.runs.values() if run.attempt == self.attempts]

    def delivered(self) -> bool:
        """Every step arrived, from a run of the current attempt that ended saying it made them all (its task
        may still be returning)."""
        return self.n_received == self.steps and any(
            run.reported == self.steps and run.arrived == run.reported for run in self.current_runs()
        )


@dataclass
class Ledger:
    """Counts that must balance: produced = trained + evicted unseen + discarded (by reason) + in flight.

    ``arrivals``: one row per chunk's run of new consecutive steps (simulation, first and last step, the
    batch count and the study's seconds at arrival).
    """

    simulations: dict[int, Simulation] = field(default_factory=dict)
    running: dict[int, Simulation] = field(default_factory=dict)
    ended: Counter = field(default_factory=Counter)  # simulations by final status
    produced: int = 0
    discarded: Counter = field(default_factory=Counter)
    arrivals: History = field(default_factory=lambda: History(("simulation", "first", "last", "batch", "seconds")))

    def add(self, sim: Simulation) -> None:
        """A simulation launched."""
        self.simulations[sim.sim_id] = self.running[sim.sim_id] = sim

    def end(self, sim: Simulation, status: str) -> None:
        """A simulation ended with ``status``."""
        sim.status = status
        sim.received = None  # its count stays
        del self.running[sim.sim_id]
        self.ended[status] += 1

    def receive(self, sim: Simulation, run: int, attempt: int, steps: np.ndarray, batch: int, seconds: float):
        """Record a chunk's steps; which were not received before: ``ALL`` (the usual), or a boolean mask (the
        others are discarded as duplicates). Steps outside ``1..sim.steps`` raise ``ValueError``."""
        n = len(steps)
        self.produced += n
        self.runs(sim, run, attempt).arrived += n
        if sim.received is None or not n:  # ended: whatever still arrives is late
            return ALL
        first, last = int(steps[0]), int(steps[-1])
        if n == 1 and 1 <= first <= sim.steps and not sim.received[first - 1]:  # the usual, step by step
            sim.received[first - 1] = True
            sim.n_received += 1
            self.arrivals.add(sim.sim_id, first, first, batch, seconds)
            return ALL
        consecutive = n == 1 or (last - first == n - 1 and bool((np.diff(steps) == 1).all()))
        low, high = (first, last) if consecutive else (int(steps.min()), int(steps.max()))
        if low < 1 or high > sim.steps:
            self.discarded["out of range"] += n
            raise ValueError(f"simulation {sim.sim_id} sent steps {low}..{high}, outside 1..{sim.steps}")
        if consecutive and not sim.received[first - 1 : last].any():  # the usual: all new, in order
            sim.received[first - 1 : last] = True
            sim.n_received += n
            self.arrivals.add(sim.sim_id, first, last, batch, seconds)
            return ALL
        new = ~sim.received[steps - 1]
        fresh = steps[new]
        self.discarded["duplicate"] += n - len(fresh)
        sim.received[fresh - 1] = True
        sim.n_received += len(fresh)
        for run in np.split(fresh, np.flatnonzero(np.diff(fresh) != 1) + 1):
            if len(run):
                self.arrivals.add(sim.sim_id, int(run[0]), int(run[-1]), batch, seconds)
        return new

    def runs(self, sim: Simulation, run: int, attempt: int) -> Run:
        """The record of run ``run`` of ``sim`` (made on first sight)."""
        if run not in sim.runs:
            sim.runs[run] = Run(attempt)
        return sim.runs[run]

    def stale(self, steps: int) -> None:
        """Steps from an earlier epoch of the study (a task orphaned by a killed study)."""
        self.produced += steps
        self.discarded["previous epoch"] += steps

    def load(self, state: dict) -> None:
        """Take the simulations and counts of a :meth:`state` (the arrivals stay)."""
        self.simulations = state["simulations"]
        self.running = {i: s for i, s in state["simulations"].items() if s.status == "running"}
        self.ended, self.produced, self.discarded = state["ended"], state["produced"], state["discarded"]

    def state(self) -> dict:
        """A checkpoint's copy of the ledger (the arrivals go to their own file)."""
        sims = {
            i: Simulation(
                **{
                    **vars(s),
                    "received": None if s.received is None else s.received.copy(),
                    "reasons": list(s.reasons),
                    "runs": {},
                }
            )  # fmt: skip
            for i, s in self.simulations.items()
        }
        return {"simulations": sims, "ended": Counter(self.ended), "produced": self.produced,
                "discarded": Counter(self.discarded)}  # fmt: skip
