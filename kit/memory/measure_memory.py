"""Allocator-level memory of a block of torch work, on CPU and CUDA through one interface.

CPU: the torch profiler's allocator events (``profile_memory=True``); their signed byte counts, summed in
time order, give the bytes allocated since the block began and their peak. CUDA: the caching allocator's
counters (``memory_allocated``, ``max_memory_allocated`` after a reset). Never process RSS (off by up to
3.6x on CPU) or tracemalloc (blind to tensors): see ../shared/anchors.md.
"""

from __future__ import annotations

import os
import time

import torch

# Kineto, the CPU profiler's backend, prints "USDT: ... profiler_start/stop" to stderr around every trace at
# a level above its errors (5 of 0-5): only 6 silences it. Read when the first trace starts; a user's own
# KINETO_LOG_LEVEL wins.
os.environ.setdefault("KINETO_LOG_LEVEL", "6")


def now(device: torch.device) -> float:
    """Seconds on a wall clock, after the device finished its queued work (CUDA is asynchronous)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


class AllocatorTrace:
    """``with AllocatorTrace(device) as trace: ...`` then ``trace.peak`` and ``trace.net``: the largest and
    the final number of bytes allocated by the block beyond what was allocated when it began."""

    def __init__(self, device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.peak = self.net = 0

    def __enter__(self) -> AllocatorTrace:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
        else:
            from torch.profiler import ProfilerActivity, profile

            self._profiler = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
            self._profiler.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device) - self._base
            self.net = torch.cuda.memory_allocated(self.device) - self._base
            return
        self._profiler.__exit__(*exc)
        if exc[0] is not None:
            return
        events = [e for e in self._profiler.profiler.kineto_results.events() if e.name() == "[memory]"]
        running = peak = 0
        for event in sorted(events, key=lambda e: e.start_ns()):
            running += event.nbytes()
            peak = max(peak, running)
        self.peak, self.net = peak, running
