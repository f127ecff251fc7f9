"""Seeds: one argument normalised once, child seeds derived with ``numpy.random.SeedSequence``."""

from __future__ import annotations

import numpy as np

SeedLike = int | np.random.Generator | np.random.SeedSequence | None


def rng(seed: SeedLike) -> np.random.Generator:
    """A ``Generator`` from an int, a ``SeedSequence``, a ``Generator`` (returned as is) or None (fresh entropy)."""
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, bool) or not (seed is None or isinstance(seed, (int, np.integer, np.random.SeedSequence))):
        raise TypeError(f"seed must be an int, a numpy SeedSequence or Generator, or None; got {seed!r}")
    if isinstance(seed, (int, np.integer)) and seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    return np.random.default_rng(seed)


def simulation_seed(study_seed: int, simulation_id: int) -> int:
    """The seed of simulation ``simulation_id`` in a study seeded with ``study_seed``.

    Derived from (study seed, simulation id) only, so it does not depend on which worker runs the
    simulation, in which order, or how often it was retried.

    >>> simulation_seed(7, 3) == simulation_seed(7, 3) != simulation_seed(7, 4)
    True
    """
    for label, value in (("study_seed", study_seed), ("simulation_id", simulation_id)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{label} must be a non-negative int, got {value!r}")
    sequence = np.random.SeedSequence(int(study_seed), spawn_key=(int(simulation_id),))
    return int(sequence.generate_state(1, dtype=np.uint64)[0])
