"""The link between a device and host memory: bandwidth each way and how far copies overlap compute.

Offloading activations to host memory costs what the link cannot hide behind computation. :class:`HostLink`
holds the offloading model's parameters; :func:`measure_link` measures them on pinned host buffers and a side
CUDA stream: the device-to-host and host-to-device bandwidths and the overlap ratio of a device-to-host copy
with as much computation (time of both alone over time of both at once: 2 when the copy is fully hidden, 1
when serialised); host-to-device copies are assumed to overlap alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import xarray as xr


@dataclass(frozen=True)
class HostLink:
    """Bandwidths (bytes/s) to and from host memory and ``overlap``: a copy of ``c`` seconds beside an
    operation of ``t`` seconds adds ``max(0, c - overlap * t)`` (1: the copy runs free while the operation
    runs, 0: it adds its whole time)."""

    d2h_bandwidth: float
    h2d_bandwidth: float
    overlap: float = 1.0

    def __post_init__(self):
        for name in ("d2h_bandwidth", "h2d_bandwidth"):
            if not getattr(self, name) > 0:
                raise ValueError(f"HostLink {name} must be > 0 bytes/s, got {getattr(self, name)!r}")
        if not 0 <= self.overlap <= 1:
            raise ValueError(f"HostLink overlap must be in [0, 1], got {self.overlap!r}")

    @classmethod
    def from_dataset(cls, data: xr.Dataset) -> HostLink:
        """The link :func:`measure_link` measured. Its copy and computation take about the same time ``c``,
        so an overlap ratio ``r = 2c / together`` means ``together = c + (c - overlap * c)``: overlap
        ``2 - 2 / r``."""
        ratio = float(data["overlap_ratio"])
        return cls(float(data["d2h_bandwidth"]), float(data["h2d_bandwidth"]), min(max(2 - 2 / ratio, 0.0), 1.0))


def measure_link(device="cuda", *, nbytes: int = 256 * 2**20, repeats: int = 5) -> xr.Dataset:
    """Bandwidths (bytes/s, median of ``repeats`` copies of ``nbytes``) and overlap of ``device``'s host link."""
    import torch

    from kit.memory.profiling import check_device

    device = check_device(device)
    if device.type != "cuda":
        raise ValueError(f"device must be a CUDA device to measure a host link, got {str(device)!r}")
    host = torch.empty(nbytes, dtype=torch.uint8, pin_memory=True)
    on_device = torch.empty(nbytes, dtype=torch.uint8, device=device)
    side = torch.cuda.Stream(device)
    size = 4096
    a = torch.ones(size, size, device=device)  # what is multiplied does not change the time

    def timed(work) -> float:
        times = []
        for _ in range(repeats + 1):  # the first is a warm-up
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize(device)
            start.record()
            work()
            torch.cuda.synchronize(device)
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        return sorted(times[1:])[len(times[1:]) // 2]

    def copy_out():
        with torch.cuda.stream(side):
            host.copy_(on_device, non_blocking=True)
        torch.cuda.current_stream(device).wait_stream(side)

    def copy_in():
        with torch.cuda.stream(side):
            on_device.copy_(host, non_blocking=True)
        torch.cuda.current_stream(device).wait_stream(side)

    d2h, h2d = timed(copy_out), timed(copy_in)
    steps = max(1, round(d2h / timed(lambda: a @ a)))  # as much compute as one copy takes

    def compute():
        for _ in range(steps):
            a @ a

    def both():
        with torch.cuda.stream(side):
            host.copy_(on_device, non_blocking=True)
        compute()
        torch.cuda.current_stream(device).wait_stream(side)

    alone, together = timed(compute), timed(both)
    data = xr.Dataset(
        {
            "d2h_bandwidth": ((), nbytes / d2h, {"units": "bytes/s"}),
            "h2d_bandwidth": ((), nbytes / h2d, {"units": "bytes/s"}),
            "overlap_ratio": ((), (alone + d2h) / together, {"units": "1"}),
        }
    )
    return data.assign_attrs(device=torch.cuda.get_device_name(device), nbytes=nbytes, repeats=repeats)
