"""What the kit sets up in every dask worker it uses: glibc's usual malloc thresholds.

A dask nanny starts its workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which also turns glibc's dynamic mmap
threshold off: every array over 128 KiB is then mapped and unmapped, its pages faulted in again, each time
it is made. Measured on this project's machine: a Gray-Scott 128x128 step took 49-83 ms of CPU instead of
20-21, a conv surrogate's training step 80-85 ms instead of 45-48 (fields under 128 KiB, as the heat
figures', are not affected).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

from distributed.diagnostics.plugin import WorkerPlugin

#: glibc's ``mallopt`` parameters and the values its dynamic thresholds settle at on 64-bit Linux.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
USUAL = {M_MMAP_THRESHOLD: 32 << 20, M_TRIM_THRESHOLD: 64 << 20}


@functools.cache
def usual_malloc() -> bool:
    """Set this process's malloc thresholds to glibc's usual ones (once: a plugin registered again finds them
    set); False where there is no glibc ``mallopt``."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        return all(libc.mallopt(parameter, value) == 1 for parameter, value in USUAL.items())
    except (OSError, AttributeError, TypeError):
        return False


class UsualMalloc(WorkerPlugin):
    """Sets each worker's malloc thresholds back to glibc's usual ones when it starts (or joins later)."""

    name = "kit-usual-malloc"

    def setup(self, worker) -> None:
        usual_malloc()
