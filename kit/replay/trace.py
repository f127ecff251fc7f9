"""Traces of workflow runs: tasks with their timing, placement, dependencies, files and machines, as WfFormat.

A :class:`Trace` is saved as a WfCommons WfFormat instance (schema 1.5, or 1.6 when its ids need 1.6's wider
alphabet: ``workflow.specification`` with tasks, parents, children and files, ``workflow.execution`` with
runtimes, start times, cores and machines), readable by WfCommons, WRENCH and SimGrid. What WfFormat has no
field for (component, worker thread, start and end in seconds, transfers) goes in one namespaced extension,
``"kit"``. :func:`load_trace` reads the kit's traces and WfCommons instances of schema 1.4 (flat tasks with
linked files), 1.5 and 1.6, with or without their execution section, dated as WfCommons and its Pegasus,
Makeflow and Nextflow parsers write; unknown fields are ignored; an invalid file is an error naming the
file, the task and the field.
"""

from __future__ import annotations

import heapq
import json
import math
import os
import re
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

READABLE_VERSIONS = ("1.4", "1.5", "1.6")
_ID = re.compile(r"[0-9a-zA-Z_.#:/-]+")  # WfFormat 1.6's task ids
_ID_1_5, _FILE_1_5 = re.compile(r"[0-9a-zA-Z_.-]+"), re.compile(r"[0-9a-zA-Z_.:/-]+")
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
        """The trace as a WfFormat instance (a JSON-serialisable dict) of :meth:`schema_version`."""
        children = self.children()
        sizes, reads, writes = self.file_lists()
        specification = [
            {
                "name": t.name,
                "id": t.id,
                "parents": list(t.parents),
                "children": children[t.id],
                "inputFiles": reads[t.id],
                "outputFiles": writes[t.id],
            }
            for t in self.tasks
        ]
        files = [{"id": name, "sizeInBytes": int(size)} for name, size in sizes.items()]
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
        extension = {}
        for t in self.tasks:
            entry = extension[t.id] = {"component": t.component, "thread": t.thread, "start": t.start, "end": t.end}
            if t.reads is None:
                entry["reads_parents"] = True
            if t.writes is None:
                entry["writes_output"] = True
        return {
            "name": self.name,
            "schemaVersion": self.schema_version(),
            "createdAt": _iso(datetime.now(UTC)),
            "runtimeSystem": {"name": "dask.distributed", "version": str(self.attrs.get("distributed", "unknown"))},
            "workflow": {
                "specification": {"tasks": specification, "files": files},
                "execution": {
                    "makespanInSeconds": self.makespan,
                    "executedAt": _iso(self.executed_at),
                    "tasks": execution,
                    "machines": [_machine(self.machines.get(host, Machine(host))) for host in self._machine_names()],
                },
            },
            "kit": {"attrs": self.attrs, "stated_makespan": self.stated_makespan, "tasks": extension},
        }

    def schema_version(self) -> str:
        """The WfFormat version :meth:`to_wfformat` writes: 1.5, or 1.6 when an id needs its wider alphabet."""
        ids = all(_ID_1_5.fullmatch(t.id) for t in self.tasks)
        files = all(_FILE_1_5.fullmatch(name) for name in self.files)
        return "1.5" if ids and files else "1.6"

    def _machine_names(self) -> list[str]:
        return sorted(set(self.hosts) | set(self.machines))

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
    """A :class:`Trace` from a WfFormat dict (1.4 to 1.6, with or without its execution); errors name the field
    and the task. Tasks without start times start when their last parent or file writer ends."""
    version = _field(content, "schemaVersion", source)
    if str(version) not in READABLE_VERSIONS:
        raise ValueError(f"{source}: schemaVersion {version!r} is not one of {list(READABLE_VERSIONS)}")
    workflow = _field(content, "workflow", source)
    if not isinstance(workflow, dict):
        raise ValueError(f"{source}: workflow must be an object, got {type(workflow).__name__}")
    if "specification" in workflow or "tasks" not in workflow:
        records, files, execution = _records(workflow, source)
    else:
        records, files, execution = _flat_records(workflow, source)
    extension = content.get("kit") or {}
    marks = extension.get("tasks") or {}
    implicit = {name for r in records if marks.get(r["id"], {}).get("writes_output") for name in r["writes"]}
    sizes = {name: size for name, size in files.items() if name not in implicit}
    machines = _machines(execution.get("machines") or [], source)
    started = execution.get("executedAt")
    started = _parse_time(started, f"{source}: execution.executedAt") if started is not None else None
    times = {}
    if records and all(r["id"] in marks for r in records):  # written by the kit: seconds from the start
        times = {r["id"]: (float(marks[r["id"]]["start"]), float(marks[r["id"]]["end"])) for r in records}
    elif records and all(r["at"] is not None for r in records):
        dates = {r["id"]: _parse_time(r["at"], f"{source}: task {r['id']!r}: executedAt") for r in records}
        started = started or min(dates.values())
        times = {i: ((at - started).total_seconds(), None) for i, at in dates.items()}
    tasks = _tasks(records, files, marks, times, source)
    stated = extension.get("stated_makespan")
    if not times and _number(execution.get("makespanInSeconds", 0), f"{source}: makespanInSeconds") > 0:
        stated = float(execution["makespanInSeconds"])  # generators write 0: unknown
    try:
        return Trace(
            str(_field(content, "name", source)), tasks, started or datetime.fromtimestamp(0, UTC),
            extension.get("attrs", {}), sizes, machines, stated,
        )  # fmt: skip
    except ValueError as exc:
        raise ValueError(f"{source}: {exc}") from None


