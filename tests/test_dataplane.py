"""The data plane on real sockets: the wire format, backpressure and its bound, and senders that lose their study."""

import os
import threading
import time

import numpy as np
import pytest
import zmq

from kit.online import dataplane, sharedmem
from kit.online.dataplane import (
    CHUNK,
    END,
    KEPT,
    START,
    Endpoint,
    MalformedMessage,
    Orphaned,
    Receiver,
    Sender,
    Stopped,
    Unreachable,
    decode,
    encode,
    kept_connection,
    new_epoch,
    pending_bound,
)


def test_a_chunk_survives_the_wire_as_views_of_the_frames():
    fields = np.arange(3 * 4 * 5, dtype=np.float32).reshape(3, 4, 5)
    frames = encode(CHUNK, 7, 12, 2, 99, steps=[4, 5, 6], times=[0.4, 0.5, 0.6], fields=fields, started=1.5, made=2.5)
    assert frames[1] is fields  # sent as is: zmq copies nothing
    message = decode([frames[0], fields.tobytes()])
    assert (message.kind, message.epoch, message.sim_id, message.attempt, message.run) == (CHUNK, 7, 12, 2, 99)
    assert message.count == 3 and (message.started, message.made) == (1.5, 2.5)
    np.testing.assert_array_equal(message.steps, [4, 5, 6])
    np.testing.assert_array_equal(message.times, [0.4, 0.5, 0.6])
    np.testing.assert_array_equal(message.fields, fields)
    start = decode(encode(START, 7, 12, 2, 99, info={"worker": "tcp://w:1"}))
    end = decode(encode(END, 7, 12, 2, 99, count=40))
    assert (start.kind, start.info, end.kind, end.count) == (START, {"worker": "tcp://w:1"}, END, 40)


@pytest.mark.parametrize(
    ("frames", "match"),
    [
        ([b"hello"], "not a kit message"),
        ([b"x" * 200, b""], "not a kit message"),
        (
            [encode(CHUNK, 1, 2, 1, 3, steps=[1], times=[0.0], fields=np.zeros((1, 4), np.float32))[0], b"\0" * 15],
            r"chunk of simulation 2: 15 bytes for 1 steps of float32 \(4,\)",
        ),  # fmt: skip
        ([b"a", b"b", b"c"], "1 or 2 frames, got 3"),
    ],
)
def test_malformed_messages_say_what_is_wrong(frames, match):
    with pytest.raises(MalformedMessage, match=match):
        decode(frames)


def test_the_receiver_drops_and_counts_foreign_messages_and_keeps_going():
    got = []
    receiver = Receiver("tcp://127.0.0.1:*", got.extend).start()
    context = zmq.Context()
    push = context.socket(zmq.PUSH)
    push.connect(receiver.address)
    push.send(b"GET / HTTP/1.1")
    push.send_multipart(encode(END, 1, 2, 1, 3, count=5))
    _until(lambda: got)
    push.close(linger=0)
    context.term()
    receiver.close()
    assert receiver.rejected == 1 and receiver.error is None
    assert [(m.kind, m.count) for m in got] == [(END, 5)]


def _until(condition, seconds: float = 60.0) -> None:
    """Wait until ``condition()`` holds (a generous deadline: the assertion after it decides)."""
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)


