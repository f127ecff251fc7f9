import pickle

import numpy as np
import pytest

from kit.online.buffers import BUFFERS, FIFO, FIRO, Reservoir, Sample, make_buffer

POLICIES = sorted(BUFFERS)


def sample(sim_id, step=0):
    return Sample(sim_id, step, np.full(3, float(sim_id)), np.full((2, 2), float(step)))


def fill(buffer, start, count):
    """Put samples ``start..start+count-1`` (sim_id = number); the number of those stored."""
    return sum(buffer.put(sample(i)) for i in range(start, start + count))


def keys(batch):
    return [s.sim_id for s in batch]


def held(buffer):
    return [sim_id for sim_id, *_ in buffer.state_dict()["samples"]]


def check_accounting(buffer):
    m = buffer.metrics()
    assert m["put"] == m["trained"] + m["evicted_unseen"] + m["held_unseen"]
    assert m["evicted_unseen"] == 0
    assert m["reuse"] == m["draws"] - m["trained"] >= 0
    hist = buffer.uses_histogram()
    assert hist.sum() == m["put"]
    assert (np.arange(len(hist)) * hist).sum() == m["draws"]
    never_used = hist[0] if len(hist) else 0
    assert m["put"] - never_used == m["trained"]


def test_sample_key_and_frozen():
    s = sample(3, 7)
    assert s.key == (3, 7)
    with pytest.raises(AttributeError):
        s.step = 1


def test_fifo_draws_oldest_first_and_removes_them():
    buffer = FIFO(6, watermark=4)
    assert fill(buffer, 0, 6) == 6
    assert keys(buffer.get_batch(4)) == [0, 1, 2, 3]
    fill(buffer, 6, 2)
    assert keys(buffer.get_batch(3)) == [4, 5, 6]
    assert len(buffer) == 1
    assert buffer.uses_histogram().tolist() == [1, 7]


@pytest.mark.parametrize("name", POLICIES)
def test_same_seed_same_batches_and_other_seed_differs(name):
    def run(seed):
        buffer = make_buffer(name, 32, watermark=8, seed=seed)
        fill(buffer, 0, 32)
        return [keys(buffer.get_batch(8)) for _ in range(3)]

    assert run(5) == run(5)
    if name != "fifo":
        assert run(5) != run(6)


def test_firo_draws_without_replacement_and_covers_everything():
    buffer = FIRO(20, watermark=5, seed=1)
    fill(buffer, 0, 20)
    drawn = [k for _ in range(4) for k in keys(buffer.get_batch(5))]
    assert sorted(drawn) == list(range(20)) and drawn != list(range(20))
    assert len(buffer) == 0 and buffer.uses_histogram().tolist() == [0, 20]


def test_reservoir_keeps_and_reuses_samples():
    buffer = Reservoir(10, watermark=10, seed=2)
    fill(buffer, 0, 10)
    for _ in range(5):
        batch = keys(buffer.get_batch(4))
        assert len(set(batch)) == 4  # no replacement within a batch
    assert len(buffer) == 10
    m = buffer.metrics()
    assert m["draws"] == 20 and m["reuse"] == 20 - m["trained"] > 0
    hist = buffer.uses_histogram()
    assert hist.sum() == 10 and (np.arange(len(hist)) * hist).sum() == 20


def test_reservoir_refuses_put_when_all_held_are_unseen_and_evicts_only_seen():
    buffer = Reservoir(4, watermark=2, seed=3)
    assert fill(buffer, 0, 4) == 4
    assert not buffer.can_put() and not buffer.put(sample(99))
    assert buffer.metrics()["refused"] == 1 and len(buffer) == 4
    seen = set(keys(buffer.get_batch(2)))
    assert buffer.can_put() and buffer.put(sample(4))
    now = set(held(buffer))
    assert 4 in now and len(now & seen) == 1 and {0, 1, 2, 3} - seen <= now
    assert buffer.put(sample(5)) and not buffer.put(sample(6))  # both seen ones replaced, now all unseen
    assert buffer.uses_histogram().tolist() == [4, 2]


@pytest.mark.parametrize("name", ["fifo", "firo"])
def test_fifo_and_firo_refuse_put_when_full(name):
    buffer = make_buffer(name, 3)
    assert fill(buffer, 0, 5) == 3
    assert not buffer.can_put()
    assert buffer.metrics()["refused"] == 2


@pytest.mark.parametrize("name", POLICIES)
def test_watermark_gates_training(name):
    buffer = make_buffer(name, 10, watermark=4, seed=0)
    fill(buffer, 0, 3)
    assert not buffer.ready()
    fill(buffer, 3, 1)
    assert buffer.ready()
    assert make_buffer(name, 9).watermark == 4 and make_buffer(name, 1).watermark == 1


@pytest.mark.parametrize("name", POLICIES)
def test_randomized_stream_then_drain_trains_every_sample(name):
    generator = np.random.default_rng(7)
    buffer = make_buffer(name, 16, watermark=8, seed=11)
    buffer.check_batch_size(4)
    produced = 0
    for _ in range(300):
        if generator.random() < 0.6:
            if buffer.put(sample(produced)):
                produced += 1
            else:
                assert not buffer.can_put()
        elif buffer.ready():
            assert len(buffer.get_batch(4)) == 4
        check_accounting(buffer)
    buffer.close()
    assert not buffer.can_put()
    with pytest.raises(RuntimeError, match="closed"):
        buffer.put(sample(-1))
    while buffer.ready():
        assert 1 <= len(buffer.get_batch(4)) <= 4
        check_accounting(buffer)
    m = buffer.metrics()
    assert m["put"] == produced > 50 and m["trained"] == produced and m["held_unseen"] == 0
    assert len(buffer) == (0 if name != "reservoir" else 16)


