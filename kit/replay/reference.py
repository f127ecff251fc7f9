"""SimGrid, the field's reference simulator, replaying what :func:`kit.replay.replay` replays, for comparison.

SimGrid's Python bindings come with the operating system (Debian and Ubuntu: ``apt-get install
python3-simgrid``) for its own Python, not the kit's: :func:`simgrid_replay` writes the platform, the workflow
and the placement as JSON, runs :mod:`kit.replay.simgrid_dag` under that interpreter in a subprocess, and
reads back the makespan, each task's start and end, and SimGrid's wall time. SimGrid uses its plain max-min
network model (CM02 without TCP corrections), so that both simulators model the same thing; the comparison
covers what both model: cores, wide tasks, per-file transfers over shared links and disks (a disk is a link
without latency at the end of a route), storage (no GPUs, link bandwidth profiles, per-task overheads,
failures or streams).
"""

from __future__ import annotations

import functools
import json
import math
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from kit.replay.platform import Platform
from kit.replay.simulate import placement_of
from kit.replay.trace import Trace

#: How to install SimGrid's Python bindings where they are packaged.
INSTALL = "apt-get install python3-simgrid"
SCRIPT = Path(__file__).with_name("simgrid_dag.py")


@functools.cache
def simgrid_python() -> str | None:
    """A Python interpreter that imports ``simgrid`` (``$KIT_SIMGRID_PYTHON``, else the system's), or None."""
    candidates = [os.environ.get("KIT_SIMGRID_PYTHON"), "/usr/bin/python3", shutil.which("python3")]
    for python in dict.fromkeys(c for c in candidates if c):
        try:
            found = subprocess.run([python, "-c", "import simgrid"], capture_output=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if found.returncode == 0:
            return python
    return None


def case(trace: Trace, platform: Platform, placement, *, seed: int = 0) -> dict:
    """The JSON case :mod:`kit.replay.simgrid_dag` reads: hosts, links, routes, storage, files and tasks (each
    with its host, runtime, cores, queue order, parents, files read and written)."""
    _supported(trace, platform)
    place = placement_of(trace, platform, placement, seed)
    order = {t.id: k for k, t in enumerate(sorted(trace.tasks, key=lambda t: (t.start, t.id)))}
    files, read, writes = trace.file_lists()
    tasks = []
    for t in trace.tasks:
        reads = [f for f in dict.fromkeys(read[t.id]) if f not in writes[t.id]]  # what it writes, it does not wait for
        tasks.append(
            {"id": t.id, "host": place[t.id], "runtime": t.runtime, "cores": max(1, math.ceil(t.cores)),
             "order": order[t.id], "parents": list(dict.fromkeys(t.parents)), "reads": reads, "writes": writes[t.id]}
        )  # fmt: skip
    names = sorted(platform.hosts)
    routes = [[a, b, [link.name for link in platform.route(a, b)]] for a in names for b in names if a != b]
    return {
        "hosts": {name: {"cores": h.cores, "speed": h.speed} for name, h in platform.hosts.items()},
        "links": [
            {"name": link.name, "bandwidth": link.bandwidth, "latency": link.latency}
            for link in [*platform.links, *platform.disks]
        ],
        "routes": [route for route in routes if route[2]],
        "storage": platform.storage,
        "files": files,
        "tasks": tasks,
    }


def simgrid_replay(trace: Trace, platform: Platform, placement, *, seed: int = 0, timeout: float = 600) -> dict:
    """SimGrid's replay of ``trace`` on ``platform`` under ``placement`` (as :func:`kit.replay.replay` takes it):
    ``makespan``, ``starts``, ``ends`` (s) and ``wall_seconds`` (SimGrid's own, without start-up and JSON)."""
    python = simgrid_python()
    if python is None:
        raise RuntimeError(f"SimGrid's Python bindings are not installed: {INSTALL} (or set KIT_SIMGRID_PYTHON)")
    content = case(trace, platform, placement, seed=seed)
    with tempfile.TemporaryDirectory(prefix="kit-simgrid-") as folder:
        given, result = Path(folder) / "case.json", Path(folder) / "result.json"
        given.write_text(json.dumps(content))
        done = subprocess.run([python, str(SCRIPT), str(given), str(result)], capture_output=True, text=True,
                              timeout=timeout)  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"SimGrid failed on {trace.name!r} (exit {done.returncode}): {done.stderr[-2000:]}")
        out = json.loads(result.read_text())
    return out


def _supported(trace: Trace, platform: Platform) -> None:
    changing = [link.name for link in platform.links if link.changes]
    if changing:
        raise ValueError(f"the SimGrid reference models constant bandwidths; link(s) {changing} change theirs")
    if platform.overhead:
        raise ValueError(f"the SimGrid reference models no per-task overhead; the platform has {platform.overhead} s")
    gpus = [name for name, host in platform.hosts.items() if host.gpus]
    if gpus:
        raise ValueError(f"the SimGrid reference models cores only; host(s) {gpus} have GPUs")
