"""Traces of workflow runs: tasks with their timing, placement, dependencies and data sizes, as WfFormat.

A :class:`Trace` is saved as a WfCommons WfFormat instance (schema 1.5: ``workflow.specification`` with
tasks, parents, children and files, ``workflow.execution`` with runtimes, start times, cores and machines),
readable by WRENCH and SimGrid. What WfFormat has no field for (component, worker thread, start and end in
seconds, transfers) goes in one namespaced extension, ``"kit"``. :func:`load_trace` reads both the kit's
traces and public WfCommons instances (1.4 to 1.6); an invalid file is an error naming the field and task.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

SCHEMA_VERSION = "1.5"
READABLE_VERSIONS = ("1.4", "1.5", "1.6")
_ID = re.compile(r"[0-9a-zA-Z_.#:/-]+")
#: Components a task can belong to (``other`` when unknown).
COMPONENTS = ("simulation", "training", "validation", "inference", "other")


@dataclass(frozen=True)
class Task:
    """One executed task: seconds from the start of the trace, the host (worker) and thread that ran it, its
    parents, the bytes it read from them and produced, and the memory it needed (bytes, 0 when unknown)."""

    id: str
    name: str
    start: float
    end: float
    host: str
    parents: tuple[str, ...] = ()
    component: str = "other"
    thread: int | None = None
    input_bytes: int = 0
    output_bytes: int = 0
    cores: float = 1.0
    memory: int = 0

    @property
    def runtime(self) -> float:
        return self.end - self.start


@dataclass
class Trace:
    """Tasks of one run (``name``), validated on construction: unique ids, known parents, no cycle."""

    name: str
    tasks: list[Task]
    executed_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    attrs: dict = field(default_factory=dict)

    def __post_init__(self):
        self.tasks = list(self.tasks)
        _validate(self.tasks)

    @property
    def makespan(self) -> float:
        """Seconds from the first start to the last end."""
        if not self.tasks:
            return 0.0
        return max(t.end for t in self.tasks) - min(t.start for t in self.tasks)

    @property
    def hosts(self) -> list[str]:
        return sorted({t.host for t in self.tasks})

    def children(self) -> dict[str, list[str]]:
        """Each task's children, in trace order (a parent listed twice counts once)."""
        return children_of(self.tasks)

    def to_wfformat(self) -> dict:
        """The trace as a WfFormat 1.5 instance (a JSON-serialisable dict)."""
        children = self.children()
        specification = [
            {
                "name": t.name,
                "id": t.id,
                "parents": list(t.parents),
                "children": children[t.id],
                "inputFiles": [_output_file(p) for p in t.parents],
                "outputFiles": [_output_file(t.id)],
            }
            for t in self.tasks
        ]
        files = [{"id": _output_file(t.id), "sizeInBytes": int(t.output_bytes)} for t in self.tasks]
        execution = [
            {
                "id": t.id,
                "runtimeInSeconds": t.runtime,
                "executedAt": _iso(self.executed_at + timedelta(seconds=t.start)),
                "coreCount": t.cores,
                "readBytes": int(t.input_bytes),
                "writtenBytes": int(t.output_bytes),
                "memoryInBytes": int(t.memory),
                "machines": [t.host],
            }
            for t in self.tasks
        ]
        return {
            "name": self.name,
            "schemaVersion": SCHEMA_VERSION,
            "createdAt": _iso(datetime.now(UTC)),
            "runtimeSystem": {"name": "dask.distributed", "version": str(self.attrs.get("distributed", "unknown"))},
            "workflow": {
                "specification": {"tasks": specification, "files": files},
                "execution": {
                    "makespanInSeconds": self.makespan,
                    "executedAt": _iso(self.executed_at),
                    "tasks": execution,
                    "machines": [{"nodeName": host} for host in self.hosts],
                },
            },
            "kit": {
                "attrs": self.attrs,
                "tasks": {
                    t.id: {"component": t.component, "thread": t.thread, "start": t.start, "end": t.end}
                    for t in self.tasks
                },  # fmt: skip
            },
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write the WfFormat JSON file; returns its path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_wfformat(), indent=1))
        return path


def load_trace(path: str | os.PathLike) -> Trace:
    """Read a WfFormat instance written by :meth:`Trace.save` or published by WfCommons (1.4 to 1.6)."""
    path = Path(path)
    try:
        content = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a readable WfFormat JSON file: {exc}") from exc
    return from_wfformat(content, source=str(path))


