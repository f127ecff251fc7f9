"""Space-filling designs over a :class:`~kit.space.ParameterSpace`: random, Latin hypercube, Sobol', pick-freeze.

Each design draws points in the unit hypercube and maps them through ``space.scale`` (the inverse CDF
of each parameter's distribution), so non-uniform parameters are honoured. scipy's QMC engines are
seeded with an integer drawn from ``kit.seeding.rng(seed)``: a ``Generator`` passed as ``seed`` is
advanced, never spawned, and the same seed gives the same design.
"""

from __future__ import annotations

import warnings

import numpy as np

from kit.seeding import SeedLike, rng
from kit.space import ParameterSpace

__all__ = ["lhs", "pick_freeze", "random", "sobol"]


def random(space: ParameterSpace, n: int, seed: SeedLike = None) -> np.ndarray:
    """``n`` independent draws from the space, as an array ``(n, d)``.

    Examples
    --------
    >>> space = ParameterSpace({"left": (100.0, 500.0), "right": (100.0, 500.0)})
    >>> random(space, 4, seed=0).shape
    (4, 2)
    """
    _check_space(space)
    n = _check_n(n)
    return space.scale(_unit_random(space.dim, n, rng(seed)))


def lhs(space: ParameterSpace, n: int, seed: SeedLike = None) -> np.ndarray:
    """A Latin hypercube of ``n`` points, as an array ``(n, d)``.

    Each of the ``n`` equiprobable bins of each parameter holds exactly one point
    (``scipy.stats.qmc.LatinHypercube``, points drawn at random inside their cells).

    Examples
    --------
    >>> space = ParameterSpace({"left": (0.0, 1.0), "right": (0.0, 1.0)})
    >>> points = lhs(space, 4, seed=0)
    >>> np.sort(np.floor(points * 4), axis=0).tolist()
    [[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]
    """
    _check_space(space)
    n = _check_n(n)
    return space.scale(_unit_lhs(space.dim, n, rng(seed)))


def sobol(space: ParameterSpace, n: int, seed: SeedLike = None) -> np.ndarray:
    """The first ``n`` points of a scrambled Sobol' sequence, as an array ``(n, d)``.

    Scrambling is LMS plus digital shift (``scipy.stats.qmc.Sobol``, 30 bits). The balance
    properties of Sobol' points need ``n`` to be a power of 2: any other ``n`` gives a
    ``UserWarning`` that points at the caller (the kit's own warning replaces scipy's). Each
    point sits at the centre of its cell of width ``2**-30``, so no coordinate is exactly 0,
    whose inverse CDF is ``-inf`` for unbounded distributions such as ``norm``.

    Examples
    --------
    >>> space = ParameterSpace({"left": (100.0, 500.0), "right": (100.0, 500.0)})
    >>> sobol(space, 8, seed=0).shape
    (8, 2)
    """
    _check_space(space)
    n = _check_n(n)
    _warn_unbalanced(n, "sobol")
    engine = _sobol_engine(space.dim, rng(seed))
    return space.scale(_sobol_draw(engine, n))


def pick_freeze(space: ParameterSpace, n: int, seed: SeedLike = None, *, base: str = "sobol") -> np.ndarray:
    """``n`` pick-freeze groups for one-pass Sobol' indices, as an array ``(n, d + 2, d)``.

    Row 0 of group ``i`` is ``A_i``, row 1 is ``B_i`` and row ``2 + k`` is ``A_i`` with column ``k``
    taken from ``B_i``. ``A`` and ``B`` are the two halves of one design of dimension ``2 d``
    (Saltelli 2002, doi:10.1016/S0010-4655(02)00280-1), drawn by ``base``: one of ``"sobol"``
    (default; ``n`` a power of 2, as for :func:`sobol`), ``"lhs"`` or ``"random"``. A study runs
    the ``n * (d + 2)`` rows and feeds each group's outputs to ``kit.sensitivity.IterativeSobol``.

    Examples
    --------
    >>> space = ParameterSpace({"a": (0.0, 1.0), "b": (0.0, 1.0), "c": (0.0, 1.0)})
    >>> groups = pick_freeze(space, 8, seed=0)
    >>> groups.shape
    (8, 5, 3)
    >>> A, B, E0 = groups[0, 0], groups[0, 1], groups[0, 2]
    >>> bool(E0[0] == B[0] and (E0[1:] == A[1:]).all())
    True
    """
    _check_space(space)
    n = _check_n(n)
    if not isinstance(base, str) or base not in _UNIT_DESIGNS:
        raise ValueError(f"unknown base design {base!r}; choose one of {sorted(_UNIT_DESIGNS)}")
    if base == "sobol":
        _warn_unbalanced(n, "pick_freeze")
    d = space.dim
    unit = _UNIT_DESIGNS[base](2 * d, n, rng(seed))
    a, b = space.scale(unit[:, :d]), space.scale(unit[:, d:])
    groups = np.repeat(a[:, None, :], d + 2, axis=1)
    groups[:, 1] = b
    columns = np.arange(d)
    groups[:, 2 + columns, columns] = b
    return groups


# Unit-cube designs ``(d, n, generator) -> (n, d)``, shared with the ask/tell samplers.


def _unit_random(d: int, n: int, generator: np.random.Generator) -> np.ndarray:
    return generator.random((n, d))


def _unit_lhs(d: int, n: int, generator: np.random.Generator) -> np.ndarray:
    from scipy.stats import qmc

    return qmc.LatinHypercube(d, rng=_engine_seed(generator)).random(n)


def _unit_sobol(d: int, n: int, generator: np.random.Generator) -> np.ndarray:
    return _sobol_draw(_sobol_engine(d, generator), n)


_UNIT_DESIGNS = {"random": _unit_random, "lhs": _unit_lhs, "sobol": _unit_sobol}


def _engine_seed(generator: np.random.Generator) -> int:
    """An integer seed for a scipy engine (scipy would spawn a Generator, which its state does not record)."""
    return int(generator.integers(2**63))


def _sobol_engine(d: int, generator_or_seed: np.random.Generator | int):
    from scipy.stats import qmc

    seed = generator_or_seed
    if isinstance(seed, np.random.Generator):
        seed = _engine_seed(seed)
    return qmc.Sobol(d, scramble=True, rng=seed)


def _sobol_draw(engine, n: int) -> np.ndarray:
    """The next ``n`` points of ``engine``, each at the centre of its ``2**-bits`` cell.

    A first draw is split into one point plus the rest: the same points, without scipy's warning
    about ``n`` (the public functions warn where the caller chose ``n``; samplers ask any size).
    """
    if engine.num_generated == 0 and n > 1:
        points = np.concatenate([engine.random(1), engine.random(n - 1)])
    else:
        points = engine.random(n)
    return points + 0.5 / 2**engine.bits


def _warn_unbalanced(n: int, caller: str) -> None:
    if n & (n - 1):
        warnings.warn(
            f"{caller}: n={n} is not a power of 2, which the balance properties of Sobol' points require; "
            f"use n={1 << (n - 1).bit_length()} or n={1 << (n.bit_length() - 1)}",
            UserWarning,
            stacklevel=3,
        )


def _check_space(space) -> None:
    if not isinstance(space, ParameterSpace):
        raise TypeError(f"space must be a kit.space.ParameterSpace, got {type(space).__name__}")


def _check_n(n, name: str = "n", minimum: int = 1) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {n!r}")
    return int(n)
