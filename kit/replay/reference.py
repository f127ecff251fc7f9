"""SimGrid, the field's reference simulator, replaying what :func:`kit.replay.replay` replays, for comparison.

SimGrid's Python bindings come with the operating system (Debian and Ubuntu: ``apt-get install
python3-simgrid``) for its own Python, not the kit's: :func:`simgrid_replay` writes the platform, the workflow
and the placement as JSON, runs :mod:`kit.replay.simgrid_dag` under that interpreter in a subprocess, and
reads back the makespan, each task's start and end, and SimGrid's wall time. SimGrid uses its plain max-min
network model (CM02 without TCP corrections), so that both simulators model the same thing; the comparison
covers what both model: cores, wide tasks, per-file transfers over shared links, storage (no GPUs, link
bandwidth profiles, per-task overheads, failures or streams).
"""

from __future__ import annotations

import functools
import json
import math
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import xarray as xr

from kit.replay.platform import Platform
from kit.replay.simulate import placement_of
from kit.replay.trace import Trace

#: What :func:`record` records by default: the instances of the paper's figure and of its smoke run.
RECORDED_RECIPES = ("blast", "montage", "1000genome", "seismology")
RECORDED_SIZES = (110, 200, 1000, 3000)
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
    files = dict(trace.files)
    writes = {}
    for t in trace.tasks:
        writes[t.id] = list(t.writes) if t.writes is not None else [f"{t.id}.out"]
        if t.writes is None:
            files[f"{t.id}.out"] = int(t.output_bytes)
    tasks = []
    for t in trace.tasks:
        reads = list(t.reads) if t.reads is not None else [f for p in dict.fromkeys(t.parents) for f in writes[p]]
        tasks.append(
            {"id": t.id, "host": place[t.id], "runtime": t.runtime, "cores": max(1, math.ceil(t.cores)),
             "order": order[t.id], "parents": list(dict.fromkeys(t.parents)), "reads": reads, "writes": writes[t.id]}
        )  # fmt: skip
    names = sorted(platform.hosts)
    routes = [[a, b, [link.name for link in platform.route(a, b)]] for a in names for b in names if a != b]
    return {
        "hosts": {name: {"cores": h.cores, "speed": h.speed} for name, h in platform.hosts.items()},
        "links": [{"name": link.name, "bandwidth": link.bandwidth, "latency": link.latency} for link in platform.links],
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
        clock = time.perf_counter()
        done = subprocess.run([python, str(SCRIPT), str(given), str(result)], capture_output=True, text=True,
                              timeout=timeout)  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"SimGrid failed on {trace.name!r} (exit {done.returncode}): {done.stderr[-2000:]}")
        out = json.loads(result.read_text())
    out["process_seconds"] = time.perf_counter() - clock
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


def platforms() -> dict[str, tuple[Platform, object]]:
    """The comparison's platforms and placements: ``one-host`` (every task on one 16-core host: cores only) and
    ``cluster`` (four 4-core hosts, tasks dealt round-robin in trace order, each host on a 1 Gbit/s link with
    100 µs latency to a storage host that holds the workflow inputs and routes between them: shared links)."""
    one = Platform.from_dict({"hosts": {"node": {"tier": "hpc", "cores": 16}}})
    nodes = [f"node{i}" for i in range(4)]
    cluster = Platform.from_dict(
        {
            "hosts": {**{n: {"tier": "hpc", "cores": 4} for n in nodes}, "storage": {"tier": "hpc", "cores": 1}},
            "links": [{"ends": [n, "storage"], "bandwidth": 1.25e8, "latency": 1e-4} for n in nodes],
            "storage": "storage",
        }
    )

    def dealt(trace):
        return {t.id: nodes[k % len(nodes)] for k, t in enumerate(trace.tasks)}

    return {"one-host": (one, lambda trace: "node"), "cluster": (cluster, dealt)}


