"""A study's one sampler, numbering its draws: asked in the study's process (:func:`draw`), or by training
ranks on other hosts over a socket (:class:`SamplerService` in the study's process, :class:`RemoteDraws` in
each rank). Simulation ``i`` gets the sampler's ``i``-th point whichever rank launches it; told losses reach
the sampler from every rank.
"""

from __future__ import annotations

import pickle
import threading

import numpy as np
import zmq


def draw(sampler, space, sim_id: int) -> tuple[np.ndarray, int]:
    """The next point of ``sampler`` for simulation ``sim_id`` (validated against ``space``) and the id its
    seed derives from (the sampler's ``seed_group``: the rows of a pick-freeze group share one)."""
    (params,) = space.validate(np.atleast_2d(sampler.ask(1)))
    return params, getattr(sampler, "seed_group", lambda index: index)(sim_id)


class SamplerService:
    """Serves ``sampler`` to the ranks from a thread, on a socket bound to ``host``: numbered draws (from
    ``next_id`` on, the ``offered`` ones first: drawn before a checkpoint and never launched) and told
    losses, as raw arrays (the service unpickles nothing from the network), and a snapshot for checkpoints. A
    sampler's error on a draw goes back to the rank that asked; on told losses it is kept in ``error`` for
    the study to raise.
    """

    def __init__(self, sampler, space, host: str, next_id: int, offered=()):
        self.sampler, self.space, self.next_id, self.offered = sampler, space, next_id, list(offered)
        self.fresh: list[tuple] = []  # (simulation id, parameters, seed id) drawn since the last snapshot
        self.error: BaseException | None = None
        self.context = zmq.Context()
        self.socket = self.context.socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.bind(f"tcp://{host}:*")
        self.address = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self._closing = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="kit-sampler", daemon=True)

    def __enter__(self) -> SamplerService:
        self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._closing.set()
        self.thread.join()
        self.socket.close()
        self.context.term()

    def _loop(self) -> None:
        while True:
            if not self.socket.poll(100):
                if self._closing.is_set():  # the losses told before the end are all taken in
                    return
                continue
            sender, kind, *arrays = self.socket.recv_multipart()
            try:
                if kind == b"tell":
                    losses = np.frombuffer(arrays[1], np.float64)
                    self.sampler.tell(np.frombuffer(arrays[0], np.float64).reshape(len(losses), -1), losses)
                    continue
                if kind == b"state":
                    snapshot = (self.sampler.state_dict(), self.next_id, [*self.fresh, *self.offered])
                    self.socket.send_multipart([sender, b"ok", pickle.dumps(snapshot)])
                    self.fresh = []
                    continue
                if self.offered:
                    sim_id, params, seeded = self.offered.pop(0)
                else:
                    (params, seeded), sim_id = draw(self.sampler, self.space, self.next_id), self.next_id
                    self.next_id += 1
                self.fresh.append((sim_id, params, seeded))
                ids = np.array([sim_id, seeded], np.int64).tobytes()
                reply = [b"ok", ids, np.asarray(params, np.float64).tobytes()]
            except Exception as exc:
                if kind == b"tell":
                    self.error = exc
                    continue
                reply = [b"error", f"{type(exc).__name__}: {exc}".encode()]
            self.socket.send_multipart([sender, *reply])


class RemoteDraws:
    """A rank's handle on the study's sampler at ``address``: :meth:`draw` asks (and waits up to
    ``timeout`` seconds), :meth:`tell` sends losses without waiting."""

    def __init__(self, address: str, timeout: float):
        self.address = address
        self.context = zmq.Context()
        self.socket = self.context.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 1000)
        self.socket.setsockopt(zmq.RCVTIMEO, int(timeout * 1000))
        self.socket.connect(address)

    def draw(self) -> tuple[int, np.ndarray, int]:
        """A simulation id, its parameters and the id its seed derives from."""
        self.socket.send(b"draw")
        try:
            status, *frames = self.socket.recv_multipart()
        except zmq.Again:
            raise ConnectionError(f"the study's sampler at {self.address} did not answer") from None
        if status != b"ok":
            raise RuntimeError(f"the study's sampler failed: {frames[0].decode()}")
        sim_id, seeded = np.frombuffer(frames[0], np.int64).tolist()
        return sim_id, np.frombuffer(frames[1], np.float64).copy(), seeded

    def snapshot(self) -> tuple[dict, int, list]:
        """The sampler's state, the next simulation id, and the draws (id, parameters, seed id) since the last
        snapshot with those offered and not handed out yet."""
        self.socket.send(b"state")
        try:
            status, frame = self.socket.recv_multipart()
        except zmq.Again:
            raise ConnectionError(f"the study's sampler at {self.address} did not answer") from None
        if status != b"ok":
            raise RuntimeError(f"the study's sampler failed: {frame.decode()}")
        return pickle.loads(frame)

    def tell(self, params: np.ndarray, losses: np.ndarray) -> None:
        self.socket.send_multipart(
            [b"tell", np.ascontiguousarray(params, np.float64), np.ascontiguousarray(losses, np.float64)]
        )

    def close(self) -> None:
        self.socket.close()
        self.context.term()
