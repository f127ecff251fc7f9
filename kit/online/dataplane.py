"""The data plane of an online study: time steps go from each simulation task straight to the study process
over pyzmq sockets, never through the dask scheduler.

The study binds one PULL socket, read by a :class:`Receiver` thread; each simulation task connects a PUSH
socket (:class:`Sender`). A message is two frames: a fixed binary header (kind, study epoch, simulation,
attempt, run, number of steps, when the chunk was begun and made, dtype and shape, then the steps and
their times) and the raw field bytes, sent without a copy; or, from a simulation on the study's host, where
its fields lie in shared memory (:mod:`kit.online.sharedmem`). A run says when it starts (the study's hang
clock starts there) and when it ends, with the number of steps it made (checked against what arrived).

Backpressure and the memory bound: a simulation's messages queue at most ``queue_size`` deep on each side
of its connection (zmq high-water marks), plus what the kernel's socket buffers hold (``socket_bytes`` a
side, doubled by Linux); in shared memory, a connection has ``queue_size + 2`` messages' slots. When the
study stops reading, they fill and the simulation blocks.

A sender gives up with an error naming the address when it cannot reach the study within
``connect_timeout`` (:class:`Unreachable`), when it lost its connection for ``send_timeout`` (the study died:
:class:`Orphaned`), or at once once the study's epoch ended (:class:`Stopped`, asked of ``stopped`` only
while disconnected).
"""

from __future__ import annotations

import json
import logging
import math
import os
import secrets
import socket as socket_module
import struct
import threading
import time
from dataclasses import dataclass

import numpy as np
import zmq
from zmq.utils.monitor import recv_monitor_message

from kit.online import sharedmem
from kit.online.sharedmem import Ring, Segments

log = logging.getLogger(__name__)

START, CHUNK, END = 0, 1, 2
_MAGIC = b"kit2"
_HEADER = struct.Struct("<4sBQqIQIdd4sB4IB")  # magic kind epoch sim attempt run n started made dtype ndim shape[4]
#                                              shared (the fields frame says where they lie in shared memory)
_SHARED = struct.Struct("<40sIQQ")  # ring, slot, offset, bytes
_DTYPES = {np.dtype(t).str.encode().ljust(4): np.dtype(t) for t in ("<f4", "<f8", "<f2", "<i4", "<i8", "|u1")}
_STEPS, _TIMES = np.dtype("<i8"), np.dtype("<f8")
_MORE, _EVENTS, _POLLIN, _POLLOUT = int(zmq.SNDMORE), int(zmq.EVENTS), int(zmq.POLLIN), int(zmq.POLLOUT)


class Stopped(RuntimeError):
    """The study asked its simulations to stop (it ended, or gave up on this one)."""


class Unreachable(ConnectionError):
    """A simulation task could not connect to the study's data address."""


class Orphaned(ConnectionError):
    """A simulation task lost its study (killed, or its host gone) for longer than its send timeout."""


class MalformedMessage(ValueError):
    """A message on the study's socket that is not a well-formed kit message."""


@dataclass(frozen=True)
class Endpoint:
    """Where and how a simulation task sends: the study's address, name and epoch, and the sender's limits.

    ``epoch`` is drawn anew for every run of a study (a resumed study gets another one), so that messages
    of an earlier run's tasks are told apart. ``shared``: the study's marker in shared memory ("" for
    none); a sender that sees it puts its fields there.
    """

    address: str
    study: str
    epoch: int
    queue_size: int = 2
    socket_bytes: int = 1 << 18
    connect_timeout: float = 30.0
    send_timeout: float = 60.0
    poll: float = 1.0
    shared: str = ""


