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
forward with grad, ``B`` backward, ``free``); :func:`with_offloads` adds ``offload`` and ``prefetch``
operations that move a kept stage's saved tensors to host memory and back; :func:`simulate` replays them on
the memory model in bytes: the peak (beyond the chain's input, the parameters and their gradients) and the
time.
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
    whole step; ``input_grad`` says whether the backward of stage 0 allocates a gradient for the input;
    ``offloadable[i]`` the bytes of ``xbar[i]`` beyond the output (tensors autograd saved) that an offload
    moves to host memory; ``fn_tmp[i]`` the transient of a forward without grad (``fwd_tmp`` when absent);
    ``buffers[i]`` the bytes of stage ``i``'s buffers, copied before each recomputation (BatchNorm statistics
    are put back after it) and held to the stage's backward when it recomputes with grad.
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
    offloadable: np.ndarray | None = None
    fn_tmp: np.ndarray | None = None
    buffers: np.ndarray | None = None

    def __post_init__(self):
        for name in ("ub", "x", "xbar", "fwd_tmp", "bwd_tmp", "grad", "offloadable", "fn_tmp", "buffers"):
            value = getattr(self, name)
            if value is not None and len(value) != len(self.uf):
                raise ValueError(f"Costs.{name} has {len(value)} values for {len(self.uf)} stages")
        if self.offloadable is not None:
            room = np.maximum(np.asarray(self.xbar) - np.asarray(self.x), 0)  # a view output allocates nothing
            if (np.asarray(self.offloadable) < 0).any() or (np.asarray(self.offloadable) > room).any():
                raise ValueError("Costs.offloadable must lie between 0 and max(xbar - x, 0) for every stage")

    def grads(self, s: int, t: int) -> int:
        """Bytes of the parameter gradients of stages ``s..t``."""
        if self.grad is None or s > t:
            return 0
        return int(self.grad[s]) if s == t else int(np.sum(self.grad[s : t + 1]))

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
        saved = np.asarray(profile["saved_hooks"].values) if "saved_hooks" in profile else get["x"]
        offloadable = np.clip(saved - get["x"], 0, np.maximum(get["xbar"] - get["x"], 0))
        input_bytes = int(profile.attrs.get("input_bytes", 0))
        fn_tmp = np.asarray(profile["fn_tmp"].values) if "fn_tmp" in profile else None
        buffers = np.asarray(profile["buffer_bytes"].values) if "buffer_bytes" in profile else None
        # loss_bytes: the loss value a step returns, one float32 scalar held to its end (the profile's last
        # output, with the loss profiled, is that scalar too: its gradient is the last stage's delta).
        return cls(
            **get, grad=grad, loss_bytes=4, input_bytes=input_bytes, offloadable=offloadable, fn_tmp=fn_tmp,
            buffers=buffers,
        )  # fmt: skip

    @property
    def nograd_tmp(self) -> np.ndarray:
        """Transients of forwards without grad."""
        return self.fwd_tmp if self.fn_tmp is None else self.fn_tmp

    def snapshot(self, j: int) -> int:
        """Bytes a recomputation of stage ``j`` copies its buffers into."""
        return 0 if self.buffers is None else int(self.buffers[j])

    def moved(self, j: int) -> int:
        """Bytes an offload of stage ``j`` moves to host memory."""
        return 0 if self.offloadable is None else int(self.offloadable[j])


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


def with_offloads(ops: list[tuple[str, int]], offloaded) -> list[tuple[str, int]]:
    """``ops`` with each stage ``j`` of ``offloaded`` moved to host memory after its forward with grad (an
    ``offload`` beside the next forward) and back before the backward of stage ``j + 1`` that precedes its
    own (a ``prefetch``). Stages whose forward with grad is not followed by the next stage's forward (nothing
    runs between their forward and backward) are left in place."""
    offloaded, out, away = set(offloaded), [], set()
    if any(op in ("offload", "prefetch") for op, _ in ops):
        raise ValueError("ops already hold offload or prefetch operations")
    last = max((j for _, j in ops), default=-1)
    bad = sorted(
        j for j in offloaded if isinstance(j, bool) or not isinstance(j, int | np.integer) or not 0 <= j < last
    )
    if bad:
        raise ValueError(f"stages {bad} cannot be offloaded: choose stages 0..{last - 1} (the last has no later stage)")
    for index, (op, j) in enumerate(ops):
        following = ops[index + 1] if index + 1 < len(ops) else None
        if op == "B" and following == ("B", j - 1) and j - 1 in away:
            out.append(("prefetch", j - 1))
            away.discard(j - 1)
        out.append((op, j))
        if op == "Fe" and j in offloaded and following in (("Fn", j + 1), ("Fe", j + 1)):
            out.append(("offload", j))
            away.add(j)
    return out


