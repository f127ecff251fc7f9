"""Where the data plane meets the study: each message becomes ledger entries and buffer samples (one copy,
from the received frame into the buffer's arrays), in the receiver's thread.

The intake holds the receiver back (so producers block) while the buffer has no room for a chunk or
training is behind the rate limit; the steps received and not yet stored wait for room in ``held`` (at most
one message's: the receiver takes in no more than the buffer's room and the message that crosses it).
Every state it shares with the study's loop is guarded by ``lock``, a condition the loop notifies after each
batch and the intake after each chunk.
"""

from __future__ import annotations

import logging
import threading
import time

import numpy as np

from kit.online.dataplane import CHUNK, END, START, Message
from kit.online.ledger import ALL

log = logging.getLogger(__name__)


class Intake:
    """Turns messages of epoch ``epoch`` into entries of ``ledger`` and samples of ``buffer``.

    ``encoding`` maps a simulation's parameters and step times to network inputs; ``sensitivity`` (a
    :class:`kit.sensitivity.FieldSobol`) and ``timeline`` (a :class:`kit.online.timeline.Timeline`) see every
    new step and chunk when given; ``rate`` (batches per simulation's worth of steps, or None) holds
    arrivals back until training caught up; ``clock()`` gives the study's seconds.
    """

    def __init__(self, ledger, buffer, encoding, *, epoch: int, steps: int, clock, sensitivity=None, timeline=None,
                 rate: float | None = None, poll: float = 0.1):  # fmt: skip
        self.ledger, self.buffer, self.encoding, self.epoch, self.steps = ledger, buffer, encoding, epoch, steps
        self.clock, self.sensitivity, self.timeline, self.rate, self.poll = clock, sensitivity, timeline, rate, poll
        self.lock = threading.Condition()
        self.batches = 0  # the study's batch count, set under the lock
        self.held = None  # [inputs, fields (a list of arrays), simulation(s), steps] received, not yet stored
        self.chunks = 0
        self.closing = False
        self._units: dict[int, np.ndarray] = {}  # each simulation's encoded parameters

    # -- in the receiver's thread ------------------------------------------------------------------------
    def deliver(self, messages: list[Message]) -> None:
        """Account for ``messages`` and store their new steps, waiting (the receiver with it) for room."""
        with self.lock:
            takes = []  # new steps of the chunks since the last store: (simulation, unit, times, fields, steps)
            for message in messages:
                if message.kind == CHUNK and self.rate is not None and takes:
                    self._keep(takes)  # the rate limit reads the buffer: store what this delivery took so far
                    takes = []
                if message.kind == CHUNK and (self.held is not None or self.rate_limited()):
                    self._keep(takes)
                    takes = []
                    self._wait(lambda: self.held is not None or self.rate_limited())
                if self.closing and message.kind == CHUNK:
                    self.ledger.produced += message.count
                    self.ledger.discarded["study ended"] += message.count
                    continue
                sim = self.ledger.simulations.get(message.sim_id)
                if message.epoch != self.epoch or sim is None:
                    self.ledger.stale(message.count if message.kind == CHUNK else 0)
                    continue
                run = self.ledger.runs(sim, message.run, message.attempt)
                if message.attempt == sim.attempts:
                    sim.active = time.monotonic()
                if message.kind == START:
                    run.worker = message.info.get("worker", "") if message.info else ""
                elif message.kind == END:
                    run.reported = message.count
                else:
                    self._chunk(sim, run, message, takes)
            self._keep(takes)
            if self.buffer.ready() or any(m.kind != CHUNK for m in messages):  # else the loop has nothing to do
                self.lock.notify_all()

    def _chunk(self, sim, run, message: Message, takes: list) -> None:
        """Account for a chunk; its new steps join ``takes``."""
        self.chunks += 1
        try:
            new = self.ledger.receive(sim, message.run, message.attempt, message.steps, self.batches, self.clock())
        except ValueError as exc:
            sim.problem = str(exc)
            return
        late = sim.status != "running"
        if self.timeline is not None:
            self.timeline.chunk(message, run.worker, used=not late)
        count = message.count if new is ALL else int(np.count_nonzero(new))
        if late:  # the last chunks of a simulation given up on
            reason = "study ended" if sim.status == "cancelled" else f"{sim.status} simulation"
            self.ledger.discarded[reason] += count
            return
        if not count:
            return
        steps, fields, times = message.steps[new], message.fields[new], message.times[new]
        if self.sensitivity is not None:
            for step, field in zip(steps.tolist(), fields, strict=True):
                self.sensitivity.add(sim.sim_id, step, field)
        unit = self._units.get(sim.sim_id)
        if unit is None:
            unit = self._units[sim.sim_id] = self.encoding.unit(sim.params)
        takes.append((sim.sim_id, unit, times, fields, steps))

    def _keep(self, takes: list) -> None:
        """Store the steps of ``takes`` in the buffer (encoded together), waiting for room as needed."""
        if not takes:
            return
        if len(takes) == 1:
            sim_id, unit, times, fields, steps = takes[0]
            self.held = [self.encoding.at_times(unit, times), [fields], sim_id, steps]
        else:
            sims, units, times, fields, steps = zip(*takes, strict=True)
            counts = [len(s) for s in steps]
            x = self.encoding.at_times(np.repeat(np.stack(units), counts, axis=0), np.concatenate(times))
            self.held = [x, list(fields), np.repeat(sims, counts), np.concatenate(steps)]
        self._store()
        while self.held is not None:
            if not self._wait(lambda: not self.buffer.can_put()):
                return
            self._store()

    def room(self) -> int:
        """How many steps the receiver may take in at once: the buffer's room (read without the lock, so at
        most what there is: only the receiver's thread fills the buffer)."""
        return self.buffer.room()

    @property
    def pending(self) -> int:
        """Steps received and not yet stored in the buffer."""
        return 0 if self.held is None else len(self.held[3])

    def _store(self) -> None:
        """Put what ``held`` holds into the buffer, as much as fits (the study's loop may have done it while
        the receiver waited)."""
        if self.held is None:
            return
        x, fields, sim_id, steps = self.held
        k = self.buffer.put(x, fields, sim_id, steps)
        if k == len(steps):
            self.held = None
            return
        while k >= len(fields[0]):  # the parts stored whole
            k -= len(fields[0])
            fields = fields[1:]
        fields = [fields[0][k:], *fields[1:]]
        stored = len(x) - sum(len(f) for f in fields)
        sim_id = sim_id[stored:] if isinstance(sim_id, np.ndarray) else sim_id
        self.held = [x[stored:], fields, sim_id, steps[stored:]]

    def _wait(self, blocked) -> bool:
        """Wait while ``blocked()``, keeping running simulations from looking hung; False if closing."""
        while blocked() and not self.closing:
            self.lock.notify_all()
            self.lock.wait(self.poll)
            now = time.monotonic()
            for sim in self.ledger.running.values():  # held back on purpose: not a hang
                if sim.active is not None:
                    sim.active = now
        return not self.closing

    def rate_limited(self) -> bool:
        """Whether training is behind ``rate`` batches per simulation's worth of steps received."""
        if self.rate is None or not self.buffer.ready():
            return False
        return self.batches < self.rate * self.ledger.produced / self.steps

    # -- in the study's thread -----------------------------------------------------------------------------
    def flush(self) -> None:
        """Store held steps (restored from a checkpoint) when the buffer has room."""
        with self.lock:
            if self.held is not None and not self.closing and self.buffer.can_put():
                self._store()
                self.lock.notify_all()

    def close(self) -> None:
        """Let a waiting receiver go; what is held, and every later chunk, is discarded (``study ended``)."""
        with self.lock:
            self.closing = True
            self.ledger.discarded["study ended"] += self.pending
            self.held = None
            self.lock.notify_all()