@dataclass(eq=False, slots=True)
class Message:
    """One decoded message: ``kind`` (START, CHUNK, END), who sent it and, for a chunk, its steps.

    ``count``: for END, the steps the run made; for a chunk, how many it carries. ``info``: what a START
    says of the sender (worker address, host, pid). ``slot``: (ring, slot) of fields in shared memory, given
    back once delivered.
    """

    kind: int
    epoch: int
    sim_id: int
    attempt: int
    run: int
    count: int
    started: float = 0.0
    made: float = 0.0
    steps: np.ndarray | None = None
    times: np.ndarray | None = None
    fields: np.ndarray | None = None
    info: dict | None = None
    slot: tuple | None = None


def new_epoch() -> int:
    """A random 63-bit epoch."""
    return secrets.randbits(63)


def encode(kind, epoch, sim_id, attempt, run, *, steps=(), times=(), fields=None, started=0.0, made=0.0, count=None,
           info=None, slot=None) -> list:  # fmt: skip
    """The frames of one message (the fields frame is the array itself: zmq sends it without a copy; with
    ``slot``, (ring name, slot, offset), the fields lie there and the frame says so)."""
    steps = np.asarray(steps, dtype="<i8")
    times = np.asarray(times, dtype="<f8")
    shape, dtype = (), b"<f4 "
    if fields is not None:
        if not fields.flags.c_contiguous or fields.ndim - 1 > 4:
            raise ValueError(f"fields must be C-contiguous with at most 4 dims a step, got {fields.shape}")
        dtype, shape = fields.dtype.str.encode().ljust(4), fields.shape[1:]
        if dtype not in _DTYPES:
            raise ValueError(
                f"fields of dtype {fields.dtype} cannot be streamed; use one of {sorted(map(str, _DTYPES.values()))}"
            )
    n = len(steps) if count is None else count
    head = _HEADER.pack(_MAGIC, kind, epoch, sim_id, attempt, run, n, started, made, dtype, len(shape),
                        *shape, *(0,) * (4 - len(shape)), slot is not None)  # fmt: skip
    frames = [head + steps.tobytes() + times.tobytes()]
    if slot is not None:
        frames.append(_SHARED.pack(slot[0].encode(), slot[1], slot[2], fields.nbytes))
    elif fields is not None:
        frames.append(fields)
    elif info is not None:
        frames.append(json.dumps(info).encode())
    return frames


def decode(frames, segments: Segments | None = None) -> Message:
    """A :class:`Message` from received frames (zmq ``Frame`` objects or bytes); arrays are views of them, or
    of the shared memory of ``segments`` (the fields of a chunk of another epoch are not read)."""
    if not 1 <= len(frames) <= 2:
        raise MalformedMessage(f"a kit message has 1 or 2 frames, got {len(frames)}")
    head = _view(frames[0])
    if len(head) < _HEADER.size or head[:4] != _MAGIC:
        raise MalformedMessage(f"not a kit message (header of {len(head)} bytes starting {bytes(head[:8])!r})")
    magic, kind, epoch, sim_id, attempt, run, n, started, made, dtype, ndim, *shape, shared = _HEADER.unpack_from(head)
    dtype = _DTYPES.get(dtype)
    if kind not in (START, CHUNK, END) or ndim > 4 or dtype is None:
        raise MalformedMessage(f"bad header: kind {kind}, ndim {ndim}, dtype {dtype!r}")
    if kind != CHUNK:
        info = json.loads(bytes(_view(frames[1]))) if len(frames) == 2 else None
        return Message(kind, epoch, sim_id, attempt, run, n, started, made, info=info)
    if len(head) != _HEADER.size + 16 * n or len(frames) != 2:
        raise MalformedMessage(f"chunk of simulation {sim_id}: header of {len(head)} bytes for {n} steps")
    shape, slot = tuple(shape[:ndim]), None
    body = _view(frames[1])
    if shared:
        if len(body) != _SHARED.size:
            raise MalformedMessage(f"chunk of simulation {sim_id}: {len(body)} bytes to say where its fields lie")
        name, index, offset, nbytes = _SHARED.unpack(body)
        slot = name.rstrip(b"\0").decode(errors="replace"), index
        if segments is None:
            raise MalformedMessage(f"chunk of simulation {sim_id}: its fields are in shared memory, not read here")
        if epoch != segments.epoch:  # not read: a stale message (its slot is still given back)
            return Message(kind, epoch, sim_id, attempt, run, n, started, made, slot=slot)
        try:
            body = segments.view(slot[0], offset, nbytes)
        except (OSError, ValueError) as exc:
            raise _rejected(f"chunk of simulation {sim_id}: {exc}", slot) from exc
    if len(body) != n * dtype.itemsize * math.prod(shape):
        message = f"chunk of simulation {sim_id}: {len(body)} bytes for {n} steps of {dtype} {shape}"
        raise _rejected(message, slot)
    steps = np.frombuffer(head, dtype=_STEPS, count=n, offset=_HEADER.size)
    times = np.frombuffer(head, dtype=_TIMES, count=n, offset=_HEADER.size + 8 * n)
    fields = np.frombuffer(body, dtype=dtype).reshape(n, *shape)
    return Message(kind, epoch, sim_id, attempt, run, n, started, made, steps, times, fields, slot=slot)


