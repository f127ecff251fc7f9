"""Bookkeeping of a study: every simulation's status and every time step's fate."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Simulation:
    """One simulation id: its parameters, attempts and what came of them.

    ``status`` is ``running`` until it ends ``ok``, ``retried`` (ok after a retry or a rerun),
    ``redrawn`` (gave up: its slot went to new parameters), ``failed`` (the study stopped) or ``cancelled``.
    """

    sim_id: int
    params: np.ndarray
    seed: int
    attempts: int = 1
    status: str = "running"
    reasons: list[str] = field(default_factory=list)
    runs: set[str] = field(default_factory=set)
    steps: set[int] = field(default_factory=set)


@dataclass
class Ledger:
    """Counts that must balance: produced = trained + evicted unseen + discarded (by reason) + in flight."""

    simulations: dict[int, Simulation] = field(default_factory=dict)
    running: dict[int, Simulation] = field(default_factory=dict)
    ended: Counter = field(default_factory=Counter)  # simulations by final status
    produced: int = 0
    discarded: Counter = field(default_factory=Counter)
    arrivals: list[tuple[int, int, int, float]] = field(default_factory=list)  # sim, step, batch, seconds

    def add(self, sim: Simulation) -> None:
        """A simulation launched."""
        self.simulations[sim.sim_id] = self.running[sim.sim_id] = sim

    def end(self, sim: Simulation, status: str) -> None:
        """A simulation ended with ``status``."""
        sim.status = status
        del self.running[sim.sim_id]
        self.ended[status] += 1

    def receive(self, sim: Simulation, step: int, batch: int, seconds: float) -> bool:
        """Record one arriving step; False for a duplicate (already received from an earlier run)."""
        self.produced += 1
        if step in sim.steps:
            self.discarded["duplicate"] += 1
            return False
        sim.steps.add(step)
        self.arrivals.append((sim.sim_id, step, batch, seconds))
        return True
