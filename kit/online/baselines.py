"""What the online-training infrastructure is measured against, run where the simulations run (no torch):
the simulations in a plain loop, and bare pyzmq producers."""

from __future__ import annotations

import time

import numpy as np


def plain_loop_rate(simulator, params: np.ndarray, seed: int = 0) -> float:
    """Time steps per second of the simulations run one after another in this process, without the kit."""
    start, steps = time.perf_counter(), 0
    for point in params:
        for _ in simulator.run(point, seed=seed):
            steps += 1
    return steps / (time.perf_counter() - start)


def bare_push(address: str, messages: int, nbytes: int, header: int = 90) -> int:
    """A bare producer: ``messages`` two-frame messages (``header`` bytes, then ``nbytes``) pushed to
    ``address``; returns once they are delivered."""
    import zmq

    context = zmq.Context()
    push = context.socket(zmq.PUSH)
    push.setsockopt(zmq.SNDHWM, 2)
    push.connect(address)
    head, body = bytes(header), np.ones(nbytes // 4, np.float32)
    for _ in range(messages):
        push.send_multipart([head, body], copy=False)
    push.close(linger=-1)
    context.term()
    return messages