def _rejected(message: str, slot: tuple | None) -> MalformedMessage:
    """The error rejecting a message, with the shared-memory slot it names to give back (or None)."""
    error = MalformedMessage(message)
    error.slot = slot
    return error


def _view(frame) -> memoryview:
    return frame.buffer if hasattr(frame, "buffer") else memoryview(frame)


class Connection:
    """A PUSH socket to a study's address and what is known of its link: connected now, ever, since when."""

    def __init__(self, endpoint: Endpoint):
        self.endpoint = endpoint
        self.socket = zmq.Context.instance().socket(zmq.PUSH)  # the process's I/O thread delivers what is queued
        self.socket.setsockopt(zmq.SNDHWM, endpoint.queue_size)
        self.socket.setsockopt(zmq.SNDBUF, endpoint.socket_bytes)
        self.socket.setsockopt(zmq.IMMEDIATE, 1)  # queue only on a live connection: a send blocks without one
        self.socket.setsockopt(zmq.SNDTIMEO, int(endpoint.poll * 1000))
        self.monitor = self.socket.get_monitor_socket(zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED)
        self.connected, self.ever_connected, self.since = False, False, time.monotonic()
        self.socket.connect(endpoint.address)
        self.ring: Ring | None = None
        self.shared = sharedmem.shared_with(endpoint.shared)

    def ring_for(self, nbytes: int) -> Ring | None:
        """The connection's shared-memory slots, made at its first message (of ``nbytes``) where it shares
        memory with the study; None elsewhere, or when they cannot be made (then never tried again)."""
        if self.ring is None and self.shared:
            try:
                self.ring = Ring(self.endpoint.epoch, nbytes, self.endpoint.queue_size + 2)
            except (OSError, zmq.ZMQError) as exc:
                self.shared = False
                log.warning("no shared memory for the study at %s (%s): fields go over the socket",
                            self.endpoint.address, exc)  # fmt: skip
        return self.ring

    def update(self) -> None:
        """Take in the connection events that came since last asked."""
        while True:
            try:
                event = recv_monitor_message(self.monitor, flags=zmq.NOBLOCK)["event"]
            except zmq.Again:
                return
            self.connected = event == zmq.EVENT_CONNECTED
            self.ever_connected |= self.connected
            self.since = time.monotonic()

    def close(self, deliver: bool = True) -> None:
        """Close the socket at once; what is queued is still delivered in the background (for up to
        ``send_timeout`` seconds) when ``deliver``."""
        self.socket.disable_monitor()
        self.monitor.close(linger=0)
        self.socket.close(linger=int(self.endpoint.send_timeout * 1000) if deliver else 0)
        if self.ring is not None:  # what was sent stays for the study (which has its own mapping, or makes it)
            self.ring.close(deliver)


