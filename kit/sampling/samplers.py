"""Ask/tell samplers: the online-training engine asks for parameters and tells per-sample losses back.

Every sampler follows the :class:`Sampler` contract and is built by name with :func:`make_sampler`.
Non-adaptive samplers check what they are told and ignore it; adaptive ones (added later under new
names in :data:`SAMPLERS`) use the losses to decide where to sample next.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from kit.sampling.designs import _check_n, _check_space, _engine_seed, _sobol_draw, _sobol_engine, _unit_lhs
from kit.seeding import SeedLike, rng
from kit.space import ParameterSpace

__all__ = [
    "SAMPLERS",
    "FixedSampler",
    "LHSSampler",
    "RandomSampler",
    "Sampler",
    "SobolSampler",
    "check_tell",
    "make_sampler",
]


@runtime_checkable
class Sampler(Protocol):
    """What the engine needs of a sampler.

    - ``space``: the :class:`~kit.space.ParameterSpace` sampled.
    - ``ask(n=1)``: the next ``n`` points (``n >= 0``), an array ``(n, d)`` inside ``space``.
    - ``tell(params, losses)``: per-sample losses ``(m,)`` of points ``(m, d)`` asked earlier;
      wrong shapes raise ``ValueError`` naming the argument (see :func:`check_tell`).
    - ``state_dict()``: a JSON-serialisable dict; ``load_state_dict(state)`` on a sampler of the
      same class and space restores it exactly (the following asks are identical).
    - optional ``seed_group(index)``: the point whose simulation seed point ``index`` shares (default: its
      own); the rows of one pick-freeze group share theirs, so that a stochastic simulator's noise does
      not bias the indices.

    Randomness comes only from the ``seed`` given at construction, never from global state.
    """

    space: ParameterSpace

    def ask(self, n: int = 1) -> np.ndarray: ...

    def tell(self, params: np.ndarray, losses: np.ndarray) -> None: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def check_tell(space: ParameterSpace, params, losses) -> tuple[np.ndarray, np.ndarray]:
    """Validate a ``tell``: ``params`` ``(m, d)`` inside ``space`` and ``losses`` ``(m,)``; return both as floats.

    Examples
    --------
    >>> space = ParameterSpace({"a": (0.0, 1.0), "b": (0.0, 1.0)})
    >>> params, losses = check_tell(space, [[0.1, 0.2], [0.3, 0.4]], [1.0, 2.0])
    >>> params.shape, losses.shape
    ((2, 2), (2,))
    """
    arrays = {}
    for label, value in (("params", params), ("losses", losses)):
        try:
            arrays[label] = np.asarray(value, dtype=float)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{label} must be numbers, got {value!r}") from exc
    params, losses = arrays["params"], arrays["losses"]
    if params.ndim != 2 or params.shape[1] != space.dim:
        raise ValueError(
            f"params must have shape (m, {space.dim}) for parameters {list(space.names)}, got {params.shape}"
        )
    if losses.shape != (len(params),):
        raise ValueError(f"losses must have shape (m,) = ({len(params)},) to match params, got {losses.shape}")
    space.validate(params)
    return params, losses


class _BaseSampler:
    """Shared plumbing: space check, ``tell`` that validates and ignores, state header checks."""

    def __init__(self, space: ParameterSpace):
        _check_space(space)
        self.space = space

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.space!r})"

    def tell(self, params, losses) -> None:
        """Check shapes and bounds (``ValueError`` naming ``params`` or ``losses``), then ignore them."""
        check_tell(self.space, params, losses)

    def _header(self) -> dict[str, Any]:
        return {"sampler": type(self).__name__, "names": list(self.space.names)}

    def _check_header(self, state) -> None:
        if not isinstance(state, dict):
            raise ValueError(f"state must be a dict from state_dict(), got {type(state).__name__}")
        expected = self._header()
        for key in ("sampler", "names"):
            if state.get(key) != expected[key]:
                raise ValueError(
                    f"state is for {key} {state.get(key)!r}, this sampler has {expected[key]!r}; "
                    f"load it into a {state.get('sampler')} over the same space"
                )


class RandomSampler(_BaseSampler):
    """Independent draws from the space.

    ``RandomSampler(space, seed).ask(n)`` equals ``kit.sampling.random(space, n, seed)``, and
    successive asks continue the same stream.

    Examples
    --------
    >>> space = ParameterSpace({"a": (0.0, 1.0), "b": (0.0, 1.0)})
    >>> sampler = RandomSampler(space, seed=0)
    >>> sampler.ask(3).shape
    (3, 2)
    """

    def __init__(self, space: ParameterSpace, seed: SeedLike = None):
        super().__init__(space)
        self._rng = rng(seed)

    def ask(self, n: int = 1) -> np.ndarray:
        """The next ``n`` points, an array ``(n, d)``."""
        n = _check_n(n, minimum=0)
        return self.space.scale(self._rng.random((n, self.space.dim)))

    def state_dict(self) -> dict[str, Any]:
        """``sampler``, ``names`` and ``rng`` (the bit generator's state)."""
        return {**self._header(), "rng": _generator_state(self._rng)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` (a new generator: one passed as ``seed`` is left untouched)."""
        self._check_header(state)
        self._rng = _generator_from_state(state["rng"])


class LHSSampler(_BaseSampler):
    """Latin hypercubes in blocks: every ``block`` consecutive points, counted from the start, form one.

    A new ``scipy.stats.qmc.LatinHypercube`` design of ``block`` points is drawn when the previous
    one is used up, whatever the sizes of the asks. ``LHSSampler(space, seed, block=n).ask(n)``
    equals ``kit.sampling.lhs(space, n, seed)``.

    Examples
    --------
    >>> space = ParameterSpace({"a": (0.0, 1.0), "b": (0.0, 1.0)})
    >>> sampler = LHSSampler(space, seed=0, block=4)
    >>> points = np.concatenate([sampler.ask(1), sampler.ask(3)])
    >>> np.sort(np.floor(points * 4), axis=0).tolist()
    [[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]
    """

    def __init__(self, space: ParameterSpace, seed: SeedLike = None, *, block: int = 64):
        super().__init__(space)
        self.block = _check_n(block, name="block")
        self._rng = rng(seed)
        self._pending = np.empty((0, space.dim))

    def __repr__(self) -> str:
        return f"LHSSampler({self.space!r}, block={self.block})"

    def ask(self, n: int = 1) -> np.ndarray:
        """The next ``n`` points, an array ``(n, d)``."""
        n = _check_n(n, minimum=0)
        parts, missing = [], n
        while missing:
            if not len(self._pending):
                self._pending = _unit_lhs(self.space.dim, self.block, self._rng)
            take = min(missing, len(self._pending))
            parts.append(self._pending[:take])
            self._pending = self._pending[take:]
            missing -= take
        unit = np.concatenate(parts) if parts else np.empty((0, self.space.dim))
        return self.space.scale(unit)

    def state_dict(self) -> dict[str, Any]:
        """``sampler``, ``names``, ``block``, ``rng`` and ``pending`` (unit points left in the current block)."""
        return {
            **self._header(),
            "block": self.block,
            "rng": _generator_state(self._rng),
            "pending": self._pending.tolist(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`, block size included."""
        self._check_header(state)
        pending = np.asarray(state["pending"], dtype=float).reshape(-1, self.space.dim)
        self.block = _check_n(state["block"], name="block")
        self._rng = _generator_from_state(state["rng"])
        self._pending = pending


class SobolSampler(_BaseSampler):
    """One scrambled Sobol' sequence, continued across asks: ``ask(4)`` then ``ask(4)`` equals one ``ask(8)``.

    ``SobolSampler(space, seed).ask(n)`` equals ``kit.sampling.sobol(space, n, seed)``. Asks may be of
    any size (no warning); the points asked so far are balanced whenever their count is a power of 2.

    Examples
    --------
    >>> space = ParameterSpace({"a": (0.0, 1.0), "b": (0.0, 1.0)})
    >>> one, two = SobolSampler(space, seed=0), SobolSampler(space, seed=0)
    >>> bool((np.concatenate([one.ask(3), one.ask(5)]) == two.ask(8)).all())
    True
    """

    def __init__(self, space: ParameterSpace, seed: SeedLike = None):
        super().__init__(space)
        self._engine_seed = _engine_seed(rng(seed))
        self._engine = _sobol_engine(space.dim, self._engine_seed)

    def ask(self, n: int = 1) -> np.ndarray:
        """The next ``n`` points of the sequence, an array ``(n, d)``."""
        n = _check_n(n, minimum=0)
        return self.space.scale(_sobol_draw(self._engine, n))

    def state_dict(self) -> dict[str, Any]:
        """``sampler``, ``names``, ``engine_seed`` (scrambling) and ``generated`` (points asked so far)."""
        return {**self._header(), "engine_seed": self._engine_seed, "generated": int(self._engine.num_generated)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`: rebuild the scrambled engine and fast-forward it."""
        self._check_header(state)
        generated = _check_n(state["generated"], name="state['generated']", minimum=0)
        engine = _sobol_engine(self.space.dim, int(state["engine_seed"]))
        if generated:
            engine.fast_forward(generated)
        self._engine_seed, self._engine = int(state["engine_seed"]), engine


class PickFreezeSampler(_BaseSampler):
    """The rows of successive pick-freeze groups, so that a study's simulations also yield Sobol' indices.

    Point ``i`` is row ``i % (d + 2)`` of group ``i // (d + 2)`` (rows A, B, E_1 ... E_d); group ``g`` is
    built from point ``g`` of one scrambled Sobol' sequence of dimension ``2 d``, continued across asks:
    ``PickFreezeSampler(space, seed).ask(n * (d + 2))`` equals
    ``kit.sampling.pick_freeze(space, n, seed).reshape(-1, d)``. Feed the outputs to
    ``kit.sensitivity.FieldSobol`` (by point index) or ``IterativeSobol`` (by group).

    Examples
    --------
    >>> space = ParameterSpace({"a": (0.0, 1.0), "b": (0.0, 1.0)})
    >>> sampler = PickFreezeSampler(space, seed=0)
    >>> sampler.group_size, sampler.ask(5).shape
    (4, (5, 2))
    """

    def __init__(self, space: ParameterSpace, seed: SeedLike = None):
        super().__init__(space)
        self._engine_seed = _engine_seed(rng(seed))
        self._restart(0)

    @property
    def group_size(self) -> int:
        return self.space.dim + 2

    def seed_group(self, index: int) -> int:
        """Point ``index`` is simulated with the seed of its group's first row."""
        return index - index % self.group_size

    def ask(self, n: int = 1) -> np.ndarray:
        """The next ``n`` rows, an array ``(n, d)`` (groups continue across asks)."""
        n = _check_n(n, minimum=0)
        rows = [self._row(self._asked + i) for i in range(n)]
        self._asked += n
        return self.space.scale(np.reshape(rows, (n, self.space.dim)))

    def _row(self, index: int) -> np.ndarray:
        d = self.space.dim
        group, row = divmod(index, self.group_size)
        while self._engine.num_generated <= group:  # the group's point (A, B) of the 2d-dimensional sequence
            self._current = _sobol_draw(self._engine, 1)[0]
        a, b = self._current[:d], self._current[d:]
        if row == 1:
            return b
        point = a.copy()
        if row >= 2:
            point[row - 2] = b[row - 2]
        return point

    def _restart(self, asked: int) -> None:
        """A new engine positioned after ``asked`` rows."""
        self._engine = _sobol_engine(2 * self.space.dim, self._engine_seed)
        self._asked, self._current = asked, None
        started = -(-asked // self.group_size)  # groups with at least one row asked
        if asked % self.group_size:
            if started > 1:
                self._engine.fast_forward(started - 1)
            self._current = _sobol_draw(self._engine, 1)[0]
        elif started:
            self._engine.fast_forward(started)

    def state_dict(self) -> dict[str, Any]:
        """``sampler``, ``names``, ``engine_seed`` and ``asked`` (rows asked so far)."""
        return {**self._header(), "engine_seed": self._engine_seed, "asked": self._asked}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`: rebuild the engine and fast-forward it to the current group."""
        self._check_header(state)
        self._engine_seed = int(state["engine_seed"])
        self._restart(_check_n(state["asked"], name="state['asked']", minimum=0))


class FixedSampler(_BaseSampler):
    """Given points, asked in order: a fixed design (e.g. pick-freeze groups, an offline set) as a sampler.

    Asking past the last point is an error saying how many there are.

    Examples
    --------
    >>> space = ParameterSpace({"a": (0.0, 1.0)})
    >>> FixedSampler(space, [[0.1], [0.2]]).ask(2).tolist()
    [[0.1], [0.2]]
    """

    def __init__(self, space: ParameterSpace, points):
        super().__init__(space)
        self.points = np.atleast_2d(space.validate(points))
        self._next = 0

    def ask(self, n: int = 1) -> np.ndarray:
        """The next ``n`` of the given points."""
        n = _check_n(n, minimum=0)
        if self._next + n > len(self.points):
            raise ValueError(
                f"FixedSampler has {len(self.points)} points; {self._next} were asked already, not {n} more"
            )
        self._next += n
        return self.points[self._next - n : self._next].copy()

    def state_dict(self) -> dict[str, Any]:
        """``sampler``, ``names`` and ``next`` (how many points were asked)."""
        return {**self._header(), "next": self._next}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._check_header(state)
        self._next = int(state["next"])


#: Sampler classes by name, each called as ``cls(space, seed=seed, **options)``.
SAMPLERS: dict[str, type] = {
    "random": RandomSampler,
    "lhs": LHSSampler,
    "sobol": SobolSampler,
    "pick_freeze": PickFreezeSampler,
}


def make_sampler(name: str, space: ParameterSpace, seed: SeedLike = None, **options) -> Sampler:
    """The sampler registered as ``name`` in :data:`SAMPLERS`, over ``space``.

    Examples
    --------
    >>> space = ParameterSpace({"a": (0.0, 1.0), "b": (0.0, 1.0)})
    >>> make_sampler("lhs", space, seed=0, block=16)
    LHSSampler(ParameterSpace({'a': (0, 1), 'b': (0, 1)}), block=16)
    """
    if not isinstance(name, str) or name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; choose one of {sorted(SAMPLERS)}")
    return SAMPLERS[name](space, seed=seed, **options)


def _generator_state(generator: np.random.Generator) -> dict[str, Any]:
    """The bit generator's state with arrays as lists, so that it survives JSON."""
    return _plain(generator.bit_generator.state)


def _plain(value):
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.integer):
        return int(value)
    return value


def _generator_from_state(state: dict[str, Any]) -> np.random.Generator:
    name = state.get("bit_generator") if isinstance(state, dict) else None
    bit_generator_class = getattr(np.random, str(name), None)
    if not (isinstance(bit_generator_class, type) and issubclass(bit_generator_class, np.random.BitGenerator)):
        raise ValueError(f"state['rng'] names no numpy bit generator: {name!r}")
    bit_generator = bit_generator_class()
    bit_generator.state = state
    return np.random.Generator(bit_generator)