@pytest.mark.parametrize("shared", [False, True], ids=["tcp", "shared"])
@pytest.mark.parametrize("message_bytes", [1 << 12, 1 << 16, 1 << 20])
def test_a_study_that_stops_reading_blocks_its_sender_within_the_stated_bound(message_bytes, shared):
    release, got = threading.Event(), []

    def deliver(messages):
        got.extend((m.kind, m.steps, None if m.fields is None else m.fields.copy(), m.count) for m in messages)
        release.wait()  # the study has no room: it stops reading

    epoch = new_epoch()
    receiver = Receiver("tcp://127.0.0.1:*", deliver, queue_size=2, epoch=epoch if shared else None).start()
    assert bool(receiver.shared) == shared
    endpoint = Endpoint(receiver.address, "test", epoch, queue_size=2, shared=receiver.shared)
    sent = []

    def produce():
        with Sender(endpoint, 0, 1) as sender:
            for step in range(1, 401):
                fields = sender.fields((1, message_bytes // 4))
                fields[:] = step
                sender.chunk([step], [0.0], fields, 0.0, 0.0)
                sent.append(step)
            sender.end(400)

    producer = threading.Thread(target=produce)
    producer.start()
    stalled, last = 0, -1
    while stalled < 3:  # the count stayed put for a while: the sender is blocked
        stalled = stalled + 1 if len(sent) == last else 0
        last = len(sent)
        time.sleep(0.3)
    assert len(sent) < 400
    assert len(sent) * message_bytes <= pending_bound(message_bytes, 2, shared=shared)
    release.set()
    producer.join()
    _until(lambda: len(got) == 401)
    receiver.close()
    assert [steps[0] for _, steps, _, _ in got[:-1]] == list(range(1, 401))  # in order, none lost
    assert all((fields == steps[0]).all() for _, steps, fields, _ in got[:-1])  # no slot reused too early
    assert got[-1][0] == END and got[-1][3] == 400


def _closed_port_address() -> str:
    context = zmq.Context()
    socket = context.socket(zmq.PULL)
    port = socket.bind_to_random_port("tcp://127.0.0.1")
    socket.close(linger=0)
    context.term()
    return f"tcp://127.0.0.1:{port}"


def test_a_sender_that_cannot_reach_the_study_names_the_address():
    address = _closed_port_address()
    endpoint = Endpoint(address, "test", 1, connect_timeout=1.0, poll=0.2)
    expected = rf"simulation 3 \(attempt 2\) .* could not connect to the study's data address {address} within 1 s"
    with pytest.raises(Unreachable, match=expected), Sender(endpoint, 3, 2) as sender:
        sender.start("worker")


@pytest.mark.parametrize("shared", [False, True], ids=["tcp", "shared"])
@pytest.mark.parametrize("how", ["killed", "stopped"])
def test_a_sender_that_lost_its_study_gives_up(how, shared):
    epoch = new_epoch()
    receiver = Receiver("tcp://127.0.0.1:*", lambda messages: None, epoch=epoch if shared else None).start()
    endpoint = Endpoint(receiver.address, "test", epoch, send_timeout=1.0, poll=0.2, shared=receiver.shared)
    error = Orphaned if how == "killed" else Stopped
    with pytest.raises(error, match=receiver.address), Sender(endpoint, 0, 1, stopped=lambda: how == "stopped") as s:
        s.start("worker")
        receiver.close()  # the study is gone: its socket with it (and its marker: rings made before it stay)
        for step in range(1, 10_000):
            s.chunk([step], [0.0], s.fields((1, 1 << 14)), 0.0, 0.0)


def test_an_unreachable_study_fails_the_simulation_task_naming_the_address(cluster_client):
    from kit.online.producer import simulate
    from kit.simulators import Heat2D

    address = _closed_port_address()
    endpoint = Endpoint(address, "test", 1, connect_timeout=1.0, poll=0.2)
    sim = Heat2D(n=8, steps=4)
    future = cluster_client.submit(simulate, sim, endpoint, [300.0] * 5, 0, 0, 1, 2, pure=False)
    with pytest.raises(Unreachable, match=address):
        future.result(timeout=120)


def test_a_thread_keeps_one_connection_per_study_epoch_across_simulations_and_closes_the_oldest():
    got = []
    receiver = Receiver("tcp://127.0.0.1:*", got.extend).start()
    endpoints = [Endpoint(receiver.address, "test", epoch) for epoch in range(1, KEPT + 2)]

    def simulate(endpoint, sim_id):
        with Sender(endpoint, sim_id, 1, keep=True) as sender:
            sender.chunk([1], [0.0], np.full((1, 3), sim_id, np.float32), 0.0, 0.0)
            sender.end(1)
            return sender.connection

    first, second = simulate(endpoints[0], 0), simulate(endpoints[0], 1)
    assert first is second and not first.socket.closed  # the second simulation reused the first's socket
    for sim_id, endpoint in enumerate(endpoints[1:], start=2):
        simulate(endpoint, sim_id)
    assert first.socket.closed  # past KEPT study epochs, the oldest connection closed
    assert kept_connection(endpoints[-1]) is not first
    _until(lambda: len(got) == 2 * (KEPT + 2))
    receiver.close()
    chunks = [(m.epoch, m.sim_id, float(m.fields[0, 0])) for m in got if m.kind == CHUNK]
    assert sorted(chunks) == [(1, 0, 0.0), (1, 1, 1.0)] + [(e, e, float(e)) for e in range(2, KEPT + 2)]
    for endpoint in endpoints:
        dataplane._forget(endpoint)


def test_a_kept_connection_to_a_lost_study_is_closed_and_not_reused():
    receiver = Receiver("tcp://127.0.0.1:*", lambda messages: None).start()
    endpoint = Endpoint(receiver.address, "test", 1, send_timeout=1.0, poll=0.2)
    with pytest.raises(Orphaned), Sender(endpoint, 0, 1, keep=True) as sender:
        sender.start("worker")
        lost = sender.connection
        receiver.close()
        for step in range(1, 10_000):
            sender.chunk([step], [0.0], np.ones((1, 1 << 14), np.float32), 0.0, 0.0)
    assert lost.socket.closed and kept_connection(endpoint) is not lost
    dataplane._forget(endpoint)


def _files(epoch: int) -> list[str]:
    return [name for name in os.listdir(sharedmem.DIRECTORY) if name.startswith(sharedmem.prefix(epoch))]


needs_shared_memory = pytest.mark.skipif(not os.path.isdir(sharedmem.DIRECTORY), reason="no /dev/shm here")


@needs_shared_memory
def test_fields_made_in_shared_memory_arrive_and_their_slots_come_back():
    got, epoch = [], new_epoch()

    def deliver(messages):  # copies what it keeps: the slots are given back once it returns
        got.extend((m.steps[0], m.fields.copy(), m.slot) for m in messages if m.kind == CHUNK)

    receiver = Receiver("tcp://127.0.0.1:*", deliver, epoch=epoch).start()
    endpoint = Endpoint(receiver.address, "test", epoch, queue_size=2, shared=receiver.shared)
    with Sender(endpoint, 0, 1) as sender:
        for step in range(1, 21):
            fields = sender.fields((2, 8))
            fields[:] = step
            sender.chunk([step, step], [0.0, 0.0], fields, 0.0, 0.0)
        ring = sender.connection.ring
        sender.end(40)
        _until(lambda: len(got) == 20)
        assert not os.path.exists(ring.path)  # the study mapped it and removed its name: nothing left behind
    receiver.close()
    assert [step for step, _, _ in got] == list(range(1, 21))
    assert all((fields == step).all() and fields.shape == (2, 8) for step, fields, _ in got)
    assert {slot for _, _, (name, slot) in got} <= set(range(endpoint.queue_size + 2))  # slots reused
    assert len({name for _, _, (name, _) in got}) == 1 and _files(epoch) == []


@needs_shared_memory
def test_fields_too_large_for_the_ring_and_hosts_without_the_marker_go_over_the_socket():
    got, epoch = [], new_epoch()
    receiver = Receiver("tcp://127.0.0.1:*", got.extend, epoch=epoch).start()
    shared = Endpoint(receiver.address, "test", epoch, shared=receiver.shared)
    elsewhere = Endpoint(receiver.address, "test", epoch, shared=receiver.shared + "-not-here")
    with Sender(shared, 0, 1) as near, Sender(elsewhere, 1, 1) as far:
        for sender, size in ((near, 4), (near, 8), (far, 4)):  # the ring's slots hold 4 values: 8 do not fit
            fields = sender.fields((1, size))
            fields[:] = size
            sender.chunk([1], [0.0], fields, 0.0, 0.0)
        _until(lambda: len(got) == 3)
        assert far.connection.ring is None
    slots = sorted((m.sim_id, m.fields.size, m.slot is not None) for m in got)
    receiver.close()
    assert slots == [(0, 4, True), (0, 8, False), (1, 4, False)]


@needs_shared_memory
def test_a_chunk_of_another_epoch_in_shared_memory_is_not_read_and_foreign_rings_are_refused():
    got, old, epoch = [], new_epoch(), new_epoch()
    earlier = Receiver("tcp://127.0.0.1:*", lambda ms: None, epoch=old)  # its marker: its epoch's senders share memory
    receiver = Receiver("tcp://127.0.0.1:*", got.extend, epoch=epoch).start()
    with Sender(Endpoint(receiver.address, "test", old, shared=earlier.shared), 0, 1) as stale:
        stale.chunk([1, 2], [0.0, 0.0], stale.fields((2, 3)), 0.0, 0.0)
        _until(lambda: len(got) == 1)
        assert (got[0].epoch, got[0].count, got[0].fields) == (old, 2, None) and receiver.segments.rings == {}
        ring = stale.connection.ring
        _until(lambda: ring.spare() and len(ring.free) == ring.slots)  # its slot given back all the same
        assert len(ring.free) == ring.slots
    frames = encode(CHUNK, epoch, 0, 1, 1, steps=[1], times=[0.0], fields=np.ones((1, 2), np.float32),
                    slot=("../etc/passwd", 0, 0))  # fmt: skip
    with pytest.raises(MalformedMessage, match="not a ring of this study epoch"):
        decode(frames, receiver.segments)
    receiver.close()
    earlier.close()
    assert _files(old) == [] and _files(epoch) == []


@needs_shared_memory
def test_the_files_of_a_sender_killed_before_its_first_message_are_removed_with_the_study():
    epoch = new_epoch()
    receiver = Receiver("tcp://127.0.0.1:*", lambda ms: None, epoch=epoch)
    ring = sharedmem.Ring(epoch, 1 << 12, 4)  # its sender never sent from it, nor closed it
    assert len(_files(epoch)) == 3  # the marker, the ring and its socket
    receiver.close()
    assert _files(epoch) == []
    ring.close()


def test_the_producer_keeps_the_whole_chunks_before_the_first_non_finite_step():
    from kit.online.producer import _checked

    fields, steps = np.full((6, 4), np.finfo(np.float32).max, np.float32), np.arange(7, 13)
    assert _checked(fields, steps, 0, 6, 2, 2) == (6, None)  # finite, though a float32 sum would overflow
    fields[3, 2], fields[5, 0] = np.nan, np.inf
    kept, error = _checked(fields, steps, 2, 6, 2, 2)  # chunks of 2 steps: rows 2-3 hold the first bad one
    assert kept == 2 and str(error) == "simulation 2: non-finite value in the field at step 10"


@needs_shared_memory
def test_a_sender_closed_before_the_study_read_its_messages_loses_none():
    got, epoch = [], new_epoch()
    receiver = Receiver("tcp://127.0.0.1:*", lambda ms: got.extend(m.fields.copy() for m in ms), epoch=epoch)
    with Sender(Endpoint(receiver.address, "test", epoch, shared=receiver.shared), 0, 1) as sender:
        for step in range(3):
            fields = sender.fields((1, 4))
            fields[:] = step
            sender.chunk([step], [0.0], fields, 0.0, 0.0)
    receiver.start()  # the sender and its connection are gone: the ring's file waited for the study
    _until(lambda: len(got) == 3)
    receiver.close()
    assert [float(fields[0, 0]) for fields in got] == [0.0, 1.0, 2.0] and receiver.rejected == 0
    assert _files(epoch) == []


@needs_shared_memory
def test_a_rejected_message_gives_its_slot_back():
    epoch = new_epoch()
    receiver = Receiver("tcp://127.0.0.1:*", lambda ms: None, epoch=epoch).start()
    ring = sharedmem.Ring(epoch, 64, 4)
    ring.free = []  # every slot taken; slot 3 for a message that says 2 steps of 4 values and holds 1
    push = zmq.Context.instance().socket(zmq.PUSH)
    push.connect(receiver.address)
    fields = ring.view(3, (1, 4))
    push.send_multipart(encode(CHUNK, epoch, 0, 1, 1, steps=[1, 2], times=[0.0, 0.0], fields=fields,
                               slot=(ring.name, 3, 3 * 64)))  # fmt: skip
    _until(lambda: receiver.rejected == 1)
    assert ring.take(5.0) == 3
    push.close(linger=0)
    ring.close()
    receiver.close()


@needs_shared_memory
def test_a_sender_waiting_for_a_slot_stops_when_the_study_gives_up_on_it():
    release, epoch = threading.Event(), new_epoch()
    receiver = Receiver("tcp://127.0.0.1:*", lambda ms: release.wait(), epoch=epoch).start()  # holds everything
    endpoint = Endpoint(receiver.address, "test", epoch, poll=0.2, shared=receiver.shared)
    with pytest.raises(Stopped), Sender(endpoint, 0, 1, stopped=lambda: True) as sender:
        for step in range(endpoint.queue_size + 3):  # more messages than slots
            sender.chunk([step], [0.0], sender.fields((1, 4)), 0.0, 0.0)
    release.set()
    receiver.close()


@needs_shared_memory
def test_a_ring_that_cannot_be_made_sends_over_the_socket():
    got, epoch = [], new_epoch()
    receiver = Receiver("tcp://127.0.0.1:*", got.extend, epoch=epoch).start()
    with Sender(Endpoint(receiver.address, "test", epoch, shared=receiver.shared), 0, 1) as sender:
        assert sender.connection.ring_for(1 << 50) is None  # more than /dev/shm holds: posix_fallocate refuses
        assert not sender.connection.shared and sender.connection.ring_for(16) is None  # not tried again
        fields = sender.fields((1, 4))
        fields[:] = 7.0
        sender.chunk([1], [0.0], fields, 0.0, 0.0)
        _until(lambda: len(got) == 1)
    assert got[0].slot is None and float(got[0].fields[0, 0]) == 7.0
    receiver.close()
    assert _files(epoch) == []


@needs_shared_memory
def test_a_new_study_removes_the_files_of_epochs_whose_study_process_is_gone():
    live, reused, foreign, empty, epoch = (new_epoch() for _ in range(5))
    me = sharedmem._process(os.getpid())
    namespace, pid, started = me.split()
    for name, text in ((live, me), (reused, f"{namespace} {pid} {int(started) + 1}"),
                       (foreign, f"0 {pid} {started}"), (empty, "")):  # fmt: skip
        with open(os.path.join(sharedmem.DIRECTORY, sharedmem.prefix(name)), "w") as marker:
            marker.write(text)  # a study of this process; one killed whose pid was reused; another namespace's
        open(os.path.join(sharedmem.DIRECTORY, f"{sharedmem.prefix(name)}-{'0' * 16}.free"), "w").close()
    receiver = Receiver("tcp://127.0.0.1:*", lambda ms: None, epoch=epoch)
    try:
        assert len(_files(live)) == len(_files(foreign)) == len(_files(empty)) == 2 and _files(reused) == []
    finally:
        receiver.close()
        for name in (live, foreign, empty):
            sharedmem.clean(name)