#: Study epochs a thread keeps its connection to between simulations (the oldest closes past them).
KEPT = 2
_THREAD = threading.local()


def kept_connection(endpoint: Endpoint) -> Connection:
    """This thread's connection to ``endpoint``, opened at its first simulation for that study epoch and
    kept for the next ones (a dask worker thread runs one task at a time): no socket, monitor and handshake
    to set up a simulation."""
    connections = _THREAD.__dict__.setdefault("connections", {})
    if endpoint not in connections:
        connections[endpoint] = Connection(endpoint)
        while len(connections) > KEPT:
            connections.pop(next(iter(connections))).close()
    connections[endpoint] = connections.pop(endpoint)  # the most recently used last
    return connections[endpoint]


def _forget(endpoint: Endpoint) -> None:
    """Close this thread's kept connection to ``endpoint`` without delivering: the study is gone or stopped."""
    connection = _THREAD.__dict__.get("connections", {}).pop(endpoint, None)
    if connection is not None:
        connection.close(deliver=False)


class Sender:
    """The sending end of one simulation attempt's stream (used inside its dask task).

    ``stopped()`` says whether the study's epoch ended; it is asked once a poll only while disconnected or
    waiting for a shared-memory slot, so a study that stopped ends its simulations within ``poll`` seconds and
    one that keeps reading costs no control traffic.
    With ``keep`` the thread's connection to the study outlives the sender (:func:`kept_connection`);
    otherwise the sender opens its own and closes it on exit.
    """

    def __init__(self, endpoint: Endpoint, sim_id: int, attempt: int, *, stopped=lambda: False, keep: bool = False):
        self.endpoint, self.sim_id, self.attempt, self.stopped = endpoint, int(sim_id), int(attempt), stopped
        self.run = secrets.randbits(63)  # one id per execution: a task rerun after its worker died gets another
        self.keep, self.asked = keep, 0.0
        self.connection = kept_connection(endpoint) if keep else Connection(endpoint)
        self.socket = self.connection.socket
        self.slot: int | None = None  # the shared-memory slot taken for the next message, not yet sent

    def fields(self, shape, dtype=np.float32) -> np.ndarray:
        """An array to make the next message's fields in: a slot of the connection's shared memory where it has
        one (waiting while the study holds them all, as a full queue does), else a new array."""
        nbytes = math.prod(shape) * np.dtype(dtype).itemsize
        ring = self.connection.ring_for(nbytes)
        if ring is None or nbytes > ring.slot_bytes:
            return np.empty(shape, dtype)
        if self.slot is not None:  # taken for a message never sent
            ring.free.append(self.slot)
        while (slot := ring.take(self.endpoint.poll)) is None:
            self._check()
            if self.stopped():  # asked once a poll: a study may give up on a simulation it holds back
                raise Stopped(f"the study at {self.endpoint.address} stopped")
        self.slot = slot
        return ring.view(slot, shape, dtype)

    def start(self, worker: str) -> None:
        """Say that this run started on ``worker``."""
        info = {"worker": worker, "host": socket_module.gethostname(), "pid": os.getpid()}
        self._send(encode(START, self.endpoint.epoch, self.sim_id, self.attempt, self.run, info=info))

    def chunk(self, steps, times, fields: np.ndarray, started: float, made: float, *, wait: bool = True) -> bool:
        """Send consecutive steps (indices, times, fields ``(k, ...)``); blocks while the study holds back, or,
        unless ``wait``, returns False at once (nothing sent) when the queue is full, or when fields in shared
        memory would leave no free slot for the next message (theirs can take more steps meanwhile)."""
        ring, slot = self.connection.ring, None
        shared = self.slot is not None and ring.slot_of(fields) == self.slot  # made in shared memory
        if not wait and (not self.socket.getsockopt(_EVENTS) & _POLLOUT or (shared and not ring.spare())):
            self._check()  # a full queue may be a lost or stopped study: never wait a full message to know
            return False
        if shared:
            slot, self.slot = (ring.name, self.slot, self.slot * ring.slot_bytes), None
        self._send(encode(CHUNK, self.endpoint.epoch, self.sim_id, self.attempt, self.run, steps=steps, times=times,
                          fields=fields, started=started, made=made, slot=slot))  # fmt: skip
        return True

    def end(self, count: int) -> None:
        """Say that this run made ``count`` steps in all."""
        self._send(encode(END, self.endpoint.epoch, self.sim_id, self.attempt, self.run, count=count))

    def _send(self, frames) -> None:
        head, *rest = frames
        while True:
            try:
                self.socket.send(head, _MORE if rest else 0, copy=False)
                break
            except zmq.Again:
                self._check()
        if rest:  # zmq takes the other parts of a message once it took the first
            self.socket.send(rest[0], 0, copy=False)

    def _check(self) -> None:
        """A send waited (``poll`` seconds, or found the queue full): fine while connected (the study holds
        back), else maybe give up."""
        link = self.connection
        link.update()
        if link.connected:
            return
        waited = time.monotonic() - link.since
        where = f"simulation {self.sim_id} (attempt {self.attempt}) on {socket_module.gethostname()}"
        if not link.ever_connected and waited > self.endpoint.connect_timeout:
            raise Unreachable(
                f"{where} could not connect to the study's data address {self.endpoint.address} within "
                f"{self.endpoint.connect_timeout:g} s: is the study's host reachable from the workers, its port open?"
            )
        if link.ever_connected and time.monotonic() - self.asked >= self.endpoint.poll:  # asked once a poll
            self.asked = time.monotonic()
            if self.stopped():
                raise Stopped(f"the study at {self.endpoint.address} stopped")
        if link.ever_connected and waited > self.endpoint.send_timeout:
            raise Orphaned(
                f"{where} lost the study at {self.endpoint.address} for {waited:.0f} s (send_timeout "
                f"{self.endpoint.send_timeout:g} s): it was killed or its host is gone"
            )

    def close(self, deliver: bool = True) -> None:
        """Let the connection go: a kept one stays open unless the study is lost (not ``deliver``); an own one
        closes, what is queued still delivered in the background when ``deliver``. The study checks that it
        all arrived."""
        if self.slot is not None:  # taken and never sent
            self.connection.ring.free.append(self.slot)
            self.slot = None
        if not self.keep:
            self.connection.close(deliver)
        elif not deliver:
            _forget(self.endpoint)

    def __enter__(self):
        return self

    def __exit__(self, kind, *exc_info) -> None:
        # steps made before a simulation failed are valid and still delivered; a lost study is not waited for
        self.close(deliver=kind is None or not issubclass(kind, (Stopped, Unreachable, Orphaned)))


