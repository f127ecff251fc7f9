"""Run a partition (:mod:`kit.memory.partition`) for real: each device's stages on a torch device, the
activations (and, in training, their gradients) handed from one to the next, measured per device.

Inference runs one batch through the segments without grad; training runs the forward with grad and then the
backward segment by segment in reverse, one batch in flight (no pipelining), so the gradients equal eager
execution. Per device: the time of its segment and its memory beyond its parameters, beside what the
partition predicts (inference: its parameters plus the largest stage input + output + transient; training:
the graphs of one micro-batch, its ``xbar``).
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
    """Run ``model`` (an ``nn.Sequential``) split as ``split`` (a ``Partition``) on ``inputs``; ``places`` maps
    each device name to a torch device (default: all on the CPU). Returns a Dataset with dim ``device``:
    ``measured_time``, ``measured_memory`` and ``predicted_memory`` (bytes beyond the parameters; in
    training one micro-batch's graphs), ``predicted_time`` (from the profile and the device's speed), the
    stages' ``start`` and ``stop``; in training the loss in ``attrs``."""
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
            "start": ("device", [a for a, _ in split.bounds]),
            "stop": ("device", [b for _, b in split.bounds]),
        },
        coords={"device": names, "place": ("device", [str(places[name]) for name in names])},
    )
    data.attrs.update(mode=split.mode, loss=float(rows[-1].get("loss", np.nan)) if train else np.nan)
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
            rows.append({"time": _now(device) - start, "memory": held + trace.peak if len(part) else 0})
    return rows


def _train(segments, inputs, loss):
    rows, graphs, activation = [], [], inputs
    for k, (_, device, part) in enumerate(segments):
        source = activation.detach().to(device)
        if k > 0 and source.is_floating_point():
            source.requires_grad_(True)
        start = _now(device)
        with AllocatorTrace(device) as trace:
            output = part(source) if len(part) else source
        rows.append({"time": _now(device) - start, "memory": trace.net if len(part) else 0})
        graphs.append((source, output))
        activation = output
    gradient, value = None, None
    for k in range(len(segments) - 1, -1, -1):
        device = segments[k][1]
        source, output = graphs.pop()
        start = _now(device)
        if k == len(segments) - 1:
            value = loss(output)
            value.backward()
        elif output.requires_grad:
            torch.autograd.backward(output, gradient.to(device))
        rows[k]["time"] += _now(device) - start
        gradient = source.grad
    rows[-1]["loss"] = float(value.detach())
    return rows