@pytest.mark.parametrize("name", ["fifo", "firo"])
def test_drain_returns_short_last_batch(name):
    buffer = make_buffer(name, 8, watermark=4, seed=0)
    fill(buffer, 0, 5)
    buffer.get_batch(4)
    with pytest.raises(ValueError, match="needs 4 samples, the buffer holds 1"):
        buffer.get_batch(4)
    buffer.close()
    assert buffer.ready() and len(buffer.get_batch(4)) == 1
    assert not buffer.ready()
    with pytest.raises(ValueError, match="holds 0"):
        buffer.get_batch(4)


def test_reservoir_drain_takes_unseen_first():
    buffer = Reservoir(10, watermark=5, seed=4)
    fill(buffer, 0, 10)
    first = set(keys(buffer.get_batch(6)))
    buffer.close()
    batch = keys(buffer.get_batch(6))
    assert set(range(10)) - first <= set(batch) and len(set(batch)) == 6
    assert not buffer.ready() and buffer.metrics()["trained"] == 10


def test_reservoir_closed_below_batch_size_returns_what_is_held():
    buffer = Reservoir(10, watermark=5, seed=0)
    fill(buffer, 0, 3)
    buffer.close()
    assert buffer.ready() and sorted(keys(buffer.get_batch(4))) == [0, 1, 2]
    assert not buffer.ready()


def test_ages_are_counted_in_batches():
    buffer = Reservoir(10, watermark=2, seed=0)
    fill(buffer, 0, 2)
    assert buffer.metrics()["age_max"] == 0
    buffer.get_batch(2)
    buffer.get_batch(2)
    fill(buffer, 2, 2)
    m = buffer.metrics()
    assert (m["age_mean"], m["age_max"], m["batches"], m["occupancy"]) == (1.0, 2, 2, 0.4)
    empty = FIFO(4).metrics()
    assert (empty["age_mean"], empty["age_max"], empty["occupancy"]) == (0.0, 0, 0.0)


@pytest.mark.parametrize("name", POLICIES)
def test_state_dict_round_trip_gives_identical_future(name):
    buffer = make_buffer(name, 12, watermark=4, seed=9)
    fill(buffer, 0, 12)
    buffer.get_batch(4)
    fill(buffer, 12, 3)
    state = pickle.loads(pickle.dumps(buffer.state_dict()))
    restored = make_buffer(name, 12, seed=123)
    restored.load_state_dict(state)
    assert restored.metrics() == buffer.metrics() and restored.watermark == 4
    assert np.array_equal(restored.uses_histogram(), buffer.uses_histogram())
    for step in range(6):
        fill(buffer, 100 + 10 * step, 4)
        fill(restored, 100 + 10 * step, 4)
        assert keys(restored.get_batch(4)) == keys(buffer.get_batch(4))
    assert restored.metrics() == buffer.metrics()
    assert held(restored) == held(buffer)


def test_load_state_dict_rejects_other_policy_or_capacity():
    state = FIFO(4).state_dict()
    with pytest.raises(ValueError, match="policy 'fifo'"):
        FIRO(4).load_state_dict(state)
    with pytest.raises(ValueError, match="capacity 4, this one has 5"):
        FIFO(5).load_state_dict(state)


def test_registry_miss_lists_names():
    with pytest.raises(ValueError, match="unknown buffer 'lifo'; valid names are 'fifo', 'firo', 'reservoir'"):
        make_buffer("lifo", 4)
    assert type(make_buffer("firo", 4)) is FIRO


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"capacity": 0}, "capacity must be an int in \\[1, .*got 0"),
        ({"capacity": 2.5}, "capacity .* got 2.5"),
        ({"capacity": True}, "capacity .* got True"),
        ({"capacity": 4, "watermark": 0}, "watermark must be an int in \\[1, 4\\], got 0"),
        ({"capacity": 4, "watermark": 5}, "watermark must be an int in \\[1, 4\\], got 5 \\(capacity is 4\\)"),
    ],
)
@pytest.mark.parametrize("name", POLICIES)
def test_bad_constructor_arguments(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_buffer(name, **kwargs)


@pytest.mark.parametrize("name", POLICIES)
def test_batch_size_checks(name):
    buffer = make_buffer(name, 8, watermark=4)
    buffer.check_batch_size(4)
    with pytest.raises(ValueError, match="buffer capacity 8 is below the batch size 9"):
        buffer.check_batch_size(9)
    with pytest.raises(ValueError, match="watermark 4 is below the batch size 5"):
        buffer.check_batch_size(5)
    with pytest.raises(ValueError, match="batch_size must be an int in \\[1, .*got 0"):
        buffer.check_batch_size(0)
    fill(buffer, 0, 8)
    for bad in (0, 9, 2.0):
        with pytest.raises(ValueError, match=f"batch_size must be an int in \\[1, 8\\], got {bad}"):
            buffer.get_batch(bad)