#: Most messages the receiving thread takes in at once.
MOST = 64


class Receiver:
    """The study's receiving socket and the thread that hands each message to ``deliver``.

    ``deliver(messages)`` runs in the thread with the messages waiting: one, and more (up to
    :data:`MOST`) while their steps stay under ``room()``, the steps the study can store now. It may block
    (the study has no room): the thread then stops reading, and the senders' queues fill. A malformed
    message is logged and counted (``rejected``); an exception in ``deliver`` ends the thread and is kept in
    ``error`` for the study to raise. ``cpu_seconds``: the thread's CPU time (receiving and delivering),
    once closed.

    With ``epoch``, senders of that study epoch on this host put their fields in shared memory where it has
    some (``shared``: the marker to give them, "" otherwise); ``deliver`` must copy what it keeps of
    them, since their slots are given back once it returns.
    """

    def __init__(self, bind: str, deliver, *, room=lambda: 1 << 30, queue_size: int = 2, socket_bytes: int = 1 << 18,
                 poll: float = 0.1, epoch: int | None = None):  # fmt: skip
        self.deliver, self.room, self.poll = deliver, room, poll
        self.context = zmq.Context()
        self.socket = self.context.socket(zmq.PULL)
        self.socket.setsockopt(zmq.RCVHWM, queue_size)
        self.socket.setsockopt(zmq.RCVBUF, socket_bytes)
        self.socket.setsockopt(zmq.LINGER, 0)
        try:
            self.socket.bind(bind)
        except zmq.ZMQError as exc:
            self.socket.close()
            self.context.term()
            raise OSError(f"the study cannot listen for data at {bind!r}: {exc}") from exc
        self.address = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self.shared = "" if epoch is None else sharedmem.mark(epoch)
        self.segments = Segments(epoch, self.context) if self.shared else None
        self.rejected, self.messages, self.cpu_seconds = 0, 0, 0.0
        self.error: BaseException | None = None
        self._closing = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="kit-receiver", daemon=True)

    def start(self) -> Receiver:
        self.thread.start()
        return self

    def close(self) -> None:
        """Stop the thread (after its current message) and close the socket."""
        self._closing.set()
        if self.thread.is_alive():
            self.thread.join()
        self.socket.close()
        if self.segments is not None:
            self.segments.close()
            sharedmem.clean(self.segments.epoch)
        self.context.term()

    def _loop(self) -> None:
        begun = time.thread_time()
        self.socket.setsockopt(zmq.RCVTIMEO, int(self.poll * 1000))  # a blocking receive that wakes to stop
        try:
            while not self._closing.is_set():
                try:
                    frames = self.socket.recv_multipart(copy=False)
                except zmq.Again:
                    continue
                messages, room = [], self.room()
                while True:
                    try:
                        messages.append(decode(frames, self.segments))
                        room -= messages[-1].count
                    except MalformedMessage as exc:
                        self.rejected += 1
                        log.warning("dropped a message at %s: %s", self.address, exc)
                        if getattr(exc, "slot", None) is not None:  # its sender waits for the slot
                            self.segments.give_back(*exc.slot)
                    if room <= 0 or len(messages) >= MOST or not self.socket.getsockopt(_EVENTS) & _POLLIN:
                        break
                    frames = self.socket.recv_multipart(copy=False)
                self.messages += len(messages)
                if messages:
                    self.deliver(messages)
                    for message in messages:
                        if message.slot is not None:
                            self.segments.give_back(*message.slot)
        except BaseException as exc:  # the study raises it from its own thread
            self.error = exc
        finally:
            self.cpu_seconds = time.thread_time() - begun


