"""The kit against SimGrid on WfCommons instances: the experiment behind the figure ``simgrid-agreement``.

:func:`agreement` generates instances of WfCommons recipes (:mod:`kit.replay.corpus`), replays each on the
comparison's platforms (:func:`platforms`) with the kit and with SimGrid (:mod:`kit.replay.reference`), and
compares makespans and wall times; where SimGrid is not installed, SimGrid's side comes from a run that
:func:`record` saved on a machine that has it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from kit.replay.platform import Platform
from kit.replay.reference import INSTALL, simgrid_python, simgrid_replay

#: What :func:`record` records by default: the instances of the paper's figure and of its smoke run.
RECORDED_RECIPES = ("blast", "montage", "1000genome", "seismology")
RECORDED_SIZES = (110, 200, 1000, 3000)


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
    compared = platforms()
    shape = (len(recipes), len(sizes), len(compared))
    values = {key: np.zeros(shape) for key in ("kit_makespan", "simgrid_makespan", "kit_seconds", "simgrid_seconds")}
    tasks = np.zeros(shape[:2], dtype=np.int64)
    version = None if live else past.attrs.get("simgrid_version")
    replay(generate(recipes[0], int(sizes[0]), seed=seed), compared["one-host"][0], "node")  # imports, untimed
    for i, recipe in enumerate(recipes):
        for j, size in enumerate(sizes):
            trace = generate(recipe, int(size), seed=seed)
            tasks[i, j] = len(trace.tasks)
            for k, (name, (platform, placement)) in enumerate(compared.items()):
                hosts = placement(trace)
                ours = replay(trace, platform, hosts)
                values["kit_makespan"][i, j, k] = ours.makespan
                if live:
                    theirs = simgrid_replay(trace, platform, hosts)
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
        coords={"recipe": list(recipes), "size": np.asarray(sizes, dtype=np.int64), "platform": list(compared)},
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
