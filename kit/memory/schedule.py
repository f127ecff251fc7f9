"""Training schedules of a chain under a memory model: the trees the planners build and what they cost.

A schedule of stages ``s..t`` starts with the input ``a[s-1]`` of stage ``s`` and the gradient of the output
of stage ``t`` in memory, and ends with the gradient of ``a[s-1]``. It is one of (rotor's choices, Beaumont
et al. 2019):

- ``Keep(s, rest)``: forward stage ``s`` with grad (keeping ``xbar[s]``), run ``rest`` (stages ``s+1..t``,
  None when ``s == t``), backward stage ``s``;
- ``Checkpoint(s, split, right, left)``: forward stages ``s..split-1`` without grad keeping only
  ``a[split-1]``, run ``right`` (stages ``split..t``), free ``a[split-1]``, then run ``left`` (stages
  ``s..split-1``, which recomputes them from ``a[s-1]``).

:func:`operations` turns a tree into the operations a runtime executes (``Fn`` forward without grad, ``Fe``
forward with grad, ``B`` backward, ``free``) and :func:`simulate` replays them on the memory model in
bytes: the peak (beyond the chain's input, the parameters and their gradients) and the time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Costs:
    """Per-stage costs of a chain of ``L`` stages (arrays of length ``L``), as ``kit.memory.profile`` measures.

    ``x[i]`` is the output of stage ``i``; the input of stage 0 is held throughout and not counted;
    ``grad[i]`` the bytes of stage ``i``'s parameter gradients, allocated by its backward and kept to the end
    of the step (as after ``zero_grad(set_to_none=True)``); ``loss_bytes`` the loss value, counted for the
    whole step; ``input_grad`` says whether the backward of stage 0 allocates a gradient for the input.
    """

    uf: np.ndarray
    ub: np.ndarray
    x: np.ndarray
    xbar: np.ndarray
    fwd_tmp: np.ndarray
    bwd_tmp: np.ndarray
    grad: np.ndarray | None = None
    loss_bytes: int = 0
    input_bytes: int = 0
    input_grad: bool = False

    def grads(self, s: int, t: int) -> int:
        """Bytes of the parameter gradients of stages ``s..t``."""
        return 0 if self.grad is None or s > t else int(np.sum(self.grad[s : t + 1]))

    @property
    def length(self) -> int:
        return len(self.uf)

    def grad_in(self, s: int) -> int:
        """Bytes of the gradient the backward of stage ``s`` allocates for its input."""
        if s > 0:
            return int(self.x[s - 1])
        return int(self.input_bytes) if self.input_grad else 0

    @classmethod
    def from_profile(cls, profile) -> Costs:
        """The costs of a ``kit.memory.profile`` Dataset."""
        get = {key: np.asarray(profile[key].values) for key in ("uf", "ub", "x", "xbar", "fwd_tmp", "bwd_tmp")}
        grad = np.asarray(profile["grad_bytes"].values)
        # The loss of kit.memory.execute.mean_square: one float32 scalar.
        return cls(**get, grad=grad, loss_bytes=4, input_bytes=int(profile.attrs.get("input_bytes", 0)))


@dataclass(frozen=True)
class Keep:
    s: int
    rest: Keep | Checkpoint | None


@dataclass(frozen=True)
class Checkpoint:
    s: int
    split: int
    right: Keep | Checkpoint
    left: Keep | Checkpoint


def operations(tree) -> list[tuple[str, int]]:
    """The operations of a schedule tree, in order: ``("Fn"|"Fe"|"B", stage)`` and ``("free", stage)``
    (drop the kept output of ``stage``)."""
    if isinstance(tree, Keep):
        rest = operations(tree.rest) if tree.rest is not None else []
        return [("Fe", tree.s), *rest, ("B", tree.s)]
    sweep = []
    for j in range(tree.s, tree.split):
        sweep.append(("Fn", j))
        if j > tree.s:
            sweep.append(("free", j - 1))
    return [*sweep, *operations(tree.right), ("free", tree.split - 1), *operations(tree.left)]


def simulate(costs: Costs, ops: list[tuple[str, int]]) -> tuple[int, float]:
    """Peak bytes and time of ``ops`` on the memory model, starting with the last output's gradient held.

    Live tensors: ``a[j]`` (output kept by a forward without grad), ``abar[j]`` (output and saved tensors of
    a forward with grad), ``delta[j]`` (gradient of ``a[j]``), ``grad[j]`` (parameter gradients, kept to the
    end). A forward needs its input, a backward its ``abar`` and ``delta``; transients count while their
    operation runs. Violations raise ``ValueError``.
    """
    last = costs.length - 1
    live: dict[tuple[str, int], int] = {("delta", last): int(costs.x[last]), ("loss", last): int(costs.loss_bytes)}
    peak, seconds = sum(live.values()), 0.0

    def has_input(j):
        return j == 0 or ("a", j - 1) in live or ("abar", j - 1) in live

    for op, j in ops:
        now = sum(live.values())
        if op in ("Fn", "Fe"):
            if not has_input(j):
                raise ValueError(f"{op} {j} needs the output of stage {j - 1}, which is not in memory")
            size = int(costs.x[j]) if op == "Fn" else int(costs.xbar[j])
            peak = max(peak, now + size + int(costs.fwd_tmp[j]))
            live[("a" if op == "Fn" else "abar", j)] = size
            seconds += float(costs.uf[j])
        elif op == "B":
            if ("abar", j) not in live or ("delta", j) not in live or not has_input(j):
                raise ValueError(f"B {j} needs abar[{j}], delta[{j}] and its input in memory")
            grad = costs.grad_in(j)
            peak = max(peak, now + grad + costs.grads(j, j) + int(costs.bwd_tmp[j]))
            del live[("abar", j)], live[("delta", j)]
            live[("grad", j)] = costs.grads(j, j)
            if j > 0:
                live[("delta", j - 1)] = grad
            seconds += float(costs.ub[j])
        elif op == "free":
            del live[("a", j)]
        else:
            raise ValueError(f"unknown operation {op!r}")
    left = sorted(key for key in live if key[0] not in ("grad", "loss"))
    if left:
        raise ValueError(f"the schedule leaves {left} in memory")
    return int(peak), seconds


def store_all(s: int, t: int) -> Keep:
    """Keep every stage's graph: the fastest schedule and the largest peak."""
    return Keep(s, store_all(s + 1, t) if s < t else None)


def segments(s: int, t: int, bounds: list[int]) -> Keep | Checkpoint:
    """``torch.utils.checkpoint.checkpoint_sequential``: the inputs of the segments starting at ``bounds``
    (after ``s``) are kept during a first sweep without grad; each segment is recomputed once, the last not.
    """
    inner = [b for b in bounds if s < b <= t]
    if not inner:
        return store_all(s, t)
    split = inner[0]
    return Checkpoint(s, split, segments(split, t, inner[1:]), store_all(s, split - 1))


def uniform_bounds(length: int, count: int) -> list[int]:
    """Starts of segments 2..``count`` of ``length`` stages, cut as ``checkpoint_sequential`` does: ``count - 1``
    segments of ``length // count`` stages, the last one takes the rest.

    >>> uniform_bounds(10, 3)
    [3, 6]
    """
    size = length // count
    return [size * k for k in range(1, count)] if size else []
