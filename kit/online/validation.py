"""A fixed held-out set of simulations, drawn by QMC, simulated once and reused by every study."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kit.sampling import sobol
from kit.seeding import simulation_seed


@dataclass(frozen=True)
class ValidationSet:
    """Parameters ``(m, d)``, step times ``(steps,)`` and fields ``(m, steps, ny, nx)`` of held-out runs."""

    params: np.ndarray
    times: np.ndarray
    fields: np.ndarray

    @classmethod
    def simulate(cls, simulator, n: int, *, seed: int = 12345, client=None) -> ValidationSet:
        """Run ``n`` simulations at scrambled-Sobol points, on ``client`` if given, else here.

        The points and each simulation's seed (``simulation_seed(seed, i)``) derive from ``seed``.
        """
        params = sobol(simulator.space, n, seed=seed)
        return cls.at(simulator, params, [simulation_seed(seed, i) for i in range(n)], client=client)

    @classmethod
    def at(cls, simulator, params, seeds, *, client=None) -> ValidationSet:
        """Run the simulations of points ``params`` ``(m, d)`` with ``seeds`` (one each), on ``client`` if given."""
        params = np.atleast_2d(simulator.space.validate(params))
        if len(seeds) != len(params):
            raise ValueError(f"seeds must hold one seed per point: {len(params)} points, {len(seeds)} seeds")

        def trajectory(job):
            point, seed = job
            steps = list(simulator.run(point, seed=seed))
            return np.array([s.time for s in steps]), np.stack([s.field for s in steps]).astype(np.float32)

        jobs = [(point, int(seed)) for point, seed in zip(params, seeds, strict=True)]
        runs = client.gather(client.map(trajectory, jobs, pure=False)) if client else [trajectory(j) for j in jobs]
        return cls(params, runs[0][0], np.stack([fields for _, fields in runs]))

    def errors(self, trainer, encoding) -> np.ndarray:
        """Root-mean-square error per (simulation, step), in the field's units."""
        m, steps = self.fields.shape[:2]
        x = np.concatenate([encoding.inputs(p, self.times) for p in self.params])
        predicted = encoding.fields(trainer.predict(x)).reshape(self.fields.shape)
        return np.sqrt(((predicted - self.fields) ** 2).reshape(m, steps, -1).mean(-1))

    @staticmethod
    def summary(errors: np.ndarray) -> dict[str, float]:
        """Mean, 99th percentile and maximum of the errors."""
        return {
            "val_mean": float(errors.mean()),
            "val_p99": float(np.percentile(errors, 99)),
            "val_max": float(errors.max()),
        }
