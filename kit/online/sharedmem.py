"""The data plane's same-host path: a simulation on the study's host writes its fields straight into shared
memory, and only the message's header goes over the socket.

Each sending connection owns a :class:`Ring`: ``slots`` slots of one message's fields in a file of
``/dev/shm`` (``kit-<epoch>-<random>``), and a socket (``ipc://`` next to it) on which the study gives
slots back once it stored their steps. A sender takes a free slot for each message and waits while none is
(backpressure: at most ``slots`` messages a connection are pending). The study maps a ring at its first
message (:class:`Segments`) and removes its name at once, so that nothing is left behind once both ends
closed it; leftovers of an epoch (a sender killed before its first message) are removed by :func:`clean`.

A sender uses its host's shared memory only where it sees the study's marker (:func:`mark`), a file named
after the study's epoch: the same host, the same ``/dev/shm``. Elsewhere, messages carry their fields.
"""

from __future__ import annotations

import contextlib
import glob
import mmap
import os
import re
import secrets
import struct

import numpy as np
import zmq

#: Where rings and markers live (Linux's shared-memory file system); without it, there is no same-host path.
DIRECTORY = "/dev/shm"
_SLOT = struct.Struct("<I")


def prefix(epoch: int) -> str:
    """The name every file of a study epoch starts with."""
    return f"kit-{epoch:016x}"


def mark(epoch: int) -> str:
    """Create the marker of a study epoch (its senders on this host use shared memory); its path, or "" where
    the host has no shared-memory file system."""
    path = os.path.join(DIRECTORY, prefix(epoch))
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except OSError:
        return ""
    return path


def clean(epoch: int) -> None:
    """Remove the marker and whatever files of a study epoch are left (its senders' rings and sockets)."""
    for path in glob.glob(os.path.join(DIRECTORY, prefix(epoch) + "*")):
        with contextlib.suppress(OSError):
            os.unlink(path)


class Ring:
    """A sender's ``slots`` slots of ``slot_bytes`` in a shared-memory file named after the study's epoch,
    and the socket on which the study gives them back."""

    def __init__(self, epoch: int, slot_bytes: int, slots: int):
        self.name = f"{prefix(epoch)}-{secrets.token_hex(8)}"
        self.path, self.slot_bytes = os.path.join(DIRECTORY, self.name), slot_bytes
        fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        try:
            os.ftruncate(fd, slot_bytes * slots)
            self.memory = mmap.mmap(fd, slot_bytes * slots)
        finally:
            os.close(fd)
        self.base = np.frombuffer(self.memory, np.uint8).ctypes.data
        self.returns = zmq.Context.instance().socket(zmq.PULL)
        self.returns.bind(f"ipc://{self.path}.free")
        self.free = list(range(slots))

    def take(self, timeout: float) -> int | None:
        """A free slot, waiting up to ``timeout`` seconds for the study to give one back; None if none came."""
        if not self.free and self.returns.poll(int(timeout * 1000)):
            self.spare()
        return self.free.pop() if self.free else None

    def spare(self) -> bool:
        """Whether a slot is free now (taking in those the study gave back)."""
        while self.returns.poll(0):
            self.free.append(_SLOT.unpack(self.returns.recv())[0])
        return bool(self.free)

    def view(self, slot: int, shape, dtype=np.float32) -> np.ndarray:
        """The array of ``shape`` at the start of ``slot``."""
        return np.ndarray(shape, dtype, buffer=self.memory, offset=slot * self.slot_bytes)

    def slot_of(self, array: np.ndarray) -> int | None:
        """The slot ``array`` starts at, or None when it is not at the start of one."""
        slot, rest = divmod(array.ctypes.data - self.base, self.slot_bytes)
        return int(slot) if rest == 0 and 0 <= slot < len(self.memory) // self.slot_bytes else None

    def close(self) -> None:
        """Close the socket and the mapping, and remove the files (the study may hold its own mapping)."""
        self.returns.close(linger=0)
        for path in (self.path, f"{self.path}.free"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        with contextlib.suppress(BufferError):  # arrays still viewing it (a failed task's traceback): left to them
            self.memory.close()


class Segments:
    """The study's side: the rings of its epoch's senders, mapped at their first message, and the sockets that
    give their slots back."""

    def __init__(self, epoch: int, context: zmq.Context):
        self.epoch, self.context = epoch, context
        self.pattern = re.compile(re.escape(prefix(epoch)) + r"-[0-9a-f]{16}")
        self.rings: dict[str, tuple[mmap.mmap, zmq.Socket]] = {}

    def view(self, name: str, offset: int, nbytes: int) -> memoryview:
        """``nbytes`` at ``offset`` in ring ``name`` (a :class:`ValueError` when it is not one of this epoch's)."""
        if name not in self.rings:
            if not self.pattern.fullmatch(name):
                raise ValueError(f"{name!r} is not a ring of this study epoch")
            path = os.path.join(DIRECTORY, name)
            fd = os.open(path, os.O_RDWR)
            try:
                memory = mmap.mmap(fd, os.fstat(fd).st_size)
            finally:
                os.close(fd)
            os.unlink(path)  # both ends have it mapped: the name is no longer needed
            returns = self.context.socket(zmq.PUSH)
            returns.setsockopt(zmq.LINGER, 0)
            returns.connect(f"ipc://{path}.free")
            self.rings[name] = memory, returns
        memory = self.rings[name][0]
        if offset + nbytes > len(memory):
            raise ValueError(f"{nbytes} bytes at {offset} overrun ring {name!r} of {len(memory)}")
        return memoryview(memory)[offset : offset + nbytes]

    def give_back(self, name: str, slot: int) -> None:
        """Tell the ring's sender that ``slot`` is free (dropped if its sender is gone)."""
        with contextlib.suppress(zmq.Again):
            self.rings[name][1].send(_SLOT.pack(slot), zmq.NOBLOCK)

    def close(self) -> None:
        for memory, returns in self.rings.values():
            returns.close()
            with contextlib.suppress(BufferError):
                memory.close()
        self.rings.clear()