def _records(workflow: dict, source: str) -> tuple[list[dict], dict[str, int], dict]:
    """Task records, file sizes and the execution section of a WfFormat 1.5/1.6 instance."""
    specification = _field(workflow, "specification", f"{source}: workflow")
    execution = workflow.get("execution") or {}
    files = {}
    for i, entry in enumerate(specification.get("files") or []):
        name = _field(entry, "id", f"{source}: specification.files[{i}]")
        files[str(name)] = _size(entry, f"{source}: file {name!r}")
    runs = {}
    for i, run in enumerate(execution.get("tasks") or []):
        runs[str(_field(run, "id", f"{source}: execution.tasks[{i}]"))] = run
    machines = execution.get("machines") or []
    alone = str(machines[0].get("nodeName", "unknown")) if len(machines) == 1 else "unknown"
    records = []
    for i, spec in enumerate(_field(specification, "tasks", f"{source}: workflow.specification")):
        task_id = str(_field(spec, "id", f"{source}: specification.tasks[{i}]"))
        where = f"{source}: task {task_id!r}"
        run = runs.get(task_id)
        if execution and run is None:
            raise ValueError(f"{where}: no execution entry (workflow.execution.tasks has no id {task_id!r})")
        run = run or {}
        records.append(
            {
                "id": task_id,
                "name": str(spec.get("name", task_id)),
                "parents": [str(p) for p in spec.get("parents") or []],
                "reads": [str(f) for f in spec.get("inputFiles") or []],
                "writes": [str(f) for f in spec.get("outputFiles") or []],
                "runtime": _number(
                    _field(run, "runtimeInSeconds", where) if execution else 0.0, f"{where}: runtimeInSeconds"
                ),
                "at": run.get("executedAt"),
                "cores": _number(run.get("coreCount", 1), f"{where}: coreCount"),
                "memory": int(_number(run.get("memoryInBytes", 0), f"{where}: memoryInBytes")),
                "machine": str((run.get("machines") or [alone])[0]),
            }
        )
    return records, files, execution


def _flat_records(workflow: dict, source: str) -> tuple[list[dict], dict[str, int], dict]:
    """Task records, file sizes and execution facts of a WfFormat 1.4 instance (tasks named by ``name``, each
    with its ``files`` linked as input or output, machines with ``cpu.count`` and ``cpu.speed``)."""
    files, records = {}, []
    tasks = workflow["tasks"]
    machines = workflow.get("machines") or []
    alone = str(machines[0].get("nodeName", "unknown")) if len(machines) == 1 else "unknown"
    names = [str(_field(task, "name", f"{source}: workflow.tasks[{i}]")) for i, task in enumerate(tasks)]
    counts = Counter(names)  # parents name tasks by name; when names repeat, ids tell tasks apart
    ids = names if len(counts) == len(names) else [str(t.get("id", n)) for t, n in zip(tasks, names, strict=True)]
    by_name = {name: task_id for name, task_id in zip(names, ids, strict=True) if counts[name] == 1}
    for i, task in enumerate(tasks):
        task_id = ids[i]
        where = f"{source}: task {task_id!r}"
        reads, writes = [], []
        for k, entry in enumerate(task.get("files") or []):
            name = str(_field(entry, "name", f"{where}: files[{k}]"))
            if entry.get("path"):  # Nextflow: the same name in several work directories
                name = f"{str(entry['path']).rstrip('/')}/{name}"
            link = _field(entry, "link", f"{where}: file {name!r}")
            if link not in ("input", "output"):
                raise ValueError(f"{where}: file {name!r}: link {link!r} is neither 'input' nor 'output'")
            files[name] = _size(entry, f"{where}: file {name!r}")
            (reads if link == "input" else writes).append(name)
        records.append(
            {
                "id": task_id,
                "name": str(task.get("category") or names[i]),
                "parents": [by_name.get(str(p), str(p)) for p in task.get("parents") or []],
                "reads": reads,
                "writes": writes,
                "runtime": _number(task.get("runtimeInSeconds", 0.0), f"{where}: runtimeInSeconds"),
                "at": task.get("executedAt"),
                "cores": _number(task.get("cores", 1), f"{where}: cores"),
                "memory": int(_number(task.get("memoryInBytes", 0), f"{where}: memoryInBytes")),
                "machine": str(task.get("machine") or alone),
            }
        )
    machines = [
        {"nodeName": m.get("nodeName"), "cpu": {"coreCount": (m.get("cpu") or {}).get("count"),
                                                "speedInMHz": (m.get("cpu") or {}).get("speed")}}
        for m in machines
    ]  # fmt: skip
    execution = {key: workflow[key] for key in ("executedAt", "makespanInSeconds") if key in workflow}
    return records, files, {**execution, "machines": machines}


