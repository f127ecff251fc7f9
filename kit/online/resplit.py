"""A checkpoint's samples and simulations, saved by any number of training ranks, split again for any number:
nothing lost, nothing trained twice.

Each simulation goes to one rank (round robin over the simulations), with every sample of it held in a
buffer or waiting to be stored. A rank keeps at most ``capacity`` samples, the unseen first; the unseen that
do not fit wait to be stored (``held``), the seen that do not fit are let go (they were trained). The
buffers' counters go to rank 0, so that the ranks' sums balance as before; the simulations still to launch
are shared round robin.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

#: Buffer counters that count samples put in (and so change when an unseen sample goes back to waiting).
PUT = "put"


def split(state: dict, world: int, capacity: int, n_simulations: int) -> list[dict]:
    """Per rank of ``world``: ``buffer`` (a buffer state), ``held`` (steps waiting to be stored, or None),
    ``ledger`` (its simulations and counts) and ``n_simulations`` (those it completes in all), from a
    checkpoint ``state`` written by one study (``buffer``, ``held``) or by ranks (``buffers``, ``helds``)."""
    buffers = state.get("buffers") or [state["buffer"]]
    helds = state.get("helds") or [state["held"]]
    ledgers = _split_ledger(state["ledger"], world)
    owner = {sim_id: rank for rank, ledger in enumerate(ledgers) for sim_id in ledger["simulations"]}
    pool = _pool(buffers)
    waiting = _pool_held(helds)
    counts = Counter()
    for buffer in buffers:
        counts.update(buffer["counts"])
    removed = _added([np.asarray(buffer["removed"], np.int64) for buffer in buffers])
    remaining = n_simulations - sum(_claimed(ledger) for ledger in ledgers)
    parts = []
    for rank in range(world):
        mine = np.flatnonzero(np.array([owner[int(i)] == rank for i in pool["sim_id"]], dtype=bool))
        # as they were when they fit (a buffer's later draws stay the same); else the unseen first
        order = mine if len(mine) <= capacity else mine[np.argsort(pool["uses"][mine] > 0, kind="stable")]
        kept, over = order[:capacity], order[capacity:]
        unseen_over = over[pool["uses"][over] == 0]
        seen_over = over[pool["uses"][over] > 0]
        removed = _added([removed, np.bincount(pool["uses"][seen_over])]) if len(seen_over) else removed
        counts[PUT] -= len(unseen_over)  # put again when stored
        held = _held([_take_held(waiting, [owner[int(i)] == rank for i in waiting[2]]), _as_held(pool, unseen_over)])
        parts.append(
            {
                "buffer": {
                    **buffers[0],
                    "closed": False,
                    "x": pool["x"][kept],
                    "y": pool["y"][kept],
                    "sim_id": pool["sim_id"][kept],
                    "step": pool["step"][kept],
                    "uses": pool["uses"][kept],
                    "birth": pool["birth"][kept],
                    "clock": max(b["clock"] for b in buffers),
                },
                "held": held,
                "ledger": ledgers[rank],
                "n_simulations": _claimed(ledgers[rank]) + share(max(0, remaining), rank, world),
            }
        )
    for rank, part in enumerate(parts):
        part["buffer"]["counts"] = dict(counts) if rank == 0 else dict.fromkeys(counts, 0)
        part["buffer"]["removed"] = removed if rank == 0 else np.zeros(0, np.int64)
        part["buffer"]["capacity"] = capacity
    return parts


def share(n: int, rank: int, world: int) -> int:
    """Rank ``rank``'s share of ``n`` simulations (round robin: the first ``n % world`` ranks get one more)."""
    return n // world + (rank < n % world)


def merge_ledgers(states: list[dict]) -> dict:
    """One ledger state from the ranks' (each simulation is on one rank; counts add up)."""
    merged = {"simulations": {}, "ended": Counter(), "produced": 0, "discarded": Counter()}
    for state in states:
        merged["simulations"].update(state["simulations"])
        merged["ended"].update(state["ended"])
        merged["discarded"].update(state["discarded"])
        merged["produced"] += state["produced"]
    return merged


def _split_ledger(state: dict, world: int) -> list[dict]:
    """The simulations round robin over the ranks, each rank's counts from its own; what no simulation
    accounts for (duplicates, earlier epochs, discards) stays with rank 0."""
    parts = [{"simulations": {}, "ended": Counter(), "produced": 0, "discarded": Counter()} for _ in range(world)]
    for i, sim in enumerate(sorted(state["simulations"].values(), key=lambda s: s.sim_id)):
        part = parts[i % world]
        part["simulations"][sim.sim_id] = sim
        part["produced"] += sim.n_received
        if sim.status != "running":
            part["ended"][sim.status] += 1
    parts[0]["produced"] += state["produced"] - sum(part["produced"] for part in parts)
    parts[0]["discarded"] = Counter(state["discarded"])
    return parts


def _claimed(ledger: dict) -> int:
    """Simulations of a ledger that completed or still run (those a rank's count of simulations includes)."""
    return (
        ledger["ended"]["ok"]
        + ledger["ended"]["retried"]
        + sum(sim.status == "running" for sim in ledger["simulations"].values())
    )


def _pool(buffers: list[dict]) -> dict:
    """Every buffer's samples, one array a field."""
    full = [b for b in buffers if len(b["sim_id"])]
    keys = ("x", "y", "sim_id", "step", "uses", "birth")
    if not full:
        first = buffers[0]
        return {key: np.asarray(first[key])[:0] for key in keys}
    return {key: np.concatenate([np.asarray(b[key]) for b in full]) for key in keys}


def _pool_held(helds: list) -> list:
    """Every rank's held steps as one held list ``[x, [fields], sim_ids, steps]`` (empty when none)."""
    found = [h for h in helds if h is not None]
    if not found:
        return [np.zeros((0, 1), np.float32), [], np.zeros(0, np.int64), np.zeros(0, np.int64)]
    x = np.concatenate([h[0] for h in found])
    fields = [np.concatenate([f for h in found for f in h[1]])]
    sims = np.concatenate([np.broadcast_to(np.asarray(h[2], np.int64), len(h[3])) for h in found])
    return [x, fields, sims, np.concatenate([h[3] for h in found])]


def _take_held(waiting: list, mask) -> list | None:
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return None
    return [waiting[0][mask], [waiting[1][0][mask]], waiting[2][mask], waiting[3][mask]]


def _as_held(pool: dict, index: np.ndarray) -> list | None:
    if not len(index):
        return None
    return [pool["x"][index], [pool["y"][index]], pool["sim_id"][index], pool["step"][index]]


def _held(parts: list) -> list | None:
    """Held lists joined into one, or None."""
    found = [p for p in parts if p is not None]
    if not found:
        return None
    return [np.concatenate([p[0] for p in found]), [np.concatenate([f for p in found for f in p[1]])],
            np.concatenate([p[2] for p in found]), np.concatenate([p[3] for p in found])]  # fmt: skip


def _added(histograms: list[np.ndarray]) -> np.ndarray:
    """Histograms of different lengths added."""
    width = max((len(h) for h in histograms), default=0)
    return sum((np.pad(h, (0, width - len(h))) for h in histograms), np.zeros(width, np.int64))
