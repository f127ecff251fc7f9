"""Run a partition (:mod:`kit.memory.partition`) for real: each device's stages on a torch device, the
activations (and, in training, their gradients) handed from one to the next, measured per device.

Inference runs one batch through the segments without grad; training runs the forward with grad and then the
backward segment by segment in reverse, one batch in flight (no pipelining), so the gradients equal eager
execution. Each device receives a copy of the activation (and gradient) it is handed. Per device: the time of
its segment and the memory its work allocated, beside what the partition predicts (``Partition.activations``
and, in training, the bound ``Partition.peaks``). The model's stages are moved to their devices in place.
"""

from __future__ import annotations

import numpy as np
import torch
import xarray as xr

from kit.memory.chain import stages
from kit.memory.execute import mean_square
from kit.memory.measure_memory import AllocatorTrace
from kit.memory.measure_memory import now as _now
from kit.memory.profiling import check_device


def run_partition(model: torch.nn.Module, split, inputs: torch.Tensor, places=None, *, loss=mean_square) -> xr.Dataset:
    """Run ``model`` (any model :func:`~kit.memory.stages` cuts) split as ``split`` (a ``Partition``) on
    ``inputs``; ``places`` maps each device name to a torch device (default: all on the CPU). Returns a
    Dataset with dim ``device``: ``measured_time`` and ``predicted_time`` (from the profile and the device's
    speed), ``measured_memory`` and ``predicted_memory`` (what one micro-batch holds: in training after its
    forward), ``measured_peak`` and ``predicted_peak`` (in training, forward and backward), the stages'
    ``start`` and ``stop``; the loss (training) and whether the partition fits its devices in ``attrs``."""
    names, places = [device.name for device in split.devices], places or {}
    unknown = set(places) - set(names)
    if unknown:
        raise ValueError(f"places names devices {sorted(unknown)} that the partition does not have: {names}")
    places = {name: check_device(places.get(name, "cpu")) for name in names}
    chain = stages(model)
    if split.bounds[-1][1] != len(chain):
        raise ValueError(f"the partition covers {split.bounds[-1][1]} stages, the model has {len(chain)}")
    bounds = zip(names, split.bounds, strict=True)
    segments = [(name, places[name], torch.nn.Sequential(*chain[a:b])) for name, (a, b) in bounds]
    for _, device, part in segments:
        part.to(device)
    train = split.mode == "training"
    rows = _train(segments, inputs, loss) if train else _infer(segments, inputs)
    data = xr.Dataset(
        {
            "measured_time": ("device", [row["time"] for row in rows]),
            "measured_memory": ("device", [row["memory"] for row in rows]),
            "predicted_time": ("device", list(split.times)),
            "predicted_memory": ("device", list(split.activations)),
            "measured_peak": ("device", [row["peak"] for row in rows]),
            "predicted_peak": ("device", list(split.peaks)),
            "start": ("device", [a for a, _ in split.bounds]),
            "stop": ("device", [b for _, b in split.bounds]),
        },
        coords={"device": names, "place": ("device", [str(places[name]) for name in names])},
    )
    data.attrs.update(mode=split.mode, fits=int(split.fits), loss=float(rows[-1].get("loss", np.nan)))
    return data


def _infer(segments, inputs):
    rows, activation = [], inputs
    with torch.no_grad():
        for _, device, part in segments:
            activation = activation.to(device)
            held = int(activation.untyped_storage().nbytes())
            start = _now(device)
            with AllocatorTrace(device) as trace:
                for stage in part:
                    activation = stage(activation)
            used = held + trace.peak if len(part) else 0
            rows.append({"time": _now(device) - start, "memory": used, "peak": used})
    return rows


def _train(segments, inputs, loss):
    rows, graphs, activation = [], [], inputs
    for k, (_, device, part) in enumerate(segments):
        start = _now(device)
        with AllocatorTrace(device) as trace:
            source = activation.detach().to(device, copy=k > 0)  # handed over: the next device's own copy
            if k > 0 and source.is_floating_point():
                source.requires_grad_(True)
            output = part(source) if len(part) else source
        used = trace.net if len(part) else 0
        rows.append({"time": _now(device) - start, "memory": used, "peak": trace.peak if len(part) else 0})
        graphs.append((source, output))
        activation = output
    gradient, value = None, None
    for k in range(len(segments) - 1, -1, -1):
        device = segments[k][1]
        source, output = graphs.pop()
        start = _now(device)
        with AllocatorTrace(device) as trace:
            if k == len(segments) - 1:
                value = loss(output)
                value.backward()
            elif output.requires_grad:
                torch.autograd.backward(output, gradient.to(device, copy=True))
        rows[k]["time"] += _now(device) - start
        if len(segments[k][2]):
            rows[k]["peak"] = max(rows[k]["peak"], rows[k]["memory"] + trace.peak)
        gradient = source.grad
        del source, output
    rows[-1]["loss"] = float(value.detach())
    return rows
