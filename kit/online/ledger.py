"""Bookkeeping of a study: every simulation's status and every time step's fate."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

#: Final statuses of a simulation.
STATUSES = ("ok", "retried", "redrawn", "failed", "cancelled")


@dataclass
class Simulation:
    """One simulation id: its parameters, attempts and what came of them."""

    sim_id: int
    params: np.ndarray
    seed: int
    attempts: int = 1
    status: str = "running"
    reasons: list[str] = field(default_factory=list)
    runs: set[str] = field(default_factory=set)
    steps: set[int] = field(default_factory=set)
    replaced_by: int = -1


@dataclass
class Ledger:
    """Counts that must balance: produced = trained + evicted unseen + discarded (by reason) + in flight."""

    simulations: dict[int, Simulation] = field(default_factory=dict)
    produced: int = 0
    discarded: Counter = field(default_factory=Counter)
    arrivals: list[tuple[int, int, int, float]] = field(default_factory=list)  # sim, step, batch, seconds

    def receive(self, sim: Simulation, step: int, batch: int, seconds: float) -> bool:
        """Record one arriving step; False for a duplicate (already received from an earlier run)."""
        self.produced += 1
        if step in sim.steps:
            self.discarded["duplicate"] += 1
            return False
        sim.steps.add(step)
        self.arrivals.append((sim.sim_id, step, batch, seconds))
        return True

    def status_counts(self) -> dict[str, int]:
        counts = Counter(sim.status for sim in self.simulations.values())
        return {status: counts.get(status, 0) for status in (*STATUSES, "running")}