def _tasks(records, files, marks, times, source) -> list[Task]:
    """Tasks in an order where parents come first, with recorded times or, without, as-soon-as-possible ones."""
    writer = {}
    for r in records:
        for name in r["writes"]:
            if writer.setdefault(name, r["id"]) != r["id"]:
                raise ValueError(f"{source}: file {name!r} is written by two tasks, {writer[name]!r} and {r['id']!r}")
    known = {r["id"] for r in records}
    for r in records:
        unknown = [p for p in r["parents"] if p not in known]
        if unknown:
            raise ValueError(f"{source}: task {r['id']!r}: parent(s) {unknown[:5]} are not tasks of the instance")
    ends: dict[str, float] = {}
    tasks = []
    for r in _topological(records, writer, source):
        mark = marks.get(r["id"], {})
        if times:
            start, end = times[r["id"]]
            end = start + r["runtime"] if end is None else end
        else:
            start = max((ends[i] for i in _waits_for(r["id"], r["parents"], r["reads"], writer)), default=0.0)
            end = start + r["runtime"]
        ends[r["id"]] = end
        implicit_out, implicit_in = mark.get("writes_output"), mark.get("reads_parents")
        tasks.append(
            Task(
                id=r["id"],
                name=r["name"],
                start=start,
                end=end,
                host=r["machine"],
                parents=tuple(dict.fromkeys(r["parents"])),
                component=mark.get("component", "other"),
                thread=mark.get("thread"),
                input_bytes=sum(files.get(f, 0) for f in r["reads"]),
                output_bytes=sum(files.get(f, 0) for f in r["writes"]),
                cores=r["cores"],
                memory=r["memory"],
                reads=None if implicit_in else tuple(r["reads"]),
                writes=None if implicit_out else tuple(r["writes"]),
            )
        )
    return tasks


def _topological(records, writer, source) -> list[dict]:
    """``records`` with each after its parents and the writers of its files (file order otherwise)."""
    by_id = {r["id"]: r for r in records}
    before = {r["id"]: _waits_for(r["id"], r["parents"], r["reads"], writer) for r in records}
    try:
        return [by_id[task_id] for task_id in topological(before)]
    except ValueError as exc:
        raise ValueError(f"{source}: {exc}") from None


def _machines(entries, source: str) -> dict[str, Machine]:
    machines = {}
    for i, entry in enumerate(entries):
        name = str(_field(entry, "nodeName", f"{source}: execution.machines[{i}]"))
        cpu = entry.get("cpu") or {}
        cores, speed = cpu.get("coreCount"), cpu.get("speedInMHz")
        where = f"{source}: machine {name!r}"
        machines[name] = Machine(
            name,
            None if cores is None else math.ceil(_number(cores, f"{where}: cpu.coreCount")),
            None if speed is None else _number(speed, f"{where}: cpu.speedInMHz"),
        )
    return machines


def _machine(machine: Machine) -> dict:
    cpu = {"coreCount": machine.cores, "speedInMHz": None if machine.speed is None else round(machine.speed)}
    cpu = {key: value for key, value in cpu.items() if value is not None}
    return {"nodeName": machine.name, **({"cpu": cpu} if cpu else {})}


def _size(entry: dict, where: str) -> int:
    size = entry.get("sizeInBytes", entry.get("size", 0))
    return int(_number(size, f"{where}: sizeInBytes"))


def _number(value, where: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: expected a number, got {value!r}") from None
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{where}: expected a finite number >= 0, got {value!r}")
    return number


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


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds")


#: Dates WfCommons instances carry beside ISO 8601: Pegasus' month-first ``12-19-20T21:31:53Z`` and DAGMan's.
DATE_FORMATS = ("%m-%d-%yT%H:%M:%SZ", "%m/%d/%y %H:%M:%S")


def _parse_time(value, where: str) -> datetime:
    """A time from ISO 8601 (basic or extended), a format of :data:`DATE_FORMATS` (UTC) or seconds since
    the epoch; naive times are UTC."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    text = str(value).strip().upper().replace("Z", "+00:00") if isinstance(value, str) else str(value)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        for pattern in DATE_FORMATS:
            try:
                moment = datetime.strptime(str(value).strip(), pattern)
                break
            except ValueError:
                continue
        else:
            raise ValueError(
                f"{where}: {value!r} is neither an ISO 8601 time nor one of {list(DATE_FORMATS)}"
            ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _field(mapping, key: str, where: str):
    if not isinstance(mapping, dict) or key not in mapping:
        raise ValueError(f"{where}: missing field {key!r}")
    return mapping[key]
