"""WfCommons WfFormat: traces written as instances of schema 1.5 (1.6 when ids need it) and read from 1.4 to 1.6.

A :class:`~kit.replay.trace.Trace` is written as ``workflow.specification`` (tasks, parents, children, files)
and ``workflow.execution`` (runtimes, start times, cores, machines), readable by WfCommons, WRENCH and SimGrid;
what WfFormat has no field for (component, worker thread, start and end in seconds) goes in one namespaced
extension, ``"kit"``. :func:`load_trace` reads the kit's traces and WfCommons instances of schema 1.4 (flat
tasks with linked files), 1.5 and 1.6, with or without their execution section, dated as WfCommons and its
Pegasus, Makeflow and Nextflow parsers write; unknown fields are ignored; an invalid file is an error naming
the file, the task and the field.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from kit.replay.trace import (
    Machine,
    Task,
    Trace,
    _waits_for,
    topological,
)

__all__ = ["READABLE_VERSIONS", "from_wfformat", "load_trace", "schema_version", "to_wfformat"]

READABLE_VERSIONS = ("1.4", "1.5", "1.6")


_ID_1_5, _FILE_1_5 = re.compile(r"[0-9a-zA-Z_.-]+"), re.compile(r"[0-9a-zA-Z_.:/-]+")


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


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds")


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


def schema_version(trace: Trace) -> str:
    """The WfFormat version :func:`to_wfformat` writes: 1.5, or 1.6 when an id needs its wider alphabet."""
    ids = all(_ID_1_5.fullmatch(t.id) for t in trace.tasks)
    files = all(_FILE_1_5.fullmatch(name) for name in trace.files)
    return "1.5" if ids and files else "1.6"


def to_wfformat(trace: Trace) -> dict:
    """``trace`` as a WfFormat instance (a JSON-serialisable dict) of :func:`schema_version`."""
    children = trace.children()
    sizes, reads, writes = trace.file_lists()
    specification = [
        {
            "name": t.name,
            "id": t.id,
            "parents": list(t.parents),
            "children": children[t.id],
            "inputFiles": reads[t.id],
            "outputFiles": writes[t.id],
        }
        for t in trace.tasks
    ]
    files = [{"id": name, "sizeInBytes": int(size)} for name, size in sizes.items()]
    execution = [
        {
            "id": t.id,
            "runtimeInSeconds": t.runtime,
            "executedAt": _iso(trace.executed_at + timedelta(seconds=t.start)),
            "coreCount": t.cores,
            "readBytes": int(t.input_bytes),
            "writtenBytes": int(t.output_bytes),
            "memoryInBytes": int(t.memory),
            "machines": [t.host],
        }
        for t in trace.tasks
    ]
    extension = {}
    for t in trace.tasks:
        entry = extension[t.id] = {"component": t.component, "thread": t.thread, "start": t.start, "end": t.end}
        if t.reads is None:
            entry["reads_parents"] = True
        if t.writes is None:
            entry["writes_output"] = True
    return {
        "name": trace.name,
        "schemaVersion": schema_version(trace),
        "createdAt": _iso(datetime.now(UTC)),
        "runtimeSystem": {"name": "dask.distributed", "version": str(trace.attrs.get("distributed", "unknown"))},
        "workflow": {
            "specification": {"tasks": specification, "files": files},
            "execution": {
                "makespanInSeconds": trace.makespan,
                "executedAt": _iso(trace.executed_at),
                "tasks": execution,
                "machines": [_machine(trace.machines.get(host, Machine(host))) for host in trace._machine_names()],
            },
        },
        "kit": {"attrs": trace.attrs, "stated_makespan": trace.stated_makespan, "tasks": extension},
    }