def pending_bound(message_bytes: int, queue_size: int = 2, socket_bytes: int = 1 << 18, shared: bool = False) -> int:
    """Most bytes of one simulation's messages sent and not yet stored by the study: its ``queue_size`` deep
    queues on both sides, zmq's message in progress at each end and one message the study took in without
    room for it, and the kernel's socket buffers (``socket_bytes`` a side, doubled by Linux). In ``shared``
    memory, its connection's ``queue_size + 2`` slots (the headers on the socket are a few hundred bytes).

    >>> pending_bound(40_000) // 1000  # a 100x100 float32 step a message, the defaults
    1328
    >>> pending_bound(40_000, shared=True) // 1000
    160
    """
    if shared:
        return (queue_size + 2) * message_bytes
    return (2 * queue_size + 3) * message_bytes + 4 * socket_bytes


def default_bind(scheduler_address: str) -> str:
    """Where a study listens when not told: TCP on the interface that reaches the scheduler (loopback for a
    local one), on a port the OS picks."""
    from distributed.utils import get_ip

    host = scheduler_address.split("://")[-1].rsplit(":", 1)[0].strip("[]")
    if scheduler_address.startswith("inproc") or host in ("127.0.0.1", "localhost", "::1", ""):
        return "tcp://127.0.0.1:*"
    return f"tcp://{get_ip(host)}:*"
