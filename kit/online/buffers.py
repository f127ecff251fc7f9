"""Training buffers between streaming simulations and the trainer: FIFO, FIRO and Reservoir.

The policies of Melissa's deep-learning server (Meyer et al., "Training Deep Surrogate Models with Large
Scale Online Learning", ICML 2023). Samples live in arrays preallocated at the first :meth:`Buffer.put`
(no Python object per sample); a permutation of slots (``order``) says which are held, so that inserting
and evicting ``k`` samples costs O(k) whatever the capacity, and a batch is one vectorised gather. No
policy ever drops a sample it has not trained on: when a buffer has no room, ``put`` stores fewer samples
than offered and the engine holds producers back. Ages are counted in batches (the buffer's clock
advances by one per ``get_batch``).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from numbers import Integral
from typing import Any, ClassVar

import numpy as np

from kit.seeding import SeedLike, rng


@dataclass(frozen=True, eq=False)
class Batch:
    """Samples drawn together: inputs ``x`` and targets ``y`` (first axis: sample), and where each came from."""

    x: np.ndarray
    y: np.ndarray
    sim_id: np.ndarray
    step: np.ndarray

    def __len__(self) -> int:
        return len(self.sim_id)


def _check_int(name: str, value: Any, low: int, high: int, hint: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or not low <= value <= high:
        raise ValueError(f"{name} must be an int in [{low}, {high}], got {value!r}{hint}")
    return int(value)


class Buffer:
    """Base of the policies: storage, use counts, ages, counters, draining and checkpoints.

    Positions ``0..len-1`` name the samples held; :meth:`_slots` maps them to rows of the storage arrays.
    Policies choose the positions to draw and to fill.

    Parameters
    ----------
    capacity
        Most samples held (>= 1).
    watermark
        Samples held before :meth:`ready` allows training, in ``[1, capacity]``; default
        ``max(1, capacity // 2)``, so producers can fill one half while the trainer draws from the other.
    seed
        Seed or ``numpy.random.Generator`` of the random draws.
    """

    name: ClassVar[str]
    _COUNTERS = ("put", "refused", "trained", "draws", "evicted_unseen")

    def __init__(self, capacity: int, watermark: int | None = None, seed: SeedLike = None):
        self.capacity = _check_int("capacity", capacity, 1, np.iinfo(np.int32).max)
        watermark = max(1, self.capacity // 2) if watermark is None else watermark
        self.watermark = _check_int("watermark", watermark, 1, self.capacity, f" (capacity is {self.capacity})")
        self._rng = rng(seed)
        self._x: np.ndarray | None = None  # (capacity, ...), allocated at the first put
        self._y: np.ndarray | None = None
        self._sim = np.zeros(self.capacity, dtype=np.int64)
        self._step = np.zeros(self.capacity, dtype=np.int64)
        self._uses = np.zeros(self.capacity, dtype=np.int64)
        self._birth = np.zeros(self.capacity, dtype=np.int64)
        self._order = np.arange(self.capacity)  # position -> slot; positions len.. are free slots
        self._n = 0
        self._unseen = 0  # held samples never drawn
        self._birth_sum = 0
        self._born: dict[int, int] = {}  # clock -> held samples born then (lazily emptied)
        self._clocks: deque[int] = deque()  # the keys of _born, oldest first
        self._removed = np.zeros(0, dtype=np.int64)  # histogram of use counts of samples no longer held
        self._counts = dict.fromkeys(self._COUNTERS, 0)
        self._clock = 0
        self.closed = False

    def __len__(self) -> int:
        return self._n

    def reseed(self, seed: SeedLike) -> None:
        """Draw from ``seed`` from now on (each training rank's buffer gets a stream of its own)."""
        self._rng = rng(seed)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(capacity={self.capacity}, watermark={self.watermark}, held={len(self)})"

    def _slots(self, positions: np.ndarray) -> np.ndarray:
        """Storage rows of the samples at ``positions``."""
        return self._order[positions]

    # -- putting ------------------------------------------------------------------------------------
    def room(self) -> int:
        """How many samples :meth:`put` would store now."""
        return 0 if self.closed else self.capacity - self._n

    def can_put(self) -> bool:
        """Whether :meth:`put` would store a sample now."""
        return self.room() > 0

    def put(self, x, y, sim_id, step) -> int:
        """Store the first samples of ``x`` ``(m, ...)`` and ``y`` (from simulation ``sim_id``, time steps
        ``step``: scalars or ``(m,)`` arrays), as many as there is room for; returns how many.

        ``y`` is an array ``(m, ...)``, or a list of arrays whose lengths add up to ``m`` (the fields of several
        messages, each copied once into place).
        """
        m = len(x)
        if self.closed:
            raise RuntimeError(f"put of {m} samples on a closed {type(self).__name__}: producers are finished")
        parts = y if isinstance(y, list) else [y]
        if sum(len(part) for part in parts) != m:
            raise ValueError(f"put needs as many targets as inputs: x has {m}, y has {sum(len(p) for p in parts)}")
        if self._x is None or x.shape[1:] != self._x.shape[1:] or any(p.shape[1:] != self._y.shape[1:] for p in parts):
            for part in parts:
                self._allocate(x, part)
        k = min(m, self.room())
        self._counts["refused"] += m - k
        if not k:
            return 0
        slots = self._fill(k)
        if k < m:
            x = x[:k]
            sim_id = sim_id[:k] if isinstance(sim_id, np.ndarray) and sim_id.ndim else sim_id
            step = step[:k] if isinstance(step, np.ndarray) and step.ndim else step
        self._x[slots], self._sim[slots], self._step[slots] = x, sim_id, step
        if len(parts) == 1:
            self._y[slots] = parts[0][:k]
        else:
            done = 0
            for part in parts:
                take = min(len(part), k - done)
                if take <= 0:
                    break
                where = (
                    slice(slots.start + done, slots.start + done + take)
                    if isinstance(slots, slice)
                    else slots[done : done + take]
                )
                self._y[where] = part[:take]
                done += take
        self._uses[slots], self._birth[slots] = 0, self._clock
        self._unseen += k
        self._birth_sum += k * self._clock
        if self._clocks and self._clocks[-1] == self._clock:
            self._born[self._clock] += k
        else:
            self._clocks.append(self._clock)
            self._born[self._clock] = k
        self._counts["put"] += k
        return k

    def reserve(self, x_shape: tuple, y_shape: tuple, dtype=np.float32) -> None:
        """Allocate the storage for samples of these shapes now (else at the first put), written once
        through so that its memory is committed: puts do not pay the page faults, and a stream does not
        wait while a large buffer is allocated."""
        self._allocate(np.empty((0, *x_shape), dtype), np.empty((0, *y_shape), dtype))

    def _allocate(self, x: np.ndarray, y: np.ndarray) -> None:
        if self._x is None:
            self._x = np.zeros((self.capacity, *x.shape[1:]), dtype=x.dtype)
            self._y = np.zeros((self.capacity, *y.shape[1:]), dtype=y.dtype)
            self._x.fill(0)
            self._y.fill(0)
        elif x.shape[1:] != self._x.shape[1:] or y.shape[1:] != self._y.shape[1:]:
            raise ValueError(
                f"samples of shape x {x.shape[1:]}, y {y.shape[1:]} do not fit a buffer of x {self._x.shape[1:]}, "
                f"y {self._y.shape[1:]}"
            )

    def _fill(self, k: int):
        """Slots for ``k`` new samples (``k <= room()``): appended at positions ``len..len+k-1``."""
        slots = self._order[self._n : self._n + k]
        self._n += k
        return slots

    # -- drawing ------------------------------------------------------------------------------------
    def ready(self) -> bool:
        """Whether training may draw a batch: ``watermark`` samples held, or any held once closed."""
        return len(self) >= (1 if self.closed else self.watermark)

    def close(self) -> None:
        """Mark the producers finished, so that what is left can be drained by :meth:`get_batch`."""
        self.closed = True

    def check_batch_size(self, batch_size: int) -> None:
        """Raise ``ValueError`` unless every batch allowed by :meth:`ready` can be drawn at ``batch_size``."""
        batch_size = _check_int("batch_size", batch_size, 1, np.iinfo(np.int64).max)
        if self.capacity < batch_size:
            raise ValueError(f"buffer capacity {self.capacity} is below the batch size {batch_size}")
        if self.watermark < batch_size:
            raise ValueError(
                f"buffer watermark {self.watermark} is below the batch size {batch_size}: training would start "
                f"before a batch is held; pass watermark >= {batch_size}"
            )

    def get_batch(self, batch_size: int, out: tuple[np.ndarray, np.ndarray] | None = None) -> Batch:
        """Draw ``batch_size`` samples (all that are left, if fewer, once closed) and count their use.

        ``out``: arrays ``(x, y)`` of at least ``batch_size`` samples to gather into (pinned host memory for
        a CUDA trainer); the batch's ``x`` and ``y`` are then views of them.
        """
        batch_size = _check_int("batch_size", batch_size, 1, self.capacity, f" (capacity is {self.capacity})")
        n = len(self)
        if n < batch_size and not (self.closed and n):
            raise ValueError(f"get_batch(batch_size={batch_size}) needs {batch_size} samples, the buffer holds {n}")
        k = min(batch_size, n)
        positions = self._choose(k)
        slots = self._slots(positions)
        if out is None:
            x, y = self._x[slots], self._y[slots]
        else:
            x, y = np.take(self._x, slots, axis=0, out=out[0][:k]), np.take(self._y, slots, axis=0, out=out[1][:k])
        batch = Batch(x, y, self._sim[slots], self._step[slots])
        first = int(np.count_nonzero(self._uses[slots] == 0))
        self._uses[slots] += 1
        self._after_draw(positions, first)
        self._unseen -= first
        self._counts["trained"] += first
        self._counts["draws"] += k
        self._clock += 1
        return batch

    def _choose(self, k: int) -> np.ndarray:
        """Positions of the ``k`` held samples to draw: uniform without replacement."""
        return self._rng.choice(len(self), size=k, replace=False)

    def _after_draw(self, positions: np.ndarray, first: int) -> None:
        """FIFO and FIRO remove what they draw (``first`` of them were drawn for the first time)."""
        self._remove(positions)

    # -- removing -----------------------------------------------------------------------------------
    def _remove(self, positions: np.ndarray) -> None:
        """Let go of the samples at ``positions``: the held ones left fill positions ``0..len-k-1``."""
        self._forget(self._slots(positions))
        m = self._n - len(positions)
        _swap(self._order, positions[positions < m], np.setdiff1d(np.arange(m, self._n), positions))
        self._n = m

    def _forget(self, slots: np.ndarray) -> None:
        """Count the uses and ages of the samples in ``slots``, about to leave the buffer."""
        uses = self._uses[slots]
        unseen = int(np.count_nonzero(uses == 0))
        self._counts["evicted_unseen"] += unseen
        self._unseen -= unseen
        removed = np.bincount(uses, minlength=len(self._removed))
        removed[: len(self._removed)] += self._removed
        self._removed = removed
        births = self._birth[slots]
        self._birth_sum -= int(births.sum())
        for clock, count in zip(*(a.tolist() for a in np.unique(births, return_counts=True)), strict=True):
            self._born[clock] -= count
        while self._clocks and not self._born[self._clocks[0]]:
            del self._born[self._clocks.popleft()]

    # -- reporting ----------------------------------------------------------------------------------
    def metrics(self) -> dict[str, float | int]:
        """Occupancy, ages (in batches, of held samples; 0 when empty) and counters, in O(1).

        ``put == trained + evicted_unseen + held_unseen`` holds at every point; ``reuse = draws - trained``.
        """
        n = len(self)
        return {
            "occupancy": n / self.capacity,
            "held": n,
            "held_unseen": self._unseen,
            "age_mean": self._clock - self._birth_sum / n if n else 0.0,
            "age_max": self._clock - self._clocks[0] if n else 0,
            "batches": self._clock,
            **self._counts,
            "reuse": self._counts["draws"] - self._counts["trained"],
        }

    def sample_shapes(self) -> tuple[tuple, tuple]:
        """The shapes of one sample's ``x`` and ``y`` (known from the first put)."""
        if self._x is None:
            raise ValueError(f"{type(self).__name__} holds no sample yet: its sample shapes are not known")
        return self._x.shape[1:], self._y.shape[1:]

    def held(self) -> Batch:
        """Copies of the samples held, in position order."""
        slots = self._slots(np.arange(self._n))
        if self._x is None:
            return Batch(np.zeros((0,)), np.zeros((0,)), self._sim[slots], self._step[slots])
        return Batch(self._x[slots], self._y[slots], self._sim[slots], self._step[slots])

    def uses_histogram(self) -> np.ndarray:
        """Counts of samples (removed and held) by number of uses: index ``k`` = used ``k`` times."""
        counts = np.bincount(self._uses[self._slots(np.arange(self._n))], minlength=len(self._removed))
        counts[: len(self._removed)] += self._removed
        return counts

    # -- checkpoints --------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume, as picklable numpy and python objects (copies, in position order)."""
        held = self.held()
        slots = self._slots(np.arange(self._n))
        return {
            "policy": self.name,
            "capacity": self.capacity,
            "watermark": self.watermark,
            "closed": self.closed,
            "clock": self._clock,
            "x": held.x,
            "y": held.y,
            "sim_id": held.sim_id,
            "step": held.step,
            "uses": self._uses[slots],
            "birth": self._birth[slots],
            "removed": self._removed.copy(),
            "counts": dict(self._counts),
            "rng": self._rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from :meth:`state_dict` of a buffer of the same policy and capacity.

        Samples come back at the positions they held (in slots ``0..len-1``), so every policy's later
        draws are the same as the saved buffer's would have been.
        """
        for key, mine in (("policy", self.name), ("capacity", self.capacity)):
            if state[key] != mine:
                raise ValueError(f"state was saved from a buffer with {key} {state[key]!r}, this one has {mine!r}")
        n = len(state["sim_id"])
        self.__init__(self.capacity, state["watermark"], self._rng)
        self.closed, self._clock = state["closed"], state["clock"]
        if n:
            self._allocate(state["x"], state["y"])
            self._x[:n], self._y[:n] = state["x"], state["y"]
        self._sim[:n], self._step[:n] = state["sim_id"], state["step"]
        self._uses[:n], self._birth[:n] = state["uses"], state["birth"]
        self._n = n
        self._unseen = int(np.count_nonzero(self._uses[:n] == 0))
        self._birth_sum = int(self._birth[:n].sum())
        clocks, counts = np.unique(self._birth[:n], return_counts=True)
        self._born = dict(zip(clocks.tolist(), counts.tolist(), strict=True))
        self._clocks = deque(clocks.tolist())
        self._removed = np.array(state["removed"], dtype=np.int64)
        self._counts = dict(state["counts"])
        self._rng.bit_generator.state = state["rng"]


def _swap(order: np.ndarray, a: np.ndarray, b: np.ndarray) -> None:
    """Exchange the entries of ``order`` at positions ``a`` and ``b`` (as many of each)."""
    order[a], order[b] = order[b], order[a].copy()


class FIFO(Buffer):
    """First in, first out: batches are the oldest samples, removed when drawn (each used exactly once).

    The held samples are a ring: position ``p`` is slot ``(head + p) % capacity``.
    """

    name = "fifo"

    def __init__(self, capacity: int, watermark: int | None = None, seed: SeedLike = None):
        super().__init__(capacity, watermark, seed)
        self._head = 0

    def _slots(self, positions: np.ndarray) -> np.ndarray:
        return (self._head + positions) % self.capacity

    def _fill(self, k: int):
        start = (self._head + self._n) % self.capacity
        self._n += k
        if start + k <= self.capacity:
            return slice(start, start + k)  # no wrap: a view, cheaper than an index array
        return np.arange(start, start + k) % self.capacity

    def _choose(self, k: int) -> np.ndarray:
        return np.arange(k)

    def _remove(self, positions: np.ndarray) -> None:  # the first len(positions), as _choose draws them
        self._forget(self._slots(positions))
        self._head = (self._head + len(positions)) % self.capacity
        self._n -= len(positions)


class FIRO(Buffer):
    """First in, random out: batches drawn uniformly without replacement, removed when drawn."""

    name = "firo"


class Reservoir(Buffer):
    """Melissa's reservoir: drawn samples stay and are reused; a new sample replaces a used one.

    When full, :meth:`put` replaces random samples already used at least once, and stores nothing when
    every held sample is unseen, so no sample leaves untrained. Batches are uniform without replacement
    within the batch. Once closed, batches take every remaining unseen sample first and :meth:`ready`
    turns False when none is left. Positions ``0..unseen-1`` hold the unseen samples, the rest the seen.
    """

    name = "reservoir"

    def room(self) -> int:
        return 0 if self.closed else self.capacity - self._unseen

    def _fill(self, k: int) -> np.ndarray:
        """Appended while not full, then in place of random seen samples; all land at unseen positions."""
        u, n = self._unseen, self._n
        appended = min(k, self.capacity - n)
        if appended:  # the new positions n..n+a-1 change places with the first seen ones
            new, target = np.arange(n, n + appended), np.arange(u, u + appended)
            _swap(self._order, new[new >= u + appended], np.setdiff1d(target, new))
            n += appended
        replaced = k - appended
        if replaced:  # random seen positions, moved to u+a..u+k-1
            chosen = u + appended + self._rng.choice(n - u - appended, size=replaced, replace=False)
            self._forget(self._order[chosen])  # seen samples: the unseen count is untouched
            target = np.arange(u + appended, u + k)
            _swap(self._order, np.setdiff1d(target, chosen), np.setdiff1d(chosen, target))
        self._n = n
        return self._order[u : u + k]

    def ready(self) -> bool:
        return self._unseen > 0 if self.closed else super().ready()

    def _choose(self, k: int) -> np.ndarray:
        if not self.closed:
            return super()._choose(k)
        u = self._unseen
        unseen = self._rng.permutation(u)[:k]
        return np.concatenate([unseen, u + self._rng.choice(len(self) - u, size=k - len(unseen), replace=False)])

    def _after_draw(self, positions: np.ndarray, first: int) -> None:
        """Drawn samples stay; the unseen among them change places with the last unseen positions."""
        u = self._unseen
        drawn = positions[positions < u]
        target = np.arange(u - first, u)
        _swap(self._order, np.setdiff1d(drawn, target), np.setdiff1d(target, drawn))

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """As :meth:`Buffer.load_state_dict`; the unseen samples first (in their order, then the seen in
        theirs), as the positions of a reservoir must be: samples merged from several ranks' buffers
        (:func:`kit.online.resplit.split`) may come interleaved."""
        super().load_state_dict(state)
        unseen = self._uses[: self._n] == 0
        self._order[: self._n] = np.concatenate([np.flatnonzero(unseen), np.flatnonzero(~unseen)])


BUFFERS: dict[str, type[Buffer]] = {cls.name: cls for cls in (FIFO, FIRO, Reservoir)}


def make_buffer(name: str, capacity: int, watermark: int | None = None, seed: SeedLike = None) -> Buffer:
    """The buffer registered as ``name`` (one of :data:`BUFFERS`: ``"fifo"``, ``"firo"``, ``"reservoir"``).

    >>> buffer = make_buffer("reservoir", capacity=8, watermark=4, seed=0)
    >>> buffer.put(np.zeros((3, 6)), np.zeros((3, 4, 4)), sim_id=0, step=[1, 2, 3]), len(buffer), buffer.ready()
    (3, 3, False)
    """
    if name not in BUFFERS:
        raise ValueError(f"unknown buffer {name!r}; valid names are {', '.join(map(repr, BUFFERS))}")
    return BUFFERS[name](capacity, watermark=watermark, seed=seed)
