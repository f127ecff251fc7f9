"""Record any dask computation as a :class:`~kit.replay.trace.Trace`, from the scheduler's own events.

A scheduler plugin keeps one record per task that finishes (worker, thread, compute start and stop, the
transfers of its inputs, its output's size, its dependencies) and per task that errs, from the moment
:func:`record` starts to its end: nothing is sampled or dropped, however long the run.
"""

from __future__ import annotations

import re
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime

from distributed.diagnostics.plugin import SchedulerPlugin

from kit.replay.trace import COMPONENTS, Task, Trace

#: Default components by words found in a task's name (its key prefix); the first match wins.
COMPONENT_WORDS = (("simulat", "simulation"), ("train", "training"), ("valid", "validation"), ("infer", "inference"))


class TaskRecorder(SchedulerPlugin):
    """Keeps a record of every task that ends in memory or in error while installed."""

    def __init__(self, name: str):
        self.name = name
        self.records: list[dict] = []

    async def start(self, scheduler) -> None:
        self.scheduler = scheduler

    def transition(self, key, start, finish, *args, stimulus_id: str, **kwargs) -> None:
        if finish not in ("memory", "erred") or start != "processing":
            return
        task = self.scheduler.tasks.get(key)
        steps = kwargs.get("startstops") or []
        compute = [s for s in steps if s.get("action") == "compute"]
        self.records.append(
            {
                "key": key,
                "status": finish,
                "worker": kwargs.get("worker"),
                "thread": kwargs.get("thread"),
                "start": compute[0]["start"] if compute else None,
                "stop": compute[-1]["stop"] if compute else None,
                "transfers": [(s["start"], s["stop"], s.get("source")) for s in steps if s.get("action") == "transfer"],
                "nbytes": kwargs.get("nbytes") or (task.nbytes if task is not None else 0) or 0,
                "dependencies": [d.key for d in task.dependencies] if task is not None else [],
                "name": task.prefix.name if task is not None else str(key),
            }
        )


class Recording:
    """What :func:`record` yields; ``trace`` is set when the block ends."""

    trace: Trace | None = None


@contextmanager
def record(client, *, name: str = "run", components: dict[str, str] | None = None):
    """``with record(client) as recording: ...`` then ``recording.trace``: every task the block ran.

    ``components`` maps task names (key prefixes) to a component of :data:`~kit.replay.trace.COMPONENTS`;
    names not listed are matched by :data:`COMPONENT_WORDS`, else ``other``.
    """
    unknown = sorted(set((components or {}).values()) - set(COMPONENTS))
    if unknown:
        raise ValueError(f"unknown component(s) {unknown}; choose among {list(COMPONENTS)}")
    plugin_name = f"kit-recorder-{uuid.uuid4().hex[:8]}"
    client.register_plugin(TaskRecorder(plugin_name), name=plugin_name)
    recording = Recording()
    try:
        yield recording
    finally:
        records = client.run_on_scheduler(_collect, name=plugin_name)
        recording.trace = _trace(records, name, components or {})


def _collect(dask_scheduler, name: str) -> list[dict]:
    plugin = dask_scheduler.plugins[name]
    dask_scheduler.remove_plugin(name=name)
    return plugin.records


def _trace(records: list[dict], name: str, components: dict[str, str]) -> Trace:
    import distributed

    erred = [str(r["key"]) for r in records if r["status"] == "erred"]
    done = [r for r in records if r["status"] == "memory" and r["start"] is not None]
    moved = _moved(done)
    attrs = {"distributed": distributed.__version__, "erred": len(erred), "erred_keys": erred[:100], **moved}
    if not done:
        return Trace(name, [], attrs=attrs)
    origin = min(r["start"] for r in done)
    ids = _ids([r["key"] for r in done])
    sizes = {r["key"]: int(r["nbytes"]) for r in done}
    tasks = []
    for r in done:
        parents = tuple(ids[d] for d in r["dependencies"] if d in ids)
        tasks.append(
            Task(
                id=ids[r["key"]],
                name=_safe(r["name"]),
                start=r["start"] - origin,
                end=r["stop"] - origin,
                host=str(r["worker"]),
                parents=parents,
                component=_component(r["name"], components),
                thread=r["thread"],
                input_bytes=sum(sizes.get(d, 0) for d in r["dependencies"]),
                output_bytes=sizes[r["key"]],
            )
        )
    return Trace(name, tasks, datetime.fromtimestamp(origin, UTC), attrs)


def _moved(done: list[dict]) -> dict:
    """Bytes that crossed workers and the seconds their transfers took (for calibrating a platform)."""
    where = {r["key"]: r["worker"] for r in done}
    sizes = {r["key"]: int(r["nbytes"]) for r in done}
    moved = sum(sizes[d] for r in done for d in r["dependencies"] if d in where and where[d] != r["worker"])
    seconds = sum(stop - start for r in done for start, stop, _ in r["transfers"])
    return {"transfer_bytes": int(moved), "transfer_seconds": float(seconds)}


def _component(name: str, components: dict[str, str]) -> str:
    if name in components:
        return components[name]
    lowered = name.lower()
    return next((component for word, component in COMPONENT_WORDS if word in lowered), "other")


def _safe(text) -> str:
    """Characters every WfFormat version allows in ids: alphanumerics and ``_ . -``."""
    return re.sub(r"[^0-9a-zA-Z_.-]", "_", str(text)).strip("_") or "task"


def _ids(keys) -> dict:
    """A WfFormat-safe, unique id per dask key."""
    ids, used = {}, set()
    for key in keys:
        base = _safe(key if isinstance(key, str) else "-".join(map(str, key)))
        candidate, n = base, 1
        while candidate in used:
            n += 1
            candidate = f"{base}.{n}"
        ids[key] = candidate
        used.add(candidate)
    return ids