def agreement(recipes=("blast", "montage"), sizes=(110,), *, seed: int = 0, recorded=None, live=None) -> xr.Dataset:
    """The kit and SimGrid on WfCommons instances (:func:`kit.replay.corpus.generate`) of ``recipes`` and
    ``sizes`` on each of :func:`platforms`: dims ``recipe, size, platform``; ``tasks``, ``kit_makespan``,
    ``simgrid_makespan``, ``simgrid_makespan_error`` (kit / SimGrid - 1), ``kit_seconds`` and
    ``simgrid_seconds`` (each simulator's wall time, same machine, same run) and ``speed_vs_simgrid``
    (SimGrid's time / the kit's). SimGrid runs here when it is installed (``live`` None) or ``live`` is True;
    otherwise its makespans and both wall times come from ``recorded`` (a file :func:`record` wrote), and only
    the kit's makespans are new."""
    from kit.replay.corpus import generate
    from kit.replay.simulate import replay

    live = simgrid_python() is not None if live is None else live
    if not live and recorded is None:
        raise RuntimeError(f"SimGrid is not installed ({INSTALL}) and no recorded run was given")
    past = None if live else _recorded(recorded, recipes, sizes, seed)
    shape = (len(recipes), len(sizes), len(platforms()))
    values = {key: np.zeros(shape) for key in ("kit_makespan", "simgrid_makespan", "kit_seconds", "simgrid_seconds")}
    tasks = np.zeros(shape[:2], dtype=np.int64)
    version = None if live else past.attrs.get("simgrid_version")
    replay(generate(recipes[0], int(sizes[0]), seed=seed), *platforms()["one-host"][:1], "node")  # imports, untimed
    for i, recipe in enumerate(recipes):
        for j, size in enumerate(sizes):
            trace = generate(recipe, int(size), seed=seed)
            tasks[i, j] = len(trace.tasks)
            for k, (name, (platform, placement)) in enumerate(platforms().items()):
                ours = replay(trace, platform, placement(trace))
                values["kit_makespan"][i, j, k] = ours.makespan
                if live:
                    theirs = simgrid_replay(trace, platform, placement(trace))
                    values["simgrid_makespan"][i, j, k] = theirs["makespan"]
                    values["kit_seconds"][i, j, k], values["simgrid_seconds"][i, j, k] = ours.seconds, theirs[
                        "wall_seconds"]  # fmt: skip
                    version = theirs["simgrid"]
                else:
                    where = {"recipe": recipe, "size": size, "platform": name}
                    for key in ("simgrid_makespan", "kit_seconds", "simgrid_seconds"):
                        values[key][i, j, k] = float(past[key].sel(where))
    dims = ("recipe", "size", "platform")
    data = xr.Dataset(
        {key: (dims, value, {"units": "s"}) for key, value in values.items()},
        coords={"recipe": list(recipes), "size": np.asarray(sizes, dtype=np.int64), "platform": list(platforms())},
    )
    data["tasks"] = (("recipe", "size"), tasks)
    data["simgrid_makespan_error"] = (data.kit_makespan / data.simgrid_makespan - 1).assign_attrs(units="1")
    data["speed_vs_simgrid"] = (data.simgrid_seconds / data.kit_seconds).assign_attrs(units="1")
    origin = (
        "here" if live else f"recorded {past.attrs['provenance_created'][:10]} on {past.attrs['provenance_host_cpu']}"
    )
    return data.assign_attrs(seed=seed, simgrid_version=str(version), simgrid_run=origin)


def record(path, recipes=RECORDED_RECIPES, sizes=RECORDED_SIZES, *, seed: int = 0) -> Path:
    """Run :func:`agreement` with SimGrid here and save it to ``path`` (netCDF), for machines without SimGrid."""
    from kit import io

    if simgrid_python() is None:
        raise RuntimeError(f"recording needs SimGrid: {INSTALL}")
    data = agreement(recipes, sizes, seed=seed)
    return io.save_dataset(data, path, parameters={"recipes": list(recipes), "sizes": list(sizes)}, seed=seed)


def _recorded(path, recipes, sizes, seed) -> xr.Dataset:
    from kit import io

    past = io.load_dataset(path)
    if int(past.attrs.get("seed", -1)) != seed:
        raise ValueError(f"{path}: recorded with seed {past.attrs.get('seed')}, not {seed}: {INSTALL} to run SimGrid")
    missing = [(r, int(s)) for r in recipes for s in sizes
               if r not in past.recipe.values or int(s) not in past["size"].values]  # fmt: skip
    if missing:
        raise ValueError(f"{path}: no recorded SimGrid run of {missing[:5]}: {INSTALL} to run SimGrid here")
    return past
