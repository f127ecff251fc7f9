"""A plain dask workflow to record beside the online studies: a tall-skinny QR reduction (TSQR).

Each of ``blocks`` tasks draws a seeded ``n x n`` block and keeps its triangular factor R; pairs of factors
are stacked and reduced by QR in a binary tree down to the R of the whole tall matrix. Every task is numpy
work of tens of milliseconds that hands a few MB to its parent, on whichever worker dask chose: a DAG of
``2 * blocks - 1`` tasks with transfers between workers, unlike a study's chains of chunks.
"""

from __future__ import annotations

import numpy as np

from kit.replay.trace import Trace


def block(index: int, n: int, seed: int) -> np.ndarray:
    """The R factor of the ``index``-th seeded ``n x n`` block."""
    rng = np.random.default_rng([seed, index])
    return np.linalg.qr(rng.standard_normal((n, n)), mode="r")


def combine(upper: np.ndarray, lower: np.ndarray) -> np.ndarray:
    """The R factor of two stacked R factors."""
    return np.linalg.qr(np.vstack([upper, lower]), mode="r")


def tsqr(client, *, blocks: int = 64, n: int = 600, seed: int = 0, name: str = "tsqr") -> tuple[Trace, np.ndarray]:
    """Run TSQR of ``blocks`` blocks of ``n x n`` on ``client`` (a ``distributed.Client``) and record it:
    its trace (:func:`kit.replay.record`) and the final R (``n x n``). Workers are warmed up first (numpy
    loaded, the functions shipped) so that the trace holds the workflow alone."""
    from kit.replay.recorder import record

    if isinstance(blocks, bool) or not isinstance(blocks, int) or blocks < 1 or blocks & (blocks - 1):
        raise ValueError(f"blocks must be a power of 2 (>= 1), got {blocks!r}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an int >= 1, got {n!r}")
    workers = len(client.scheduler_info()["workers"])
    client.gather(client.map(block, range(2 * workers), n=8, seed=seed, pure=False))  # warm-up, not recorded
    with record(client, name=name) as recording:
        level = client.map(block, range(blocks), n=n, seed=seed, pure=False)
        while len(level) > 1:
            level = [client.submit(combine, a, b, pure=False) for a, b in zip(level[::2], level[1::2], strict=True)]
        r = level[0].result()
    return recording.trace, r
