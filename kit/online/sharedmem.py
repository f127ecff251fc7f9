"""The data plane's same-host path: a simulation on the study's host writes its fields straight into shared
memory, and only the message's header goes over the socket.

Each sending connection owns a :class:`Ring`: ``slots`` slots of one message's fields in a file of
``/dev/shm`` (``kit-<epoch>-<random>``), and a socket (``ipc://`` next to it) on which the study gives
slots back once it stored their steps. A sender takes a free slot for each message and waits while none is
(backpressure: at most ``slots`` messages a connection are pending). The study maps a ring at its first
message (:class:`Segments`) and removes its name at once, so that nothing is left behind once both ends
closed it; leftovers of an epoch (a sender killed before its first message) are removed by :func:`clean`
when the study ends, and those of a killed study by the next one started on the host (:func:`clean_orphans`).

A sender uses its host's shared memory only where it sees the study's marker (:func:`mark`), a file named
after the study's epoch and owned by its own user: the same host, the same ``/dev/shm``, and rings the study
can open. Elsewhere, or when a ring cannot be made (``/dev/shm`` full), messages carry their fields.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import mmap
import os
import re
import secrets
import stat
import struct

import numpy as np
import zmq

#: Where rings and markers live (Linux's shared-memory file system); without it, there is no same-host path.
DIRECTORY = "/dev/shm"
_SLOT = struct.Struct("<I")
#: The name of any epoch's ring (a stale message's slot is given back to its sender by it).
_RING = re.compile(r"kit-[0-9a-f]{16}-[0-9a-f]{16}")

log = logging.getLogger(__name__)


def prefix(epoch: int) -> str:
    """The name every file of a study epoch starts with."""
    return f"kit-{epoch:016x}"


def mark(epoch: int) -> str:
    """Create the marker of a study epoch (its senders on this host use shared memory), saying which process
    made it; its path, or "" where the host has no shared-memory file system. The files of epochs whose
    study process is gone (killed: a kernel restarted mid-study) are removed first."""
    clean_orphans()
    path = os.path.join(DIRECTORY, prefix(epoch))
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except OSError as exc:
        log.debug("no shared memory for study epoch %x: %s", epoch, exc)
        return ""
    with os.fdopen(fd, "w") as marker:
        marker.write(_process(os.getpid()) or "")
    return path


def clean_orphans() -> None:
    """Remove the files of this user's study epochs whose marker names a process of this PID namespace that
    no longer runs."""
    for path in glob.glob(os.path.join(DIRECTORY, "kit-" + "[0-9a-f]" * 16)):
        try:
            if os.stat(path).st_uid != os.geteuid():
                continue
            with open(path) as marker:
                namespace, pid, started = marker.read().split()
        except (OSError, ValueError):  # gone meanwhile, or not a marker this kit wrote
            continue
        if namespace == _namespace() and _process(int(pid)) != f"{namespace} {pid} {started}":
            clean(int(os.path.basename(path)[4:], 16))


def _namespace() -> str:
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        return "?"


def _process(pid: int) -> str | None:
    """``"<PID namespace> <pid> <start time>"`` of a running process (the start time tells a reused pid
    apart), or None when it does not run."""
    try:
        with open(f"/proc/{pid}/stat") as stat_file:
            started = stat_file.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None
    return f"{_namespace()} {pid} {started}"


def shared_with(marker: str) -> bool:
    """Whether a sender here shares memory with the study that made ``marker``: it sees the file, and it is
    its own user's (another user's study could not open its rings)."""
    try:
        return bool(marker) and os.stat(marker).st_uid == os.geteuid()
    except OSError:
        return False


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
        self.memory = self.returns = None
        fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        try:
            os.posix_fallocate(fd, 0, slot_bytes * slots)  # the pages now: a full /dev/shm fails here, not later
            self.memory = mmap.mmap(fd, slot_bytes * slots)
            self.base = np.frombuffer(self.memory, np.uint8).ctypes.data
            self.returns = zmq.Context.instance().socket(zmq.PULL)
            self.returns.bind(f"ipc://{self.path}.free")
        except (OSError, zmq.ZMQError):
            self.close()
            raise
        finally:
            os.close(fd)
        self.slots, self.free = slots, list(range(slots))

    def take(self, timeout: float) -> int | None:
        """A free slot, waiting up to ``timeout`` seconds for the study to give one back; None if none came."""
        if not self.free and self.returns.poll(int(timeout * 1000)):
            self.spare()
        return self.free.pop() if self.free else None

    def spare(self) -> bool:
        """Whether a slot is free now (taking in those the study gave back; anything else is ignored)."""
        while self.returns.poll(0):
            message = self.returns.recv()
            slot = _SLOT.unpack(message)[0] if len(message) == _SLOT.size else -1
            if 0 <= slot < self.slots and slot not in self.free:
                self.free.append(slot)
        return bool(self.free)

    def view(self, slot: int, shape, dtype=np.float32) -> np.ndarray:
        """The array of ``shape`` at the start of ``slot``."""
        return np.ndarray(shape, dtype, buffer=self.memory, offset=slot * self.slot_bytes)

    def slot_of(self, array: np.ndarray) -> int | None:
        """The slot ``array`` starts at, or None when it is not at the start of one."""
        slot, rest = divmod(array.ctypes.data - self.base, self.slot_bytes)
        return int(slot) if rest == 0 and 0 <= slot < len(self.memory) // self.slot_bytes else None

    def close(self, deliver: bool = False) -> None:
        """Close the socket and the mapping and remove the files; with ``deliver``, the ring's file stays for
        the study to map (messages about it may still be on their way): the study removes it."""
        if self.returns is not None:
            self.returns.close(linger=0)
        for path in (f"{self.path}.free",) if deliver else (self.path, f"{self.path}.free"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        if self.memory is not None:
            with contextlib.suppress(BufferError):  # arrays still viewing it (a failed task's traceback): theirs
                self.memory.close()


class Segments:
    """The study's side: the rings of its epoch's senders, mapped at their first message, and the sockets that
    give their slots back."""

    def __init__(self, epoch: int, context: zmq.Context):
        self.epoch, self.context = epoch, context
        self.pattern = re.compile(re.escape(prefix(epoch)) + r"-[0-9a-f]{16}")
        self.rings: dict[str, mmap.mmap] = {}
        self.returns: dict[str, zmq.Socket] = {}

    def view(self, name: str, offset: int, nbytes: int) -> memoryview:
        """``nbytes`` at ``offset`` in ring ``name``, read-only (a :class:`ValueError` when it is not a ring of
        this epoch owned by this user, an :class:`OSError` when it cannot be opened)."""
        if name not in self.rings:
            if not self.pattern.fullmatch(name):
                raise ValueError(f"{name!r} is not a ring of this study epoch")
            path = os.path.join(DIRECTORY, name)
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
            try:
                info = os.fstat(fd)
                if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
                    raise ValueError(f"{path} is not a ring file of this user")
                self.rings[name] = mmap.mmap(fd, info.st_size, access=mmap.ACCESS_READ)
            finally:
                os.close(fd)
            os.unlink(path)  # both ends have it mapped: the name is no longer needed
        memory = self.rings[name]
        if offset + nbytes > len(memory):
            raise ValueError(f"{nbytes} bytes at {offset} overrun ring {name!r} of {len(memory)}")
        return memoryview(memory)[offset : offset + nbytes]

    def give_back(self, name: str, slot: int) -> None:
        """Tell the sender of ring ``name`` (of any epoch: a stale message's too) that ``slot`` is free; dropped
        if its sender is gone."""
        if name not in self.returns:
            if not _RING.fullmatch(name):
                return
            self.returns[name] = returns = self.context.socket(zmq.PUSH)
            returns.setsockopt(zmq.LINGER, 0)
            returns.connect(f"ipc://{os.path.join(DIRECTORY, name)}.free")
        with contextlib.suppress(zmq.Again):
            self.returns[name].send(_SLOT.pack(slot), zmq.NOBLOCK)

    def close(self) -> None:
        """Close the sockets and the mappings (arrays still viewing one keep it until they go)."""
        for returns in self.returns.values():
            returns.close()
        for memory in self.rings.values():
            with contextlib.suppress(BufferError):
                memory.close()
        self.rings.clear()
        self.returns.clear()