def simulate(costs: Costs, ops: list[tuple[str, int]], link=None) -> tuple[int, float]:
    """Peak bytes and time of ``ops`` on the memory model, starting with the last output's gradient held.

    Live tensors: ``a[j]`` (output kept by a forward without grad), ``abar[j]`` (output and saved tensors of
    a forward with grad), ``delta[j]`` (gradient of ``a[j]``), ``grad[j]`` (parameter gradients, kept to the
    end). A forward needs its input, a backward its ``abar`` and ``delta``; transients count while their
    operation runs. ``offload j`` copies the moved bytes of ``abar[j]`` to host beside the next operation and
    frees them after it; ``prefetch j`` allocates them again and copies them back beside the next operation;
    a copy adds the part of its time (bytes / bandwidth of ``link``, a :class:`~kit.memory.host_link.HostLink`)
    that ``link.overlap`` of the operation's time does not hide. Violations raise ``ValueError``.
    """
    last = costs.length - 1
    live: dict[tuple[str, int], int] = {("delta", last): int(costs.x[last]), ("loss", last): int(costs.loss_bytes)}
    peak, seconds = sum(live.values()), 0.0
    pending: list[tuple[str, int, float]] = []  # copies running beside the next operation
    away: set[int] = set()  # stages whose moved bytes are in host memory
    ran: set[int] = set()  # stages forwarded once: their next forwards are recomputations

    def has_input(j):
        return j == 0 or ("a", j - 1) in live or ("abar", j - 1) in live

    for op, j in ops:
        if op in ("offload", "prefetch"):
            if link is None:
                raise ValueError(f"{op} {j} needs a host link (bandwidths and overlap) to be timed")
            if op == "offload" and (("abar", j) not in live or j in away):
                raise ValueError(f"offload {j} needs abar[{j}] in device memory")
            if op == "prefetch" and j not in away:
                raise ValueError(f"prefetch {j} needs stage {j} offloaded first")
            if op == "prefetch":
                live[("abar", j)] += costs.moved(j)
                away.discard(j)
            bandwidth = link.d2h_bandwidth if op == "offload" else link.h2d_bandwidth
            pending.append((op, j, costs.moved(j) / bandwidth))
            continue
        now = sum(live.values())
        if op in ("Fn", "Fe"):
            if not has_input(j):
                raise ValueError(f"{op} {j} needs the output of stage {j - 1}, which is not in memory")
            size = int(costs.x[j]) if op == "Fn" else int(costs.xbar[j])
            snapshot = costs.snapshot(j) if j in ran else 0
            ran.add(j)
            peak = max(peak, now + snapshot + size + int((costs.nograd_tmp if op == "Fn" else costs.fwd_tmp)[j]))
            live[("a" if op == "Fn" else "abar", j)] = size
            if op == "Fe" and snapshot:
                live[("snapshot", j)] = snapshot  # put back after the backward
            duration = float(costs.uf[j])
        elif op == "B":
            if ("abar", j) not in live or ("delta", j) not in live or not has_input(j) or j in away:
                raise ValueError(f"B {j} needs abar[{j}] (prefetched if offloaded), delta[{j}] and its input in memory")
            grad = costs.grad_in(j)
            peak = max(peak, now + grad + costs.grads(j, j) + int(costs.bwd_tmp[j]))
            del live[("abar", j)], live[("delta", j)]
            live.pop(("snapshot", j), None)
            live[("grad", j)] = costs.grads(j, j)
            if j > 0:
                live[("delta", j - 1)] = grad
            duration = float(costs.ub[j])
        elif op == "free":
            del live[("a", j)]
            continue
        else:
            raise ValueError(f"unknown operation {op!r}")
        hidden = 0.0 if link is None else link.overlap * duration
        seconds += duration + max(0.0, sum(copy for _, _, copy in pending) - hidden)
        for kind, k, _ in pending:
            if kind == "offload":
                live[("abar", k)] -= costs.moved(k)
                away.add(k)
        pending = []
    left = sorted(key for key in live if key[0] not in ("grad", "loss"))
    if left or away or pending:
        raise ValueError(f"the schedule leaves {left or sorted(away) or pending} in memory or in flight")
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
