"""A data-only producer: steps of pre-made fields and no computation, to measure what moving data costs."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from kit.simulators.base import Simulator, Step
from kit.space import ParameterSpace


class Premade(Simulator):
    """``steps`` steps of ``n x n`` float32 fields cycled from a few made once per process (parameter
    ``level`` scales nothing: the fields are random in [0, 1), drawn from ``seed``).

    Fields are shared between steps: read them, never write them (the kit does not).

    >>> steps = list(Premade(n=4, steps=3).run([0.5]))
    >>> [s.index for s in steps], steps[0].field.shape, steps[0].field.dtype
    ([1, 2, 3], (4, 4), dtype('float32'))
    """

    field_name = "premade"
    units = "1"
    field_range = (0.0, 1.0)
    t_end = 1.0

    def __init__(self, n: int = 100, steps: int = 100, variants: int = 4):
        if n < 1 or steps < 1 or variants < 1:
            raise ValueError(f"n, steps and variants must be >= 1, got n={n}, steps={steps}, variants={variants}")
        self.n, self.steps, self.variants = int(n), int(steps), int(variants)
        self.space = ParameterSpace({"level": (0.0, 1.0)})
        self.x = self.y = np.linspace(0.0, 1.0, self.n)
        self._fields = None

    def __repr__(self) -> str:
        return f"Premade(n={self.n}, steps={self.steps})"

    def __getstate__(self):
        return {**self.__dict__, "_fields": None}  # made where it runs, not pickled

    def run(self, params, seed=None) -> Iterator[Step]:
        self.space.validate(params)
        if self._fields is None:
            self._fields = np.random.default_rng(0).random((self.variants, self.n, self.n), dtype=np.float32)
        for k in range(1, self.steps + 1):
            yield Step(k, k * self.t_end / self.steps, self._fields[k % self.variants])
