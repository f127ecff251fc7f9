"""Traces of workflow runs: tasks with their timing, placement, dependencies, files and machines.

A :class:`Trace` is validated when built (parents known, files written once, no cycle) and saved as a
WfCommons WfFormat instance; reading and writing WfFormat is :mod:`kit.replay.wfformat`'s job.
"""

from __future__ import annotations

import heapq
import json
import os
import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

_ID = re.compile(r"[0-9a-zA-Z_.#:/-]+")  # WfFormat 1.6's task ids
#: Components a task can belong to (``other`` when unknown).
COMPONENTS = ("simulation", "training", "validation", "inference", "other")


@dataclass(frozen=True)
class Task:
    """One executed task: seconds from the start of the trace, the host (worker) and thread that ran it, its
    parents, the bytes it read from them and produced, the cores and memory it needed (bytes, 0 when
    unknown). ``reads`` and ``writes`` name its files (:attr:`Trace.files`) when known; without them it
    writes one output of ``output_bytes`` and reads all its parents wrote."""

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
    reads: tuple[str, ...] | None = None
    writes: tuple[str, ...] | None = None

    @property
    def runtime(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class Machine:
    """A machine of the run: its cores and clock (MHz), ``None`` when the trace does not say."""

    name: str
    cores: int | None = None
    speed: float | None = None


@dataclass
class Trace:
    """Tasks of one run (``name``), validated on construction: unique ids, known parents and files, one
    writer per file, no cycle. ``files`` gives the size in bytes of each file tasks read or write,
    ``machines`` what is known of the hosts, ``stated_makespan`` the run's makespan when its tasks' start
    times are not all known."""

    name: str
    tasks: list[Task]
    executed_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    attrs: dict = field(default_factory=dict)
    files: dict[str, int] = field(default_factory=dict)
    machines: dict[str, Machine] = field(default_factory=dict)
    stated_makespan: float | None = None

    def __post_init__(self):
        self.tasks = list(self.tasks)
        _validate(self.tasks, self.files)

    @property
    def makespan(self) -> float:
        """Seconds from the first start to the last end (the stated makespan when there is one)."""
        if self.stated_makespan is not None:
            return self.stated_makespan
        if not self.tasks:
            return 0.0
        return max(t.end for t in self.tasks) - min(t.start for t in self.tasks)

    @property
    def hosts(self) -> list[str]:
        return sorted({t.host for t in self.tasks})

    def children(self) -> dict[str, list[str]]:
        """Each task's children, in trace order (a parent listed twice counts once)."""
        return children_of(self.tasks)

    def file_lists(self) -> tuple[dict[str, int], dict[str, list[str]], dict[str, list[str]]]:
        """Every file's size and each task's files read and written, a task without lists writing one output
        (``<id>.out``, ``output_bytes``) and reading all its parents wrote."""
        sizes = dict(self.files)
        writes = {}
        for t in self.tasks:
            writes[t.id] = list(t.writes) if t.writes is not None else [_output_file(t.id)]
            if t.writes is None:
                sizes[_output_file(t.id)] = int(t.output_bytes)
        reads = {
            t.id: list(t.reads) if t.reads is not None else list(dict.fromkeys(f for p in t.parents for f in writes[p]))
            for t in self.tasks
        }
        return sizes, reads, writes

    def to_wfformat(self) -> dict:
        """The trace as a WfFormat instance (:func:`kit.replay.wfformat.to_wfformat`)."""
        from kit.replay.wfformat import to_wfformat

        return to_wfformat(self)

    def schema_version(self) -> str:
        """The WfFormat version :meth:`to_wfformat` writes (:func:`kit.replay.wfformat.schema_version`)."""
        from kit.replay.wfformat import schema_version

        return schema_version(self)

    def _machine_names(self) -> list[str]:
        return sorted(set(self.hosts) | set(self.machines))

    def save(self, path: str | os.PathLike) -> Path:
        """Write the WfFormat JSON file; returns its path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_wfformat(), indent=1))
        return path


def relabel(trace: Trace, components: dict[str, str]) -> Trace:
    """A copy with each task's component set from ``components`` (task name -> component)."""
    unknown = sorted(set(components.values()) - set(COMPONENTS))
    if unknown:
        raise ValueError(f"unknown component(s) {unknown}; choose among {list(COMPONENTS)}")
    tasks = [replace(t, component=components.get(t.name, t.component)) for t in trace.tasks]
    return replace(trace, tasks=tasks, attrs=dict(trace.attrs))


def children_of(tasks: list[Task]) -> dict[str, list[str]]:
    """Each task's children, in task order; a parent listed twice counts once."""
    children: dict[str, list[str]] = {t.id: [] for t in tasks}
    for t in tasks:
        for parent in dict.fromkeys(t.parents):
            children[parent].append(t.id)
    return children


def _validate(tasks: list[Task], files: dict[str, int]) -> None:
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
    writer: dict[str, str] = {}
    for t in tasks:
        if t.end < t.start:
            raise ValueError(f"task {t.id!r}: end {t.end} is before start {t.start}")
        if t.component not in COMPONENTS:
            raise ValueError(f"task {t.id!r}: unknown component {t.component!r}; choose among {list(COMPONENTS)}")
        missing = [p for p in t.parents if p not in seen]
        if missing:
            raise ValueError(f"task {t.id!r}: parent(s) {missing} are not tasks of the trace")
        unknown = [f for f in (*(t.reads or ()), *(t.writes or ())) if f not in files]
        if unknown:
            raise ValueError(f"task {t.id!r}: file(s) {unknown[:5]} have no size in the trace's files")
        for name in t.writes or ():
            if writer.setdefault(name, t.id) != t.id:
                raise ValueError(f"file {name!r} is written by two tasks, {writer[name]!r} and {t.id!r}")
    _check_acyclic(tasks, writer)


def _check_acyclic(tasks: list[Task], writer: dict[str, str]) -> None:
    topological({t.id: _waits_for(t.id, t.parents, t.reads or (), writer) for t in tasks})


def _waits_for(task_id: str, parents, reads, writer: dict[str, str]) -> set[str]:
    """The tasks a task comes after: its parents and the writers of the files it reads."""
    return set(parents) | {writer[f] for f in reads if f in writer and writer[f] != task_id}


def topological(before: dict[str, set[str]]) -> list[str]:
    """The ids of ``before`` (id -> the ids it comes after), each after those, in the mapping's order among
    equals (Kahn's algorithm); a cycle is an error naming tasks on it."""
    pending = {task_id: len(earlier) for task_id, earlier in before.items()}
    later: dict[str, list[str]] = {task_id: [] for task_id in before}
    for task_id, earlier in before.items():
        for other in earlier:
            later[other].append(task_id)
    position = {task_id: k for k, task_id in enumerate(before)}
    ready = [(position[i], i) for i, count in pending.items() if count == 0]
    heapq.heapify(ready)
    ordered = []
    while ready:
        _, task_id = heapq.heappop(ready)
        ordered.append(task_id)
        for other in later[task_id]:
            pending[other] -= 1
            if pending[other] == 0:
                heapq.heappush(ready, (position[other], other))
    if len(ordered) < len(before):
        cycle = sorted(i for i, count in pending.items() if count > 0)
        raise ValueError(f"the trace has a cycle through task(s) {cycle[:5]}: a workflow must be acyclic")
    return ordered


def _output_file(task_id: str) -> str:
    return f"{task_id}.out"


#: Dates WfCommons instances carry beside ISO 8601: Pegasus' month-first ``12-19-20T21:31:53Z`` and DAGMan's.
