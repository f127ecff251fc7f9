"""Partition a chain over devices of unequal speed and memory: consecutive stages per device, in order.

Each device gets one run of consecutive stages (possibly none). With per-stage times measured on a
reference device and a device ``speed`` relative to it, a segment costs ``sum(uf + ub) / speed`` in
training (``sum(uf) / speed`` in inference), plus the transfer of the activation it sends on (and, in
training, of the gradient it sends back) over ``bandwidth``. Memory on a device: its stages' parameters
(times ``state_factor`` in training: gradients and optimizer state) plus activations: in training the
graphs (``xbar``) of the micro-batches in flight under a one-forward-one-backward pipeline (device ``k`` of
``K`` holds ``K - k``), in inference the largest input + output + transient of one stage.

:func:`partition` minimises the pipeline period (training) or the latency (inference) by dynamic
programming under every device's memory; :func:`greedy` fills devices in order by parameter size, as
``accelerate``'s ``infer_auto_device_map`` does, ignoring activations and speeds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

MODES = ("training", "inference")


@dataclass(frozen=True)
class Device:
    """A device: ``speed`` relative to the device the profile was measured on, ``memory`` in bytes."""

    name: str
    speed: float
    memory: int

    def __post_init__(self):
        if not self.speed > 0:
            raise ValueError(f"device {self.name!r}: speed must be > 0, got {self.speed!r}")
        if not self.memory > 0:
            raise ValueError(f"device {self.name!r}: memory must be > 0 bytes, got {self.memory!r}")


@dataclass(frozen=True)
class Partition:
    """Stages ``[start, stop)`` per device (empty where ``start == stop``), with the objective's terms:
    per device its time, its memory and, within it, what one micro-batch holds (``activations``: in
    training its graphs and the activation received, in inference the largest stage input + output +
    transient) and a bound on its peak (``peaks``: in training with the gradients and transients of the
    backward)."""

    devices: tuple[Device, ...]
    bounds: tuple[tuple[int, int], ...]
    times: tuple[float, ...]
    memory: tuple[int, ...]
    mode: str
    activations: tuple[int, ...] = ()
    peaks: tuple[int, ...] = ()

    @property
    def period(self) -> float:
        """The slowest device's time per micro-batch: the pipeline's period."""
        return max(self.times)

    @property
    def latency(self) -> float:
        """The time of one batch through every device in turn."""
        return float(sum(self.times))

    @property
    def fits(self) -> bool:
        return all(used <= device.memory for used, device in zip(self.memory, self.devices, strict=True))


class _Model:
    """Segment costs of a profiled chain on a list of devices."""

    def __init__(self, profile, devices, mode, bandwidth, state_factor, micro_batches):
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; choose one of {list(MODES)}")
        if not devices:
            raise ValueError("devices must list at least one kit.memory.partition.Device")
        self.devices, self.mode = tuple(devices), mode
        self.bandwidth, self.state_factor = float(bandwidth), float(state_factor)
        self.micro_batches = micro_batches
        get = {key: np.asarray(profile[key].values, dtype=float) for key in ("uf", "ub", "x", "xbar")}
        self.uf, self.ub, self.x, self.xbar = get["uf"], get["ub"], get["x"], get["xbar"]
        # An output that neither its stage nor the next one saves is freed inside a segment run as one graph
        # (profiles made before saves_output was measured count every output).
        saved = [
            profile[key].values if key in profile else np.ones(len(self.x)) for key in ("saves_output", "saves_input")
        ]
        self.output_freed = np.append((saved[0][:-1] == 0) & (saved[1][1:] == 0), False)
        # Inference runs without grad: its transients (fwd_tmp for profiles made before fn_tmp was measured).
        self.fn_tmp = np.asarray(profile["fn_tmp" if "fn_tmp" in profile else "fwd_tmp"].values, dtype=float)
        self.fwd_tmp = np.asarray(profile["fwd_tmp"].values, dtype=float)
        self.bwd_tmp = np.asarray(profile["bwd_tmp"].values, dtype=float)
        self.params = np.asarray(profile["grad_bytes"].values, dtype=float)
        self.input_bytes = float(profile.attrs.get("input_bytes", 0))
        self.length = len(self.uf)

    def time(self, k: int, start: int, stop: int) -> float:
        if start == stop:
            return 0.0
        compute = self.uf[start:stop].sum() + (self.ub[start:stop].sum() if self.mode == "training" else 0.0)
        sent = self.x[stop - 1] if stop < self.length else 0.0  # the activation passed to the next device
        transfer = sent * (2 if self.mode == "training" else 1) / self.bandwidth
        return float(compute / self.devices[k].speed + transfer)

    def memory(self, k: int, start: int, stop: int) -> float:
        if start == stop:
            return 0.0
        weights = self.params[start:stop].sum()
        if self.mode == "training":
            in_flight = self.micro_batches or len(self.devices) - k
            # One micro-batch at its peak, the others holding their graphs.
            return float(
                weights * self.state_factor + (in_flight - 1) * self.activations(start, stop) + self.peak(start, stop)
            )
        return float(weights + self.activations(start, stop))

    def peak(self, start: int, stop: int) -> float:
        """A bound on one micro-batch's peak in training: its graphs and received activation, plus the forward's
        largest transient or, in the backward, the gradient received, the segment's parameter gradients and
        the largest output gradient + input gradient + transient of a stage."""
        if start == stop or self.mode != "training":
            return self.activations(start, stop)
        received = self.x[stop - 1] if stop < self.length else 0.0
        grad_in = np.concatenate([[0.0], self.x])[start:stop]  # the chain's input needs no gradient
        # A stage's backward holds the gradient of its output and makes the one of its input.
        stage = self.x[start:stop] + grad_in + self.bwd_tmp[start:stop]
        backward = received + self.params[start:stop].sum() + stage.max()
        return float(self.activations(start, stop) + max(self.fwd_tmp[start:stop].max(), backward))

    def activations(self, start: int, stop: int) -> float:
        """One micro-batch's graphs run as one graph per device (training) or the largest stage input + output +
        transient (inference)."""
        if start == stop:
            return 0.0
        if self.mode == "training":
            inside = np.arange(start, stop - 1)  # the segment's last output is passed on, so kept
            received = self.x[start - 1] if start > 0 else 0.0  # a copy of the previous device's output
            return float(received + self.xbar[start:stop].sum() - self.x[inside][self.output_freed[inside]].sum())
        inputs = np.concatenate([[self.input_bytes], self.x])[start:stop]
        if start == 0:
            inputs[1:] += self.input_bytes  # the chain's input batch is held by its caller throughout
        return float((inputs + self.x[start:stop] + self.fn_tmp[start:stop]).max())

    def result(self, bounds) -> Partition:
        times = tuple(self.time(k, a, b) for k, (a, b) in enumerate(bounds))
        memory = tuple(int(self.memory(k, a, b)) for k, (a, b) in enumerate(bounds))
        activations = tuple(int(self.activations(a, b)) for a, b in bounds)
        peaks = tuple(int(self.peak(a, b)) for a, b in bounds)
        return Partition(self.devices, tuple(bounds), times, memory, self.mode, activations, peaks)


def partition(
    profile,
    devices,
    *,
    mode: str = "training",
    bandwidth: float = 16e9,
    state_factor: float = 4.0,
    micro_batches: int | None = None,
) -> Partition:
    """The best partition of the chain ``profile`` describes (``kit.memory.profile``) over ``devices`` in
    order: least period in training, least latency in inference, every device within its memory.

    ``bandwidth`` (bytes/s) prices activations crossing devices; ``state_factor`` multiplies parameter bytes
    in training (weights, gradients and two Adam moments: 4); ``micro_batches`` overrides the micro-batches
    in flight per device. No partition fitting is an error stating the memory the best one needs.
    """
    model = _Model(profile, devices, mode, bandwidth, state_factor, micro_batches)
    n, devices_count = model.length, len(model.devices)
    combine = max if mode == "training" else (lambda a, b: a + b)
    # best[k][j]: objective of stages [0, j) on devices 0..k-1; back[k][j]: where device k-1's stages start.
    best = np.full((devices_count + 1, n + 1), np.inf)
    back = np.zeros((devices_count + 1, n + 1), dtype=int)
    best[0][0] = 0.0
    for k in range(1, devices_count + 1):
        for j in range(n + 1):
            for i in range(j + 1):
                if not np.isfinite(best[k - 1][i]) or model.memory(k - 1, i, j) > model.devices[k - 1].memory:
                    continue
                value = combine(best[k - 1][i], model.time(k - 1, i, j))
                if value < best[k][j]:
                    best[k][j], back[k][j] = value, i
    if not np.isfinite(best[devices_count][n]):
        loose = [Device(d.name, d.speed, 2**62) for d in model.devices]
        ideal = partition(profile, loose, mode=mode, bandwidth=bandwidth, state_factor=state_factor,
                          micro_batches=micro_batches)  # fmt: skip
        needs = {d.name: used for d, used in zip(model.devices, ideal.memory, strict=True)}
        raise ValueError(
            f"no partition fits the devices' memory ({ {d.name: d.memory for d in model.devices} } bytes); "
            f"the best partition without limits needs {needs} bytes"
        )
    bounds, stop = [], n
    for k in range(devices_count, 0, -1):
        start = int(back[k][stop])
        bounds.append((start, stop))
        stop = start
    return model.result(bounds[::-1])


def greedy(
    profile,
    devices,
    *,
    mode: str = "training",
    bandwidth: float = 16e9,
    state_factor: float = 4.0,
    micro_batches: int | None = None,
) -> Partition:
    """Fill the devices in order with stages while their parameters fit (as ``infer_auto_device_map``):
    activations and speeds are ignored, so the result may not fit (``fits``) and may be slow."""
    model = _Model(profile, devices, mode, bandwidth, state_factor, micro_batches)
    bounds, start, k = [], 0, 0
    used = 0.0
    for stage in range(model.length):
        size = model.params[stage]
        while k < len(model.devices) - 1 and used + size > model.devices[k].memory:
            bounds.append((start, stage))
            start, used, k = stage, 0.0, k + 1
        used += size
    bounds.append((start, model.length))
    bounds += [(model.length, model.length)] * (len(model.devices) - len(bounds))
    return model.result(bounds)


def versus_greedy(
    profile,
    fractions,
    *,
    fast_speed: float = 10.0,
    slow_memory: int = 2**40,
    mode: str = "training",
    bandwidth: float = 16e9,
) -> xr.Dataset:
    """The partition and the greedy fill of a two-device machine, side by side (dim ``fraction``): a fast
    device first, with ``fractions`` of the memory the whole chain needs on it, then a host of ``slow_memory``:
    the objective (period in training, latency in inference; NaN where the placement overflows a device),
    whether the greedy fill fits, the stages and bytes on the fast device."""
    rows = {key: [] for key in ("objective_partition", "objective_greedy", "greedy_fits", "fast_stages_partition",
                                "fast_stages_greedy", "fast_used_partition", "fast_used_greedy")}  # fmt: skip
    unlimited = [Device("fast", fast_speed, 2**62), Device("slow", 1.0, 2**62)]
    whole = _Model(profile, unlimited, mode, bandwidth, 4.0, None).memory(0, 0, len(profile.uf))
    fast_memory = [int(f * whole) for f in fractions]
    for size in fast_memory:
        devices = [Device("fast", fast_speed, int(size)), Device("slow", 1.0, int(slow_memory))]
        try:
            best = partition(profile, devices, mode=mode, bandwidth=bandwidth)
        except ValueError:
            best = None
        fill = greedy(profile, devices, mode=mode, bandwidth=bandwidth)
        objective = (lambda p: p.period) if mode == "training" else (lambda p: p.latency)
        rows["objective_partition"].append(objective(best) if best else np.nan)
        rows["objective_greedy"].append(objective(fill) if fill.fits else np.nan)  # an overflow cannot run
        rows["greedy_fits"].append(int(fill.fits))
        rows["fast_stages_partition"].append(best.bounds[0][1] - best.bounds[0][0] if best else -1)
        rows["fast_stages_greedy"].append(fill.bounds[0][1] - fill.bounds[0][0])
        rows["fast_used_partition"].append(best.memory[0] if best else -1)
        rows["fast_used_greedy"].append(fill.memory[0])
    data = xr.Dataset(
        {k: ("fraction", v) for k, v in rows.items()},
        coords={"fraction": np.asarray(fractions, float), "fast_memory": ("fraction", fast_memory)},
    )
    data["objective_ratio"] = data.objective_partition / data.objective_greedy
    data["objective_partition"].attrs["units"] = data["objective_greedy"].attrs["units"] = "s"
    data["fast_memory"].attrs["units"] = "bytes"
    data.attrs.update(
        mode=mode, fast_speed=fast_speed, bandwidth=bandwidth, slow_memory=int(slow_memory), whole=int(whole)
    )
    return data
