"""What an online study did, and when: every streamed chunk (where and when it was made) and every training
batch (which chunks it was the first to see), turned into a :class:`kit.replay.Trace` to replay elsewhere.

Streaming becomes a DAG: each chunk is a task on the worker that made it, after the previous chunk of its
simulation run; each batch is a task on the ``client`` (from the start of the study loop's iteration that
trained it) after the previous batch and after the chunks that reached the study since it. Replaying that
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
    """Chunks received and batches trained by one study, with wall-clock times (``time.time()``)."""

    def __init__(self):
        self.chunks: list[dict] = []
        self.batches: list[dict] = []
        self._since: list[int] = []  # chunks used since the last batch

    def chunk(self, chunk, *, used: bool) -> None:
        """Note a chunk received; ``used`` when its steps went to training (not a late or duplicate one)."""
        self.chunks.append(
            {
                "sim": int(chunk.sim_id),
                "attempt": int(chunk.attempt),
                "run": chunk.run,
                "steps": len(chunk.steps),
                "worker": chunk.worker,
                "started": float(chunk.started),
                "made": float(chunk.made),
                "arrived": time.time(),
                "bytes": int(chunk.fields.nbytes),
            }
        )
        if used:
            self._since.append(len(self.chunks) - 1)

    def batch(self, number: int, start: float, end: float) -> None:
        """Note a training batch and the chunks it is the first to follow."""
        self.batches.append({"batch": int(number), "start": float(start), "end": float(end), "chunks": self._since})
        self._since = []

    def trace(self, name: str) -> Trace:
        """The study as a trace (components ``simulation`` and ``training``)."""
        if not self.chunks and not self.batches:
            raise ValueError("the timeline is empty: nothing was received or trained")
        origin = min([c["started"] for c in self.chunks] + [b["start"] for b in self.batches])
        ids, previous = [], {}
        counts: dict[str, int] = defaultdict(int)
        tasks = []
        for chunk in self.chunks:
            run = chunk["run"]
            task_id = f"sim{chunk['sim']}-a{chunk['attempt']}-{run[:8]}-c{counts[run]}"
            counts[run] += 1
            parents = (previous[run],) if run in previous else ()
            previous[run] = task_id
            ids.append(task_id)
            start, end = chunk["started"] - origin, chunk["made"] - origin
            host = chunk["worker"] or "worker"
            tasks.append(
                Task(task_id, "simulate", start, end, host, parents, "simulation", output_bytes=chunk["bytes"])
            )
        last = None
        for batch in self.batches:
            parents = ((last,) if last else ()) + tuple(ids[i] for i in batch["chunks"])
            last = f"train{batch['batch']}"
            received = sum(self.chunks[i]["bytes"] for i in batch["chunks"])
            tasks.append(Task(last, "train", batch["start"] - origin, batch["end"] - origin, CLIENT, parents,
                              "training", input_bytes=received))  # fmt: skip
        # Streaming a chunk to the study (queue, scatter, gather) takes a delay a replay prices as latency.
        delays = [max(c["arrived"] - c["made"], 0.0) for c in self.chunks]
        attrs = {"source": "kit.online.OnlineStudy", "chunks": len(self.chunks), "batches": len(self.batches),
                 "transfer_latency": float(np.median(delays)) if delays else 0.0}  # fmt: skip
        return Trace(name, tasks, attrs=attrs)
