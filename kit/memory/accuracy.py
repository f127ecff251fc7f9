"""How far the CPU allocator's bytes are from a device's: stage by stage and for whole planned steps.

The planners are fed CPU profiles where no GPU is at hand. This module measures what that costs: the same
chain, input and plans profiled and run on the host (the torch profiler's allocator events) and on a device
(the CUDA caching allocator's counters, the ground truth), and :func:`record` keeps such a run, with the
card's name and the software versions, for the papers' figures.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import xarray as xr

from kit.memory.execute import measure
from kit.memory.models import benchmark_chain
from kit.memory.plan import STRATEGIES, budgets_between, plan
from kit.memory.profiling import check_device, profile
from kit.memory.schedule import Costs

#: Per-stage quantities compared between host and device profiles.
STAGE_BYTES = ("x", "xbar", "fwd_tmp", "fn_tmp", "bwd_tmp", "saved_hooks")

#: What :func:`record` can write, one netCDF file each.
PARTS = ("profiler-accuracy", "tradeoff", "host-link", "offload")

#: Batch sizes of the recorded GPU run: large enough that a step is not bound by kernel launches.
GPU_BATCHES = {"mlp": 8192, "conv": 256, "transformer": 64, "resnet18": 32}


def profiler_accuracy(
    chains=("mlp", "conv", "transformer", "resnet18"),
    *,
    device="cuda",
    batch: int | dict | None = None,
    fraction: float = 0.5,
    repeats: int = 3,
    seed: int = 0,
) -> xr.Dataset:
    """Profile each benchmark chain on the host CPU and on ``device``, and run each strategy's plan (made from
    the device's profile at ``fraction`` of the way from the least peak to the store-all peak) on both.

    Dims ``on`` (``host``, ``device``), ``layer`` (every stage of every chain; coords ``layer_chain``,
    ``layer_stage``, ``layer_module``), ``chain`` and ``strategy``. Variables: the per-stage bytes of
    :data:`STAGE_BYTES` (dims ``on, layer``), ``step_peak`` (measured peak of one step, dims ``on, chain,
    strategy``), ``step_predicted_peak`` (the plan's, from the device profile), and the ratios ``stage_ratio_<key>``
    and ``step_peak_ratio`` (host / device).
    """
    target = check_device(device)
    layers, steps = [], []
    for name in chains:
        model, sample = benchmark_chain(name, batch=batch, seed=seed)
        profiles = {on: profile(copy.deepcopy(model), sample, where, repeats=repeats) for on, where in _places(target)}
        layers.append(xr.concat([profiles[on][list(STAGE_BYTES)] for on in ("host", "device")], dim="on"))
        chain = Costs.from_profile(profiles["device"])
        (budget,) = budgets_between(chain, [fraction])
        peaks, predicted = np.full((2, len(STRATEGIES)), np.nan), np.full(len(STRATEGIES), np.nan)
        for k, strategy in enumerate(STRATEGIES):
            try:
                chosen = plan(chain, int(budget), strategy)
            except ValueError:  # this strategy cannot fit the budget
                continue
            predicted[k] = chosen.predicted_peak
            for i, (_, where) in enumerate(_places(target)):
                peaks[i, k] = measure(copy.deepcopy(model).to(where), chosen, sample, repeats=1)["peak"]
        steps.append((peaks, predicted, profiles))
    stage = xr.concat(
        [
            data.assign_coords(layer_chain=("stage", [name] * data.sizes["stage"]), layer_stage=data.stage)
            .rename(module="layer_module")
            .swap_dims(stage="layer_stage")
            .drop_vars("stage")
            .rename(layer_stage="layer")
            .assign_coords(layer_stage=lambda d: d.layer)
            for name, data in zip(chains, layers, strict=True)
        ],
        dim="layer",
    )
    stage = stage.assign_coords(layer=np.arange(stage.sizes["layer"]), on=["host", "device"])
    out = stage.astype(float)
    for key in STAGE_BYTES:
        out[f"stage_ratio_{key}"] = out[key].sel(on="host") / out[key].sel(on="device")
    out["step_peak"] = (("on", "chain", "strategy"), np.stack([s[0] for s in steps], axis=1))
    out["step_predicted_peak"] = (("chain", "strategy"), np.stack([s[1] for s in steps]))
    out = out.assign_coords(chain=list(chains), strategy=list(STRATEGIES))
    out["step_peak_ratio"] = out.step_peak.sel(on="host") / out.step_peak.sel(on="device")
    for key in (*STAGE_BYTES, "step_peak", "step_predicted_peak"):
        out[key].attrs["units"] = "bytes"
    first = steps[0][2]
    out.attrs = dict(
        host=first["host"].attrs["device"],
        device=first["device"].attrs["device"],
        host_memory_source=first["host"].attrs["memory_source"],
        device_memory_source=first["device"].attrs["memory_source"],
        plan_fraction=fraction,
        seed=seed,
        batch="default" if batch is None else str(batch),
    )
    return out


def _places(target):
    import torch

    return [("host", torch.device("cpu")), ("device", target)]


def record(
    directory,
    *,
    device="cuda",
    batch=GPU_BATCHES,
    repeats: int = 5,
    seed: int = 0,
    parts=PARTS,
    link=None,
) -> list[Path]:
    """Run :func:`profiler_accuracy`, the time/peak trade-off (:func:`kit.memory.tradeoff.benchmark`), the
    host link's measurement (:func:`kit.memory.host_link.measure_link`) and offloading against recomputation
    (:func:`kit.memory.offloading.compare`, over ``link`` or the link measured here) on ``device``; write them
    to ``directory`` as ``<part>.nc`` (``parts`` chooses which), with the card's name, torch and CUDA versions
    and the date in their attributes. Returns the paths written."""
    import datetime

    import torch

    from kit import __version__, io
    from kit.memory.host_link import HostLink, measure_link
    from kit.memory.offloading import compare
    from kit.memory.tradeoff import benchmark

    unknown = set(parts) - set(PARTS)
    if unknown:
        raise ValueError(f"unknown parts {sorted(unknown)}; choose from {list(PARTS)}")
    directory = Path(directory)
    chains = tuple(batch) if isinstance(batch, dict) else ("mlp", "conv", "transformer", "resnet18")
    provenance = {
        "recorded": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "torch": str(torch.__version__),  # a str subclass netCDF cannot store
        "cuda": str(torch.version.cuda),
        "kit": __version__,
    }
    measured: dict = {}

    def host_link():
        if "link" not in measured:
            measured["link"] = measure_link(device)
        return measured["link"]

    def offload():
        over = link or HostLink.from_dataset(host_link())
        deep = tuple(name for name in chains if name != "mlp")  # an MLP's stages save nothing beyond outputs
        return compare(deep, over, batch=batch, device=device, execute=True, repeats=repeats, seed=seed)

    runs = {
        "profiler-accuracy": lambda: profiler_accuracy(chains, device=device, batch=batch, repeats=repeats, seed=seed),
        "tradeoff": lambda: benchmark(chains, batch=batch, device=device, repeats=repeats, seed=seed, progress=False),
        "host-link": host_link,
        "offload": offload,
    }
    settings = {"device": str(device), "batch": str(batch), "repeats": repeats}
    return [
        io.save_dataset(runs[name]().assign_attrs(provenance), directory / f"{name}.nc", parameters=settings, seed=seed)
        for name in parts
    ]


def load_recorded(directory) -> xr.Dataset:
    """A run :func:`record` wrote to ``directory``, as one Dataset: the profiler comparison, the trade-off's
    variables (dims ``chain, strategy, fraction``) and the host link's, with the recording's attributes."""
    from kit import io

    directory = Path(directory)
    parts = {}
    for name in ("profiler-accuracy", "tradeoff", "host-link"):
        path = directory / f"{name}.nc"
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing: record a run with kit.memory.accuracy.record(folder)")
        parts[name] = io.load_dataset(path)
    return xr.merge(list(parts.values()), combine_attrs="drop_conflicts").assign_attrs(
        {key: parts["tradeoff"].attrs[key] for key in ("device", "recorded", "torch", "cuda", "batch")}
    )
