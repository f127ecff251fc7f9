"""The offline baseline: simulate a fixed set once, store every step, train epochs over it."""

from __future__ import annotations

import numpy as np

from kit.online.trainer import Encoding, Trainer
from kit.seeding import rng, simulation_seed


def simulate_dataset(simulator, params: np.ndarray, encoding: Encoding, *, seed: int = 0, client=None):
    """Inputs ``(m, d + 1)`` and targets ``(m, ny, nx)`` of every step of every simulation at ``params``."""

    def run(i_point):
        i, point = i_point
        steps = list(simulator.run(point, seed=simulation_seed(seed, i)))
        x = encoding.inputs(point, [s.time for s in steps])
        return x, encoding.targets(np.stack([s.field for s in steps]))

    jobs = list(enumerate(np.atleast_2d(params)))
    runs = client.gather(client.map(run, jobs, pure=False)) if client else [run(job) for job in jobs]
    return np.concatenate([x for x, _ in runs]), np.concatenate([y for _, y in runs])


def train_offline(
    trainer: Trainer,
    x: np.ndarray,
    y: np.ndarray,
    *,
    batches: int,
    batch_size: int,
    seed: int = 0,
    validation=None,
    encoding: Encoding | None = None,
    validate_every: int = 50,
    stored=None,
) -> list[dict]:
    """``batches`` gradient steps over shuffled epochs of ``(x, y)``; returns validation checks as rows, with
    ``train_mean``, the same error on ``stored`` (a :class:`~kit.online.validation.ValidationSet` of the
    training simulations), when given: the gap between the two shows overfitting."""
    if batch_size > len(x):
        raise ValueError(f"batch_size {batch_size} exceeds the {len(x)} stored samples")
    generator, order, position, checks = rng(seed), np.empty(0, dtype=int), 0, []
    for batch in range(1, batches + 1):
        if position + batch_size > len(order):
            order, position = generator.permutation(len(x)), 0
        index = order[position : position + batch_size]
        position += batch_size
        trainer.step(x[index], y[index])
        if validation is not None and (batch % validate_every == 0 or batch == batches):
            checks.append({"batch": batch, **validation.summary(validation.errors(trainer, encoding))})
            if stored is not None:
                checks[-1]["train_mean"] = float(stored.errors(trainer, encoding).mean())
    return checks
