"""What an online study did, and when: every streamed chunk (where and when it was made), every training
batch (which chunks it was the first to see) and every validation, turned into a :class:`kit.replay.Trace`
to replay elsewhere.

Streaming becomes a DAG: each chunk is a task on the worker that made it, after the previous chunk of its
simulation run; each batch is a task on the ``client``, from the draw of its samples to the end of the
study loop's bookkeeping for it (the sampler told, the metrics noted), after the previous batch and after the
chunks that reached the study since it and before its draw. A validation is a task on the ``client`` after
the batch it checks, and the next batch waits for it. With several training ranks, rank ``r``'s batches are on
``client-r``, each after the previous batch of every rank and rank 0's validation. Replaying that
DAG on another platform moves the chunks to wherever training runs and keeps the trainer waiting for data
as the recorded study did; the trace's ``transfer_latency`` (the median delay of a chunk from its worker to
the study) calibrates the links.
"""

from __future__ import annotations

import time
from collections import defaultdict

import numpy as np

from kit.replay.trace import Task, Trace

#: The host training batches ran on in a recorded study's trace.
CLIENT = "client"


class Timeline:
    """Chunks received, batches trained and validations run by one study, with wall-clock times
    (``time.time()``)."""

    def __init__(self):
        self.chunks: list[dict] = []
        self.batches: list[dict] = []
        self.validations: list[dict] = []
        self.launches: dict[tuple[int, int], float] = {}  # (simulation, attempt) -> when the study submitted it
        self._since: list[int] = []  # chunks used and not yet followed by a batch

    def launch(self, sim_id: int, attempt: int) -> None:
        """Note that the study submitted a simulation attempt now."""
        self.launches[int(sim_id), int(attempt)] = time.time()

    def chunk(self, chunk, worker: str, *, used: bool) -> None:
        """Note a chunk (a :class:`kit.online.dataplane.Message`: one chunk, or several that shared it)
        received from ``worker``; ``used`` when its steps went to training (not a late or duplicate one)."""
        self.chunks.append(
            {
                "sim": int(chunk.sim_id),
                "attempt": int(chunk.attempt),
                "run": f"{chunk.run:016x}",
                "steps": len(chunk.steps),
                "worker": worker,
                "started": float(chunk.started),
                "made": float(chunk.made),
                "arrived": time.time(),
                "bytes": int(chunk.fields.nbytes),
            }
        )
        if used:
            self._since.append(len(self.chunks) - 1)

    def batch(self, number: int, start: float, end: float) -> None:
        """Note a training batch, drawn at ``start``, and the chunks it is the first to follow: those that
        arrived before its draw (later ones wait for the next batch)."""
        drawn = [i for i in self._since if self.chunks[i]["arrived"] <= start]
        self._since = [i for i in self._since if self.chunks[i]["arrived"] > start]
        self.batches.append({"batch": int(number), "start": float(start), "end": float(end), "chunks": drawn})

    def validation(self, number: int, start: float, end: float) -> None:
        """Note a validation of the model after batch ``number``."""
        self.validations.append({"batch": int(number), "start": float(start), "end": float(end)})

    def _firsts(self) -> dict[str, dict]:
        """The first chunk of each run."""
        firsts: dict[str, dict] = {}
        for chunk in self.chunks:
            firsts.setdefault(chunk["run"], chunk)
        return firsts

    def _triggers(self) -> dict[str, str]:
        """For each run submitted after the study started, the last chunk's task id of the run whose end freed
        its slot: the latest run to finish before its submission that freed no other one."""
        lasts = {chunk["run"]: (chunk["arrived"], task) for chunk, task in zip(self.chunks, self._ids(), strict=True)}
        launches = sorted((self.launches.get((c["sim"], c["attempt"]), c["started"]), run)
                          for run, c in self._firsts().items())  # fmt: skip
        used, out = set(), {}
        for at, run in launches:
            done = [
                (arrived, task, other)
                for other, (arrived, task) in lasts.items()
                if arrived <= at and other not in used
            ]
            if done:
                _, task, other = max(done)
                used.add(other)
                out[run] = task
        return out

    def _ids(self) -> list[str]:
        """Each chunk's task id: its simulation, attempt, run and place in the run."""
        counts: dict[str, int] = defaultdict(int)
        ids = []
        for chunk in self.chunks:
            run = chunk["run"]
            ids.append(f"sim{chunk['sim']}-a{chunk['attempt']}-{run[:8]}-c{counts[run]}")
            counts[run] += 1
        return ids


