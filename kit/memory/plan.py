"""Plans for training a chain under a byte budget: store all, recompute all, uniform segments, optimal.

``optimal`` is rotor's dynamic program for heterogeneous chains (Beaumont, Eyraud-Dubois, Herrmann, Joly,
Shilova, "Optimal checkpointing for heterogeneous chains", arXiv 1911.13214): the least time ``T*(M)`` over
every schedule of :mod:`kit.memory.schedule` whose peak fits ``M``. Memory is counted in slots of
1/``slots`` of store-all's peak, sizes rounded up, so a plan never exceeds its budget (store-all and equal
segments, which rounding could wrongly exclude, are also checked in bytes). The slot does not depend on the
budget, so a larger budget counts at least as many slots and its optimal plan is never slower (slots cut
from the budget itself made it slower at some budgets: a schedule that fit could stop fitting when the slot
grew). The plan's predicted peak and time are those of its schedule replayed in bytes
(:func:`kit.memory.schedule.simulate`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kit.memory.schedule import (
    Checkpoint,
    Costs,
    Keep,
    operations,
    segments,
    simulate,
    store_all,
    uniform_bounds,
    with_offloads,
)

#: Strategies understood by :func:`plan`.
STRATEGIES = ("optimal", "uniform", "store_all", "recompute_all")


class BudgetError(ValueError):
    """A budget below what a strategy can reach."""


@dataclass(frozen=True)
class Plan:
    """A schedule with its predicted peak (bytes, beyond input and parameters) and time (seconds); the stages
    whose saved tensors go to host memory between their forward and backward (``offloaded``)."""

    strategy: str
    budget: int | None
    schedule: Keep | Checkpoint
    predicted_peak: int
    predicted_time: float
    offloaded: tuple[int, ...] = ()

    @property
    def operations(self) -> list[tuple[str, int]]:
        return with_offloads(operations(self.schedule), self.offloaded)


def plan(profile, budget: int | None = None, strategy: str = "optimal", *, slots: int = 500, link=None) -> Plan:
    """The ``strategy``'s plan for the chain ``profile`` describes (``kit.memory.profile``, or ``Costs``).

    ``store_all`` keeps every graph; ``recompute_all`` keeps every stage's input and recomputes each stage
    once; ``uniform`` is ``checkpoint_sequential`` with the number of equal segments that is fastest within
    the budget; ``optimal`` is the dynamic program; ``offload`` keeps, recomputes or offloads each stage's
    saved tensors to host memory over ``link`` (a :class:`~kit.memory.host_link.HostLink`), never slower
    than ``optimal``. A budget below what the strategy can reach is an error stating the least budget it needs.
    """
    if strategy not in (*STRATEGIES, "offload"):
        raise ValueError(f"unknown strategy {strategy!r}; choose one of {[*STRATEGIES, 'offload']}")
    if link is not None and strategy != "offload":
        raise ValueError(f"link is used by strategy 'offload' only, not {strategy!r}")
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int | np.integer) or budget <= 0):
        raise ValueError(f"budget must be None or a number of bytes > 0, got {budget!r}")
    costs = profile if isinstance(profile, Costs) else Costs.from_profile(profile)
    last = costs.length - 1
    if strategy == "optimal":
        return _optimal(costs, budget, slots)
    if strategy == "offload":
        return _offload(costs, budget, slots, link)
    candidates = {
        "store_all": [store_all(0, last)],
        "recompute_all": [segments(0, last, list(range(1, costs.length)))],
        "uniform": [segments(0, last, uniform_bounds(costs.length, k)) for k in range(1, costs.length + 1)],
    }[strategy]
    scored = [(simulate(costs, operations(tree)), tree) for tree in candidates]
    fitting = [(time, peak, tree) for (peak, time), tree in scored if budget is None or peak <= budget]
    if not fitting:
        least = min(peak for (peak, _), _ in scored)
        raise BudgetError(f"budget {budget} bytes is below what {strategy!r} needs: at least {least} bytes")
    time, peak, tree = min(fitting, key=lambda item: (item[0], item[1]))
    return Plan(strategy, budget, tree, peak, time)


def _optimal(
    costs: Costs, budget: int | None, slots: int, offloaded=(), link=None, strategy="optimal", *, explain=True
) -> Plan:
    ceiling = _ceiling(costs)
    slot, most = _slot(costs, slots, ceiling)
    budget_bytes = ceiling if budget is None else int(budget)
    # The loss is held for the whole step; buffer snapshots of recomputations, which the program does not
    # model, are reserved for (every stage's at once, a bound) and simulated exactly below.
    reserve = int(costs.loss_bytes) + (0 if costs.buffers is None else int(np.sum(costs.buffers)))
    m = min(max(budget_bytes - reserve, 0) // slot, most)
    offload = _offload_terms(costs, offloaded, link)
    size = _sizes(costs, slot, offload)
    table, choice = _program(costs, m, size, offload)
    last = costs.length - 1
    # Slot rounding can hide a schedule that fits in bytes: store-all, equal segments and the least-memory
    # schedule are also checked exactly.
    trees = [store_all(0, last)] + [
        segments(0, last, uniform_bounds(costs.length, k)) for k in range(2, costs.length + 1)
    ]
    if np.isfinite(table[0, last][m]):
        trees.append(_rebuild(choice, 0, last, m, size))
    else:
        trees.append(least_schedule(costs, slots))
    scored = []
    for tree in trees:
        ops = with_offloads(operations(tree), offloaded)
        moved = tuple(sorted(j for op, j in ops if op == "offload"))
        scored.append((*simulate(costs, ops, link), moved, tree))
    fitting = [item for item in scored if item[0] <= budget_bytes]
    if not fitting:
        least = f": the least-memory schedule found peaks at {least_peak(costs, slots)} bytes" if explain else ""
        raise BudgetError(f"budget {budget_bytes} bytes is below what any schedule needs{least}")
    peak, time, moved, tree = min(fitting, key=lambda item: (item[1], item[0]))
    return Plan(strategy, budget, tree, peak, time, moved)


def _offload(costs: Costs, budget: int | None, slots: int, link) -> Plan:
    """The dynamic program run for sets of offloaded stages found by local search: from no stage and from
    every stage with saved tensors to move, toggle the stage that shortens the plan most until none does."""
    if link is None:
        raise ValueError("strategy 'offload' needs link=HostLink(d2h_bandwidth, h2d_bandwidth, overlap)")
    candidates = [j for j in range(costs.length - 1) if costs.moved(j) > 0]
    tried: dict[frozenset, Plan | None] = {}

    def attempt(chosen: frozenset) -> Plan | None:
        if chosen not in tried:
            try:
                tried[chosen] = _optimal(costs, budget, slots, tuple(sorted(chosen)), link, "offload", explain=False)
            except BudgetError:  # nothing fits the budget with this set
                tried[chosen] = None
        return tried[chosen]

    def time(result) -> float:
        return np.inf if result is None else result.predicted_time

    found = []
    for start in (frozenset(), frozenset(candidates)):
        chosen, best = start, attempt(start)
        while True:
            trials = [(attempt(chosen ^ {j}), chosen ^ {j}) for j in candidates]
            top, top_set = min(trials, key=lambda item: time(item[0]), default=(None, None))
            if time(top) >= time(best):
                break
            best, chosen = top, top_set
        found.append(best)
    winner = min(found, key=time)
    if winner is None:
        raise BudgetError(
            f"budget {budget} bytes is below what any schedule needs, offloading included (recompute only: at "
            f"least {least_peak(costs, slots)} bytes)"
        )
    return winner


def least_schedule(costs: Costs, slots: int = 500):
    """The least-memory schedule the program finds (slots of 1/``slots`` of store-all's peak)."""
    slot, most = _slot(costs, slots)
    size = _sizes(costs, slot)
    table, choice = _program(costs, most, size)
    last = costs.length - 1
    m = int(np.flatnonzero(np.isfinite(table[0, last]))[0])
    return _rebuild(choice, 0, last, m, size)


def budgets_between(costs: Costs, fractions, slots: int = 500) -> np.ndarray:
    """Budgets (bytes) at ``fractions`` of the way from the least peak (0) to store-all's peak (1)."""
    least, full = least_peak(costs, slots), plan(costs, strategy="store_all").predicted_peak
    return np.array([int(least + f * (full - least)) for f in np.atleast_1d(fractions)], dtype=np.int64)


def least_peak(costs: Costs, slots: int = 500) -> int:
    """The peak of :func:`least_schedule`."""
    return simulate(costs, operations(least_schedule(costs, slots)))[0]


def _ceiling(costs: Costs) -> int:
    """Store-all's peak (bytes): the most memory a plan is worth."""
    return simulate(costs, operations(store_all(0, costs.length - 1)))[0]


def _slot(costs: Costs, slots: int, ceiling: int | None = None) -> tuple[int, int]:
    """Bytes per slot of the program, 1/``slots`` of store-all's peak whatever the budget, and the most slots
    worth counting: beyond them the budget holds store-all's peak (``ceiling``, simulated when not given),
    which no plan beats."""
    if isinstance(slots, bool) or not isinstance(slots, int | np.integer) or slots < 1:
        raise ValueError(f"slots must be an int >= 1, got {slots!r}")
    ceiling = _ceiling(costs) if ceiling is None else ceiling
    slot = max(1, -(-ceiling // int(slots)))
    # Rounding sizes up to slots can push store-all past ceiling // slot: leave room for it.
    return slot, ceiling // slot + 8 * costs.length


def _sizes(costs: Costs, slot: int, offload: dict | None = None) -> dict[str, np.ndarray]:
    def up(values):
        return -(-np.asarray(values, dtype=np.int64) // slot)

    grad_in = [costs.grad_in(s) for s in range(costs.length)]
    grad = [costs.grads(s, s) for s in range(costs.length)]
    moved = np.zeros(costs.length, dtype=np.int64) if offload is None else offload["moved"]
    # Moved bytes are resident again beside the next stage's forward (offload) and backward (prefetch).
    beside = np.concatenate([[0], up(moved)[:-1]])
    return {
        "grad": up(grad),
        "x": up(costs.x),
        "xbar": up(costs.xbar),
        "hold": up(np.asarray(costs.xbar, dtype=np.int64) - moved),  # kept while the later stages run
        "fwd_tmp": up(costs.fwd_tmp) + beside,
        "fn_tmp": up(costs.nograd_tmp) + beside,
        "bwd_tmp": up(costs.bwd_tmp) + beside,
        "grad_in": up(grad_in),
    }


def _offload_terms(costs: Costs, offloaded, link) -> dict | None:
    """Bytes moved and time added when each stage of ``offloaded`` goes to host memory (None: none)."""
    if not offloaded:
        return None
    if link is None:
        raise ValueError("offloading needs a host link: pass link=HostLink(d2h_bandwidth, h2d_bandwidth, overlap)")
    n = costs.length
    bad = [j for j in offloaded if not 0 <= j < n - 1]
    if bad:
        raise ValueError(f"stages {bad} cannot be offloaded: choose stages 0..{n - 2} (the last has no later stage)")
    moved, penalty = np.zeros(n, dtype=np.int64), np.zeros(n)
    for j in offloaded:
        moved[j] = costs.moved(j)
        out = moved[j] / link.d2h_bandwidth - link.overlap * float(costs.uf[j + 1])
        back = moved[j] / link.h2d_bandwidth - link.overlap * float(costs.ub[j + 1])
        penalty[j] = max(0.0, out) + max(0.0, back)
    return {"moved": moved, "penalty": penalty}


def _program(costs: Costs, m_max: int, size: dict[str, np.ndarray], offload: dict | None = None):
    """``table[s, t][m]``: least time of a schedule of stages ``s..t`` within ``m`` slots (inf if none);
    ``choice[s, t][m]``: -1 none, 0 keep, ``k > s`` checkpoint at ``split = k``. With ``offload``, a kept
    stage followed by others holds only what stays on the device and pays its copies' unhidden time.
    ``size``: the stages' sizes in slots (:func:`_sizes`, with the same ``offload``)."""
    n = costs.length
    x, xbar, ftmp, btmp, grad_in = size["x"], size["xbar"], size["fwd_tmp"], size["bwd_tmp"], size["grad_in"]
    hold, fn_tmp = size["hold"], size["fn_tmp"]
    penalty = np.zeros(n) if offload is None else offload["penalty"]
    grad = size["grad"]
    grads = np.concatenate([[0], np.cumsum(grad)])  # grads[b] - grads[a]: parameter gradients of stages a..b-1
    uf, ub = np.asarray(costs.uf, dtype=float), np.asarray(costs.ub, dtype=float)
    table = np.empty((n, n), dtype=object)
    choice = np.empty((n, n), dtype=object)
    # A schedule fits every budget from its need up: each candidate fills a suffix [lo:] of the table row.
    end = m_max + 1
    for length in range(1, n + 1):
        for s in range(0, n - length + 1):
            t = s + length - 1
            best = np.full(end, np.inf)
            pick = np.full(end, -1)
            # Keep: forward s with grad, the rest within what is left, backward s.
            forward_peak = x[t] + xbar[s] + ftmp[s]
            # The backward of s runs with the parameter gradients of s + 1..t already allocated.
            backward_peak = (grads[t + 1] - grads[s + 1]) + grad_in[s] + grad[s] + btmp[s]
            if s == t:
                lo = int(max(forward_peak, x[t] + xbar[s] + backward_peak))
                best[lo:], pick[lo:] = uf[s] + ub[s], 0
            else:
                lo, kept = int(max(forward_peak, xbar[s] + x[s] + backward_peak, hold[s])), int(hold[s])
                if lo < end:
                    best[lo:] = uf[s] + ub[s] + penalty[s] + table[s + 1, t][lo - kept : end - kept]
                    pick[lo:][np.isfinite(best[lo:])] = 0
            # Checkpoint at split: a sweep without grad keeps a[split - 1], then right, then left.
            sweep_time, sweep_peak = 0.0, 0
            for split in range(s + 1, t + 1):
                j = split - 1
                sweep_time += uf[j]
                sweep_peak = max(sweep_peak, x[t] + (x[j - 1] if j > s else 0) + x[j] + fn_tmp[j])
                held = int(grads[t + 1] - grads[split])  # parameter gradients of split..t, held while left runs
                lo, right = int(max(sweep_peak, x[j], held)), int(x[j])
                if lo >= end:
                    continue
                candidate = sweep_time + table[split, t][lo - right : end - right] + table[s, j][lo - held : end - held]
                better = candidate < best[lo:]
                best[lo:][better], pick[lo:][better] = candidate[better], split
            table[s, t], choice[s, t] = best, pick
    return table, choice


def _rebuild(choice, s: int, t: int, m: int, size: dict[str, np.ndarray]):
    """The schedule tree the program chose for stages ``s..t`` within ``m`` slots (``size``: its ``_sizes``)."""
    pick = int(choice[s, t][m])
    if pick == 0:
        return Keep(s, _rebuild(choice, s + 1, t, m - int(size["hold"][s]), size) if s < t else None)
    j = pick - 1
    right = _rebuild(choice, pick, t, m - int(size["x"][j]), size)
    held = int(size["grad"][pick : t + 1].sum())
    return Checkpoint(s, pick, right, _rebuild(choice, s, j, m - held, size))