def from_wfformat(content: dict, *, source: str = "instance") -> Trace:
    """A :class:`Trace` from a WfFormat dict; errors name the field and the task."""
    version = _field(content, "schemaVersion", source)
    if str(version) not in READABLE_VERSIONS:
        raise ValueError(f"{source}: schemaVersion {version!r} is not one of {list(READABLE_VERSIONS)}")
    workflow = _field(content, "workflow", source)
    specification = _field(
        _field(workflow, "specification", f"{source}: workflow"), "tasks", f"{source}: specification"
    )
    execution = _field(workflow, "execution", f"{source}: workflow")
    runs = {_field(run, "id", f"{source}: execution task"): run for run in _field(execution, "tasks", source)}
    sizes = {f["id"]: int(f.get("sizeInBytes", 0)) for f in workflow["specification"].get("files", [])}
    started = _parse_time(_field(execution, "executedAt", f"{source}: execution"), f"{source}: execution.executedAt")
    extension = content.get("kit", {}).get("tasks", {})
    tasks = []
    for spec in specification:
        task_id = _field(spec, "id", f"{source}: specification task")
        where = f"{source}: task {task_id!r}"
        run = runs.get(task_id)
        if run is None:
            raise ValueError(f"{where}: no execution entry (workflow.execution.tasks has no id {task_id!r})")
        runtime = float(_field(run, "runtimeInSeconds", where))
        extra = extension.get(task_id)
        if extra is not None:
            start, end = float(extra["start"]), float(extra["end"])
        else:
            at = run.get("executedAt")
            start = (_parse_time(at, f"{where}: executedAt") - started).total_seconds() if at else 0.0
            end = start + runtime
        machines = run.get("machines") or ["unknown"]
        tasks.append(
            Task(
                id=task_id,
                name=str(_field(spec, "name", where)),
                start=start,
                end=end,
                host=str(machines[0]),
                parents=tuple(_field(spec, "parents", where)),
                component=(extra or {}).get("component", "other"),
                thread=(extra or {}).get("thread"),
                input_bytes=sum(sizes.get(f, 0) for f in spec.get("inputFiles", [])),
                output_bytes=sum(sizes.get(f, 0) for f in spec.get("outputFiles", [])),
                cores=float(run.get("coreCount", 1.0)),
                memory=int(run.get("memoryInBytes", 0)),
            )
        )
    attrs = content.get("kit", {}).get("attrs", {})
    return Trace(str(_field(content, "name", source)), tasks, started, attrs)


def relabel(trace: Trace, components: dict[str, str]) -> Trace:
    """A copy with each task's component set from ``components`` (task name -> component)."""
    unknown = sorted(set(components.values()) - set(COMPONENTS))
    if unknown:
        raise ValueError(f"unknown component(s) {unknown}; choose among {list(COMPONENTS)}")
    tasks = [replace(t, component=components.get(t.name, t.component)) for t in trace.tasks]
    return Trace(trace.name, tasks, trace.executed_at, dict(trace.attrs))


def children_of(tasks: list[Task]) -> dict[str, list[str]]:
    """Each task's children, in task order; a parent listed twice counts once."""
    children: dict[str, list[str]] = {t.id: [] for t in tasks}
    for t in tasks:
        for parent in dict.fromkeys(t.parents):
            children[parent].append(t.id)
    return children


def _validate(tasks: list[Task]) -> None:
    ids = [t.id for t in tasks]
    seen = set()
    for task_id in ids:
        if not isinstance(task_id, str) or not _ID.fullmatch(task_id):
            raise ValueError(
                f"task id {task_id!r} has characters WfFormat does not allow (only a-z A-Z 0-9 _ . # : / -)"
            )
        if task_id in seen:
            raise ValueError(f"task {task_id!r} appears twice: task ids must be unique")
        seen.add(task_id)
    for t in tasks:
        if t.end < t.start:
            raise ValueError(f"task {t.id!r}: end {t.end} is before start {t.start}")
        if t.component not in COMPONENTS:
            raise ValueError(f"task {t.id!r}: unknown component {t.component!r}; choose among {list(COMPONENTS)}")
        missing = [p for p in t.parents if p not in seen]
        if missing:
            raise ValueError(f"task {t.id!r}: parent(s) {missing} are not tasks of the trace")
    # Kahn's algorithm: whatever is left unvisited lies on a cycle.
    pending = {t.id: len(set(t.parents)) for t in tasks}
    children = children_of(tasks)
    ready = [task_id for task_id, count in pending.items() if count == 0]
    while ready:
        for child in children[ready.pop()]:
            pending[child] -= 1
            if pending[child] == 0:
                ready.append(child)
    cycle = sorted(task_id for task_id, count in pending.items() if count > 0)
    if cycle:
        raise ValueError(f"the trace has a cycle through task(s) {cycle[:5]}: a workflow must be acyclic")


def _output_file(task_id: str) -> str:
    return f"{task_id}.out"


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds")


def _parse_time(value, where: str) -> datetime:
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"{where}: {value!r} is not an ISO 8601 time") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _field(mapping, key: str, where: str):
    if not isinstance(mapping, dict) or key not in mapping:
        raise ValueError(f"{where}: missing field {key!r}")
    return mapping[key]
