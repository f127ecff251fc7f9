"""Training buffers between streaming simulations and the trainer: FIFO, FIRO and Reservoir.

The policies of Melissa's deep-learning server (Meyer et al., "Training Deep Surrogate Models with Large
Scale Online Learning", ICML 2023). No policy ever drops a sample it has not trained on: when a buffer
cannot accept a sample, ``put`` returns False and the engine holds producers back. Ages are counted in
batches (the buffer's clock advances by one per ``get_batch``).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import compress
from numbers import Integral
from typing import Any, ClassVar

import numpy as np

from kit.seeding import SeedLike, rng


@dataclass(frozen=True, eq=False)
class Sample:
    """One training sample: inputs ``x`` (e.g. normalised parameters and time) and target field ``y``."""

    sim_id: int
    step: int
    x: np.ndarray
    y: np.ndarray

    @property
    def key(self) -> tuple[int, int]:
        """``(sim_id, step)``, unique within a study."""
        return (self.sim_id, self.step)


def _check_int(name: str, value: Any, low: int, high: int, hint: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or not low <= value <= high:
        raise ValueError(f"{name} must be an int in [{low}, {high}], got {value!r}{hint}")
    return int(value)


class Buffer:
    """Base of the policies: storage, use counts, ages, counters, draining and checkpoints.

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
        self.capacity = _check_int("capacity", capacity, 1, np.iinfo(np.int64).max)
        watermark = max(1, self.capacity // 2) if watermark is None else watermark
        self.watermark = _check_int("watermark", watermark, 1, self.capacity, f" (capacity is {self.capacity})")
        self._rng = rng(seed)
        self._items: list[Sample] = []
        self._uses = np.zeros(self.capacity, dtype=np.int64)
        self._birth = np.zeros(self.capacity, dtype=np.int64)
        self._removed = np.zeros(0, dtype=np.int64)  # histogram of use counts of samples no longer held
        self._counts = dict.fromkeys(self._COUNTERS, 0)
        self._clock = 0
        self.closed = False

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(capacity={self.capacity}, watermark={self.watermark}, held={len(self)})"

    def can_put(self) -> bool:
        """Whether :meth:`put` would store a sample now."""
        return not self.closed and len(self) < self.capacity

    def put(self, sample: Sample) -> bool:
        """Store ``sample``; False (nothing stored) when the buffer cannot accept it now."""
        if self.closed:
            raise RuntimeError(f"put({sample.key}) on a closed {type(self).__name__}: producers are finished")
        if not self.can_put():
            self._counts["refused"] += 1
            return False
        slot = self._slot()
        if slot == len(self):
            self._items.append(sample)
        else:
            self._items[slot] = sample
        self._uses[slot], self._birth[slot] = 0, self._clock
        self._counts["put"] += 1
        return True

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

    def get_batch(self, batch_size: int) -> list[Sample]:
        """Draw ``batch_size`` samples (all that are left, if fewer, once closed) and count their use."""
        batch_size = _check_int("batch_size", batch_size, 1, self.capacity, f" (capacity is {self.capacity})")
        n = len(self)
        if n < batch_size and not (self.closed and n):
            raise ValueError(f"get_batch(batch_size={batch_size}) needs {batch_size} samples, the buffer holds {n}")
        index = self._choose(min(batch_size, n))
        batch = [self._items[i] for i in index]
        self._counts["trained"] += int(np.count_nonzero(self._uses[index] == 0))
        self._counts["draws"] += len(index)
        self._uses[index] += 1
        self._after_draw(index)
        self._clock += 1
        return batch

    def metrics(self) -> dict[str, float | int]:
        """Occupancy, ages (in batches, of held samples; 0 when empty) and counters.

        ``put == trained + evicted_unseen + held_unseen`` holds at every point; ``reuse = draws - trained``.
        """
        n = len(self)
        ages = self._clock - self._birth[:n]
        return {
            "occupancy": n / self.capacity,
            "held": n,
            "held_unseen": int(np.count_nonzero(self._uses[:n] == 0)),
            "age_mean": float(ages.mean()) if n else 0.0,
            "age_max": int(ages.max()) if n else 0,
            "batches": self._clock,
            **self._counts,
            "reuse": self._counts["draws"] - self._counts["trained"],
        }

    def uses_histogram(self) -> np.ndarray:
        """Counts of samples (removed and held) by number of uses: index ``k`` = used ``k`` times."""
        counts = np.bincount(self._uses[: len(self)], minlength=len(self._removed))
        counts[: len(self._removed)] += self._removed
        return counts

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume, as picklable python and numpy objects (sample arrays are shared)."""
        n = len(self)
        return {
            "policy": self.name,
            "capacity": self.capacity,
            "watermark": self.watermark,
            "closed": self.closed,
            "clock": self._clock,
            "samples": [(s.sim_id, s.step, s.x, s.y) for s in self._items],
            "uses": self._uses[:n].copy(),
            "birth": self._birth[:n].copy(),
            "removed": self._removed.copy(),
            "counts": dict(self._counts),
            "rng": self._rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from :meth:`state_dict` of a buffer of the same policy and capacity."""
        for key, mine in (("policy", self.name), ("capacity", self.capacity)):
            if state[key] != mine:
                raise ValueError(f"state was saved from a buffer with {key} {state[key]!r}, this one has {mine!r}")
        n = len(state["samples"])
        self.watermark, self.closed, self._clock = state["watermark"], state["closed"], state["clock"]
        self._items = [Sample(*fields) for fields in state["samples"]]
        self._uses[:n], self._birth[:n] = state["uses"], state["birth"]
        self._removed = np.array(state["removed"], dtype=np.int64)
        self._counts = dict(state["counts"])
        self._rng.bit_generator.state = state["rng"]

    def _choose(self, k: int) -> np.ndarray:
        """Indices of the ``k`` held samples to draw."""
        return self._rng.choice(len(self), size=k, replace=False)

    def _after_draw(self, index: np.ndarray) -> None:
        """FIFO and FIRO remove what they draw."""
        self._remove(index)

    def _slot(self) -> int:
        """Where :meth:`put` stores the next sample: appended."""
        return len(self)

    def _forget(self, index: np.ndarray) -> None:
        """Count the uses of the samples at ``index``, about to leave the buffer."""
        self._counts["evicted_unseen"] += int(np.count_nonzero(self._uses[index] == 0))
        removed = np.bincount(self._uses[index], minlength=len(self._removed))
        removed[: len(self._removed)] += self._removed
        self._removed = removed

    def _remove(self, index: np.ndarray) -> None:
        """Remove the samples at ``index``, keeping the order of the others."""
        self._forget(index)
        n = len(self)
        keep = np.ones(n, dtype=bool)
        keep[index] = False
        m = n - len(index)
        self._items = list(compress(self._items, keep))
        self._uses[:m], self._birth[:m] = self._uses[:n][keep], self._birth[:n][keep]


class FIFO(Buffer):
    """First in, first out: batches are the oldest samples, removed when drawn (each used exactly once)."""

    name = "fifo"

    def _choose(self, k: int) -> np.ndarray:
        return np.arange(k)


class FIRO(Buffer):
    """First in, random out: batches drawn uniformly without replacement, removed when drawn."""

    name = "firo"


class Reservoir(Buffer):
    """Melissa's reservoir: drawn samples stay and are reused; a new sample replaces a used one.

    When full, :meth:`put` replaces a random sample already used at least once, and refuses (returns False)
    when every held sample is unseen, so no sample leaves untrained. Batches are uniform without
    replacement within the batch. Once closed, batches take every remaining unseen sample first and
    :meth:`ready` turns False when none is left.
    """

    name = "reservoir"

    def can_put(self) -> bool:
        return not self.closed and (len(self) < self.capacity or bool(self._uses[: len(self)].any()))

    def _slot(self) -> int:
        """Appended while not full, else in place of a random sample already used."""
        if len(self) < self.capacity:
            return len(self)
        seen = np.flatnonzero(self._uses[: len(self)] > 0)
        k = self._rng.integers(len(seen))
        self._forget(seen[k : k + 1])
        return int(seen[k])

    def ready(self) -> bool:
        if self.closed:
            return bool((self._uses[: len(self)] == 0).any())
        return super().ready()

    def _choose(self, k: int) -> np.ndarray:
        if not self.closed:
            return super()._choose(k)
        unseen = self._rng.permutation(np.flatnonzero(self._uses[: len(self)] == 0))[:k]
        seen = np.flatnonzero(self._uses[: len(self)] > 0)
        return np.concatenate([unseen, self._rng.choice(seen, size=k - len(unseen), replace=False)])

    def _after_draw(self, index: np.ndarray) -> None:
        """Drawn samples stay."""


BUFFERS: dict[str, type[Buffer]] = {cls.name: cls for cls in (FIFO, FIRO, Reservoir)}


def make_buffer(name: str, capacity: int, watermark: int | None = None, seed: SeedLike = None) -> Buffer:
    """The buffer registered as ``name`` (one of :data:`BUFFERS`: ``"fifo"``, ``"firo"``, ``"reservoir"``).

    >>> buffer = make_buffer("reservoir", capacity=8, watermark=4, seed=0)
    >>> buffer.put(Sample(0, 1, np.zeros(6), np.zeros((4, 4)))), len(buffer), buffer.ready()
    (True, 1, False)
    """
    if name not in BUFFERS:
        raise ValueError(f"unknown buffer {name!r}; valid names are {', '.join(map(repr, BUFFERS))}")
    return BUFFERS[name](capacity, watermark=watermark, seed=seed)
