"""A simulator wrapper that injects faults, to test that a study detects, retries and accounts for them."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

FAULTS = ("exception", "nan", "hang", "kill", "slow", "short")


class Faulty:
    """Behave like ``simulator`` but fail at step ``at_step`` of its first ``times`` runs.

    Runs are counted per seed in marker files under ``marker_dir`` (shared by the dask workers of one
    machine; concurrent runs of one seed, as the rows of a pick-freeze group, each get their own number),
    so a retry of the same simulation succeeds once ``times`` runs have failed; ``times=None`` fails every
    run. ``only`` restricts the faults to the simulations whose seed is listed.

    Faults: ``"exception"`` raises ``RuntimeError``, ``"nan"`` yields a NaN field, ``"hang"`` sleeps
    ``hang_seconds``, ``"kill"`` ends the worker process with ``os._exit``, ``"slow"`` sleeps ``hang_seconds``
    before each step from ``at_step`` on, ``"short"`` ends the run before step ``at_step``.
    """

    def __init__(
        self,
        simulator,
        fault: str,
        marker_dir,
        *,
        at_step: int = 2,
        times: int | None = 1,
        only: list[int] | None = None,
        hang_seconds: float = 30.0,
    ):
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; choose one of {FAULTS}")
        self.simulator, self.fault, self.at_step, self.times = simulator, fault, at_step, times
        self.marker_dir, self.only, self.hang_seconds = Path(marker_dir), only, hang_seconds

    def __getattr__(self, name):
        if name == "simulator":
            raise AttributeError(name)
        return getattr(self.simulator, name)

    def run(self, params, seed=None):
        broken = self._should_fail(seed)
        for step in self.simulator.run(params, seed=seed):
            if broken and self.fault == "short" and step.index == self.at_step:
                return
            if broken and self.fault == "slow" and step.index >= self.at_step:
                time.sleep(self.hang_seconds)
            if broken and step.index == self.at_step:
                self._inject()
                if self.fault == "nan":
                    step = type(step)(step.index, step.time, np.full_like(step.field, np.nan))
            yield step

    def _should_fail(self, seed) -> bool:
        if self.only is not None and seed not in self.only:
            return False
        self.marker_dir.mkdir(parents=True, exist_ok=True)
        runs = 0  # this run's number among those of its seed: the first marker file it creates (atomically)
        while True:
            try:
                os.close(os.open(self.marker_dir / f"{seed}.run{runs}", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                break
            except FileExistsError:
                runs += 1
        return self.times is None or runs < self.times

    def _inject(self) -> None:
        if self.fault == "exception":
            raise RuntimeError(f"injected fault at step {self.at_step}")
        if self.fault == "hang":
            time.sleep(self.hang_seconds)
        if self.fault == "kill":
            os._exit(1)
