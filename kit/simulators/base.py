"""Types shared by the simulators."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class Step:
    """One time step yielded by a simulator's ``run``.

    Attributes
    ----------
    index
        Step number, ``1..steps``.
    time
        Simulated time after the step.
    field
        The state after the step, a fresh array owned by the caller.
    """

    index: int
    time: float
    field: np.ndarray
