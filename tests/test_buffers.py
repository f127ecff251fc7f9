import pickle

import numpy as np
import pytest

from kit.online.buffers import BUFFERS, FIFO, FIRO, Reservoir, make_buffer

POLICIES = sorted(BUFFERS)


def fill(buffer, start, count):
    """Put samples ``start..start+count-1`` (sim_id = number, x and y filled with it); the number stored."""
    ids = np.arange(start, start + count)
    x = np.repeat(ids[:, None], 3, axis=1).astype(np.float32)
    y = np.repeat(ids[:, None, None], 2, axis=1).repeat(2, axis=2).astype(np.float32)
    return buffer.put(x, y, sim_id=ids, step=ids + 1000)


def keys(batch):
    assert (batch.x[:, 0] == batch.sim_id).all() and (batch.y[:, 1, 1] == batch.sim_id).all()  # rows gathered whole
    assert (batch.step == batch.sim_id + 1000).all()
    return batch.sim_id.tolist()


def held(buffer):
    return keys(buffer.held())


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


def test_put_stores_what_fits_and_counts_the_rest_refused():
    buffer = FIFO(5, watermark=2)
    assert fill(buffer, 0, 3) == 3 and fill(buffer, 3, 4) == 2
    assert held(buffer) == [0, 1, 2, 3, 4] and buffer.metrics()["refused"] == 2
    assert buffer.room() == 0 and not buffer.can_put()


def test_samples_of_another_shape_are_an_error_naming_both():
    buffer = FIRO(4)
    fill(buffer, 0, 1)
    with pytest.raises(
        ValueError, match=r"samples of shape x \(3,\), y \(3, 3\) do not fit a buffer of x \(3,\), y \(2, 2\)"
    ):
        buffer.put(np.zeros((1, 3)), np.zeros((1, 3, 3)), 0, 0)
    with pytest.raises(ValueError, match="x has 2, y has 1"):
        buffer.put(np.zeros((2, 3)), np.zeros((1, 2, 2)), 0, 0)


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
    assert not buffer.can_put() and fill(buffer, 99, 1) == 0
    assert buffer.metrics()["refused"] == 1 and len(buffer) == 4
    seen = set(keys(buffer.get_batch(2)))
    assert buffer.can_put() and fill(buffer, 4, 1) == 1
    now = set(held(buffer))
    assert 4 in now and len(now & seen) == 1 and {0, 1, 2, 3} - seen <= now
    assert fill(buffer, 5, 2) == 1 and fill(buffer, 6, 1) == 0  # both seen ones replaced, now all unseen
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
            k = int(generator.integers(1, 4))
            stored = fill(buffer, produced, k)
            produced += stored
            if stored < k:
                assert not buffer.can_put()
        elif buffer.ready():
            assert len(buffer.get_batch(4)) == 4
        check_accounting(buffer)
    buffer.close()
    assert not buffer.can_put()
    with pytest.raises(RuntimeError, match="closed"):
        fill(buffer, -1, 1)
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


@pytest.mark.parametrize("name", POLICIES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_each_policy_matches_a_reference_model_step_by_step(name, seed):
    """Random puts of 1-5 samples and draws of 1-4, checked after every operation against plain Python
    bookkeeping: which samples are held, their uses and ages, what FIFO draws, what a reservoir evicts."""
    generator = np.random.default_rng(seed)
    buffer = make_buffer(name, 12, watermark=4, seed=seed)
    uses, birth, order, next_id, clock = {}, {}, [], 0, 0  # order: held ids oldest first
    for op in range(400):
        if op == 300:
            buffer.close()
        if not buffer.closed and generator.random() < 0.55:
            k = int(generator.integers(1, 6))
            stored = fill(buffer, next_id, k)
            room = 12 - (len(order) if name != "reservoir" else sum(u == 0 for u in uses.values()))
            assert stored == min(k, room)
            new = list(range(next_id, next_id + stored))
            next_id += k
            after = set(held(buffer))
            evicted = set(order) - after
            assert all(uses[i] > 0 for i in evicted), "an unseen sample was evicted"
            assert len(evicted) == max(0, len(order) + stored - 12)
            order = [i for i in order if i not in evicted] + new
            for i in evicted:
                del uses[i], birth[i]
            uses.update(dict.fromkeys(new, 0))
            birth.update(dict.fromkeys(new, clock))
        elif buffer.ready():
            k = int(generator.integers(1, 5))
            if len(buffer) < k and not buffer.closed:
                continue
            drawn = keys(buffer.get_batch(k))
            assert len(drawn) == min(k, len(order)) and len(set(drawn)) == len(drawn)
            if name == "fifo":
                assert drawn == order[: len(drawn)]
            if name == "reservoir" and buffer.closed:
                unseen = [i for i in order if uses[i] == 0]
                assert set(unseen[: len(drawn)]) <= set(drawn) or set(drawn) <= set(unseen)
            for i in drawn:
                uses[i] += 1
            if name != "reservoir":
                order = [i for i in order if i not in drawn]
                for i in drawn:
                    del uses[i], birth[i]
            clock += 1
        state = buffer.state_dict()
        assert sorted(state["sim_id"].tolist()) == sorted(order)
        assert dict(zip(state["sim_id"].tolist(), state["uses"].tolist(), strict=True)) == uses
        m = buffer.metrics()
        ages = [clock - birth[i] for i in order]
        assert m["held"] == len(order) and m["held_unseen"] == sum(u == 0 for u in uses.values())
        assert m["age_mean"] == pytest.approx(np.mean(ages) if ages else 0.0)
        assert m["age_max"] == (max(ages) if ages else 0)
        check_accounting(buffer)


def test_batches_gather_into_given_arrays():
    buffer = FIRO(8, watermark=4, seed=0)
    fill(buffer, 0, 8)
    out = (np.full((6, 3), -1, np.float32), np.full((6, 2, 2), -1, np.float32))
    batch = buffer.get_batch(4, out=out)
    assert np.shares_memory(batch.x, out[0]) and np.shares_memory(batch.y, out[1])
    assert keys(batch) == out[0][:4, 0].tolist() and (out[0][4:] == -1).all()