def trace(timelines: list[Timeline], name: str) -> Trace:
    """A study as a trace, from the timeline of each training rank: one rank's batches run on ``client``;
    with several, rank ``r``'s on ``client-r``, each after the previous batch of every rank (their gradients
    are all-reduced), and each rank's simulations follow the ends that freed their slots on that rank."""
    if not any(timeline.chunks or timeline.batches for timeline in timelines):
        raise ValueError("the timeline is empty: nothing was received or trained")
    launched = [{run: t.launches.get((c["sim"], c["attempt"]), c["started"]) for run, c in t._firsts().items()}
                for t in timelines]  # fmt: skip
    origin = min([min(runs[c["run"]], c["started"]) for t, runs in zip(timelines, launched, strict=True)
                  for c in t.chunks] + [b["start"] for t in timelines for b in t.batches]
                 + [v["start"] for t in timelines for v in t.validations])  # fmt: skip
    tasks, delays, steps, received = [], [], {}, []
    several = len(timelines) > 1
    for rank, (timeline, launches) in enumerate(zip(timelines, launched, strict=True)):
        triggers, ids, previous = timeline._triggers(), timeline._ids(), {}
        for chunk, task_id in zip(timeline.chunks, ids, strict=True):
            run = chunk["run"]
            if run in previous:
                parents = (previous[run],)
                start = chunk["started"] - origin
            else:  # from its submission, after the simulation whose end freed its slot
                parents = (triggers[run],) if run in triggers else ()
                start = min(launches[run], chunk["started"]) - origin
            previous[run] = task_id
            tasks.append(Task(task_id, "simulate", start, chunk["made"] - origin, chunk["worker"] or "worker", parents,
                              "simulation", output_bytes=chunk["bytes"]))  # fmt: skip
            delays.append(max(chunk["arrived"] - chunk["made"], 0.0))
            received.append((chunk["arrived"], task_id))
        for batch in timeline.batches:
            steps.setdefault(batch["batch"], []).append((rank, timeline, batch, ids))
    checks = {v["batch"]: v for t in timelines for v in t.validations}
    last: list[str] = []
    for number in sorted(set(steps) | set(checks)):  # a step of every rank, after the last step of every rank
        done = []
        for rank, timeline, batch, ids in steps.get(number, ()):
            host, task_id = (f"{CLIENT}-{rank}", f"train{number}-r{rank}") if several else (CLIENT, f"train{number}")
            nbytes = sum(timeline.chunks[i]["bytes"] for i in batch["chunks"])
            parents = (*last, *(ids[i] for i in batch["chunks"]))
            tasks.append(Task(task_id, "train", batch["start"] - origin, batch["end"] - origin, host, parents,
                              "training", input_bytes=nbytes))  # fmt: skip
            done.append(task_id)
        if number in checks:  # rank 0 validates the model after the step; the next step waits for it
            check, host = checks[number], f"{CLIENT}-0" if several else CLIENT
            before = tuple(done[:1]) or tuple(last)  # before any batch: after the chunks received by then
            before = before or tuple(task for arrived, task in received if arrived <= check["start"])
            tasks.append(Task(f"validate{number}", "validate", check["start"] - origin, check["end"] - origin, host,
                              before, "validation"))  # fmt: skip
            done[:1] = [f"validate{number}"]  # rank 0's step is before it
        last = done or last
    # Streaming a chunk to the study (socket queues, receiving) takes a delay a replay prices as latency.
    attrs = {"source": "kit.online.OnlineStudy", "chunks": len(delays), "batches": sum(map(len, steps.values())),
             "validations": len(checks),
             "transfer_latency": float(np.median(delays)) if delays else 0.0}  # fmt: skip
    if several:
        attrs["ranks"] = len(timelines)
    return Trace(name, tasks, attrs=attrs)
