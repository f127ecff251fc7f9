"""Several trainers: data-parallel ranks on real dask workers, meeting through a real torch.distributed store."""

import contextlib
import os
import pickle
import sys
import threading
import time

import cloudpickle
import numpy as np
import pytest
import torch
import torch.distributed as dist

from kit.cluster import connect
from kit.online import OnlineStudy, StudyError, ValidationSet, make_buffer
from kit.online.draws import RemoteDraws, SamplerService
from kit.online.ledger import Simulation
from kit.online.ranks import Group, Rendezvous
from kit.online.resplit import merge_ledgers, share, split
from kit.online.trainer import Trainer, seeded_model
from kit.sampling import lhs, sobol
from kit.simulators import Heat2D

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers run this module's functions


@pytest.fixture(scope="module")
def client():
    """Four single-thread workers: two host the ranks, two run the simulations."""
    with connect(None, n_workers=4) as client:
        yield client


def net():
    return seeded_model(lambda: torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.Tanh(), torch.nn.Linear(16, 4)), 7)


def batches(k=3, size=8):
    gen = np.random.default_rng(0)
    return [(gen.random((size, 3), dtype=np.float32), gen.random((size, 4), dtype=np.float32)) for _ in range(k)]


def steps_on_rank(rendezvous, rank):
    """Rank ``rank``'s half of every batch, trained data-parallel; the parameters after."""
    group = Group(rendezvous, rank)
    try:
        trainer = Trainer(net(), lr=1e-2)
        trainer.distribute()
        half = len(batches()[0][0]) // rendezvous.world
        for x, y in batches():
            trainer.step(x[rank * half : (rank + 1) * half], y[rank * half : (rank + 1) * half])
        return [p.detach().clone() for p in trainer.model.parameters()]
    finally:
        group.close()


def test_two_ranks_take_the_steps_one_process_takes_with_the_double_batch(client):
    store = dist.TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False)
    rendezvous = Rendezvous("127.0.0.1", store.port, "equivalence", 2, "gloo", 60.0, "")
    workers = list(client.scheduler_info(n_workers=-1)["workers"])[:2]
    futures = [
        client.submit(steps_on_rank, rendezvous, rank, workers=[w], allow_other_workers=False, pure=False)
        for rank, w in enumerate(workers)
    ]
    ranks = client.gather(futures)
    single = Trainer(net(), lr=1e-2)
    for x, y in batches():
        single.step(x, y)
    for got0, got1, expected in zip(*ranks, single.model.parameters(), strict=True):
        assert torch.equal(got0, got1)  # one model on every rank
        torch.testing.assert_close(got0, expected.detach(), rtol=1e-5, atol=1e-6)  # float reduction order


def test_a_study_on_two_ranks_trains_every_step_once(client):
    simulator = Heat2D(n=12, steps=10)
    points = sobol(simulator.space, 8, seed=1)
    study = OnlineStudy(simulator, n_simulations=5, sampler=points, buffer="fifo", capacity=64, watermark=8,
                        batch_size=8, chunk_steps=2, seed=5, client=client, trainers=2)  # fmt: skip
    result = study.run(progress=False)
    # every step trained on one rank: the rank with 2 simulations steps with empty batches until the other is done
    assert result.accounting == {"produced": 50, "trained": 50, "evicted_unseen": 0, "balanced": 1}
    sims = result.simulations
    assert list(sims.simulation.values) == [0, 1, 2, 3, 4] and set(sims.status.values) == {"ok"}
    np.testing.assert_array_equal(sims.params.values, points[:5])  # simulation i got the sampler's point i
    ranks = result.ranks.isel(batch=-1)
    assert sorted(ranks.produced.values.tolist()) == [20, 30]  # shares of 2 and 3 simulations
    assert sorted(ranks.trained.values.tolist()) == [20, 30]


def test_a_callback_sees_the_ranks_so_far_and_stop_ends_them(client, tmp_path):
    from kit.simulators.faulty import Faulty

    # Steps after the fourth come every 0.3 s: the 8 simulations would take a minute, the stop a second.
    simulator = Faulty(Heat2D(n=12, steps=40), "slow", tmp_path / "m", at_step=4, times=None, hang_seconds=0.3)
    points = sobol(simulator.space, 8, seed=1)
    study = OnlineStudy(simulator, n_simulations=8, sampler=points, buffer="fifo", capacity=64, watermark=4,
                        batch_size=4, chunk_steps=1, seed=5, client=client, trainers=2)  # fmt: skip
    seen = []

    def callback(result):
        seen.append(result)
        if len(seen) == 2:
            study.stop()

    result = study.run(progress=False, callback=callback, callback_every=2)
    assert [r.metrics.sizes["batch"] for r in seen[:2]] == [2, 4]  # gathered from both ranks every 2 batches
    np.testing.assert_array_equal(seen[1].metrics.loss.values, result.metrics.loss.values[:4])
    np.testing.assert_array_equal(seen[1].metrics.trained.values, result.metrics.trained.values[:4])
    assert set(seen[1].simulations.simulation.values) <= set(result.simulations.simulation.values)
    assert "cancelled" in result.simulations.status.values and result.accounting["balanced"] == 1


def test_a_study_on_two_ranks_records_a_trace_of_both(client, tmp_path):
    from kit.replay import load_trace
    from kit.replay.calibrate import fidelity

    simulator = Heat2D(n=8, steps=5)
    validation = ValidationSet.simulate(simulator, 2, seed=2, client=client)
    study = OnlineStudy(simulator, n_simulations=5, sampler=sobol(simulator.space, 8, seed=1), buffer="fifo",
                        capacity=64, watermark=8, batch_size=8, chunk_steps=2, seed=5, client=client, trainers=2,
                        validation=validation, validate_every=2, record=True)  # fmt: skip
    result = study.run(progress=False)
    trace = result.trace("two-ranks")
    chunks = [t for t in trace.tasks if t.component == "simulation"]
    batches = [t for t in trace.tasks if t.component == "training"]
    assert sum(t.output_bytes for t in chunks) == 5 * 5 * 8 * 8 * 4 and trace.attrs["ranks"] == 2
    steps = len(result.metrics.batch)
    assert sorted(t.host for t in batches) == ["client-0"] * steps + ["client-1"] * steps
    by_id = {t.id: t for t in trace.tasks}
    checks = [t for t in trace.tasks if t.component == "validation"]
    assert {t.host for t in checks} == {"client-0"} and len(checks) == result.validation.sizes["check_batch"]
    for batch in batches:  # each step after the previous step of both ranks (gradients all-reduced) and the
        number = int(batch.id[len("train") :].split("-r")[0])  # check rank 0 made after its step, if any
        if number > 1:
            first = f"validate{number - 1}" if f"validate{number - 1}" in by_id else f"train{number - 1}-r0"
            assert {first, f"train{number - 1}-r1"} <= set(batch.parents)
        chunk_hosts = {by_id[p].host for p in batch.parents if p.startswith("sim")}
        assert chunk_hosts <= set(client.scheduler_info()["workers"])
    used = [p for b in batches for p in b.parents if p.startswith("sim")]
    assert sorted(used) == sorted(t.id for t in chunks)  # each chunk first seen by one batch of one rank
    trace.save(tmp_path / "ranks.json")
    assert [t.id for t in load_trace(tmp_path / "ranks.json").tasks] == [t.id for t in trace.tasks]
    assert np.isfinite(float(fidelity(trace).makespan_error))


@pytest.mark.parametrize("then", [2, 1])
def test_sobol_maps_from_two_ranks_are_those_of_one_budget_through_a_checkpoint(client, tmp_path, then):
    from conftest import pick_freeze_fields

    from kit.sensitivity import FieldSobol, IterativeSobol

    simulator, path = Heat2D(n=8, steps=4), tmp_path / "study.ckpt"
    d = simulator.space.dim
    options = dict(n_simulations=4 * (d + 2), sampler="pick_freeze", capacity=64, watermark=8, batch_size=8,
                   chunk_steps=2, seed=5, client=client, checkpoint=path, checkpoint_every=1)  # fmt: skip
    first = OnlineStudy(simulator, trainers=2, max_batches=2, sensitivity=FieldSobol(d, (8, 8), [2, 4]), **options)
    first.run(progress=False)  # stops at batch 2; the checkpoint holds both ranks' maps merged
    saved = pickle.loads(path.read_bytes())["sensitivity"]
    assert FieldSobol(d, (8, 8), [2, 4]).load_state_dict(saved).n_groups <= 4
    maps = FieldSobol(d, (8, 8), [2, 4])
    result = OnlineStudy(simulator, trainers=then, sensitivity=maps, **options).run(progress=False)
    assert maps.n_groups == 4 and maps.pending == 0 and result.accounting["balanced"] == 1  # in the study's object
    for step in (2, 4):
        batch = IterativeSobol(d, (8, 8))
        batch.update(pick_freeze_fields(simulator, 5, 4, step=step))
        np.testing.assert_allclose(result.sensitivity.ST.sel(step=step), batch.total_order, atol=1e-10)
        np.testing.assert_allclose(result.sensitivity.S1.sel(step=step), batch.first_order, atol=1e-10)


@pytest.mark.parametrize("then", [1, 3])
def test_a_checkpoint_of_two_ranks_resumes_on_another_number_with_nothing_lost_or_trained_twice(client, tmp_path, then):
    simulator = Heat2D(n=12, steps=20)
    points = sobol(simulator.space, 8, seed=1)
    path = tmp_path / "study.ckpt"
    options = dict(n_simulations=6, sampler=points, buffer="fifo", capacity=24, watermark=8, batch_size=8,
                   chunk_steps=2, seed=5, client=client, checkpoint=path, checkpoint_every=2)  # fmt: skip
    first = OnlineStudy(simulator, trainers=2, max_batches=4, **options).run(progress=False)
    saved = pickle.loads(path.read_bytes())  # at batch 4, where the first run stopped
    assert saved["trainer"]["batches"] == 4 and len(saved["buffers"]) == len(saved["helds"]) == 2
    result = OnlineStudy(simulator, trainers=then, **options).run(progress=False)
    # FIFO trains every step once: 6 x 20, those held by either rank at the checkpoint included
    assert result.accounting["trained"] == 6 * simulator.steps and result.accounting["balanced"] == 1, result.accounting
    sims = result.simulations
    assert list(sims.simulation.values) == list(range(6)) and set(sims.status.values) <= {"ok", "retried"}
    assert (sims.steps_received == simulator.steps).all()
    np.testing.assert_array_equal(sims.params.values, points[:6])
    keys = list(zip(result.arrivals.simulation.values, result.arrivals.step.values, strict=True))
    assert len(keys) == len(set(keys)) == 6 * simulator.steps
    # the batches before the checkpoint are kept as they were
    np.testing.assert_array_equal(result.metrics.loss.values[:4], first.metrics.loss.values[:4])
    assert list(result.metrics.batch.values[:5]) == [1, 2, 3, 4, 5]


def saved_ranks(policy):
    """What two ranks save: buffers of 8 holding seen and unseen samples of simulations 0, 2 (rank 0) and 1, 3
    (rank 1), 3 steps of simulation 3 waiting for room on rank 1, and their ledgers."""
    buffers, helds, ledgers = [], [], []
    for rank in range(2):
        buffer = make_buffer(policy, 8, watermark=2, seed=rank)
        for sim in (rank, rank + 2):
            steps = np.arange(1, 6)
            buffer.put(np.full((5, 2), sim, np.float32), np.full((5, 3, 3), sim, np.float32), sim, steps)
            if len(buffer):
                buffer.get_batch(2)
        buffers.append(buffer.state_dict())
        helds.append(None if rank == 0 else [np.zeros((3, 2), np.float32), [np.ones((3, 3, 3), np.float32)], 3,
                                             np.array([6, 7, 8])])  # fmt: skip
        sims = {
            sim: Simulation(sim, np.zeros(2), sim, 8, status="ok" if sim < 2 else "running") for sim in (rank, rank + 2)
        }
        for sim in sims.values():
            sim.n_received = 8
        ledgers.append(
            {"simulations": sims, "ended": {"ok": 1}, "produced": 16 + rank, "discarded": {"duplicate": rank}}
        )
    return {"buffers": buffers, "helds": helds, "ledger": merge_ledgers(ledgers)}


def samples(state_or_parts):
    """(simulation, step, seen) of every sample held in buffers or waiting."""
    found = []
    for buffer, held in state_or_parts:
        held_here = zip(buffer["sim_id"], buffer["step"], buffer["uses"], strict=True)
        found += [(int(i), int(t), bool(u)) for i, t, u in held_here]
        if held is not None:
            waiting = zip(np.broadcast_to(held[2], len(held[3])), held[3], strict=True)
            found += [(int(i), int(t), False) for i, t in waiting]
    return sorted(found)


@pytest.mark.parametrize("policy", ["fifo", "firo", "reservoir"])
@pytest.mark.parametrize("world", [1, 2, 3])
def test_a_checkpoint_split_for_another_number_of_ranks_keeps_every_unseen_sample_once(policy, world):
    state = saved_ranks(policy)
    parts = split(state, world, 8, n_simulations=7)
    before = samples(zip(state["buffers"], state["helds"], strict=True))
    after = samples((part["buffer"], part["held"]) for part in parts)
    assert [s for s in after if not s[2]] == [s for s in before if not s[2]]  # every unseen one, once
    assert set(after) <= set(before) and all(len(part["buffer"]["sim_id"]) <= 8 for part in parts)
    for part in parts:  # each rank holds samples of its own simulations only
        assert set(part["buffer"]["sim_id"].tolist()) <= set(part["ledger"]["simulations"])
    counts = {
        key: sum(part["buffer"]["counts"][key] for part in parts) for key in ("trained", "evicted_unseen", "draws")
    }
    assert counts == {key: sum(b["counts"][key] for b in state["buffers"]) for key in counts}
    put = sum(part["buffer"]["counts"]["put"] for part in parts)
    moved = sum(0 if part["held"] is None else len(part["held"][3]) for part in parts) - 3  # back to waiting
    assert put == sum(b["counts"]["put"] for b in state["buffers"]) - moved
    assert sum(part["ledger"]["produced"] for part in parts) == 33
    assert sum(sum(part["ledger"]["ended"].values()) for part in parts) == 2
    assert sum(part["n_simulations"] for part in parts) == 7  # 2 done, 2 running, 3 still to launch
    assert sorted(s for part in parts for s in part["ledger"]["simulations"]) == [0, 1, 2, 3]
    for part in parts:  # each rank's buffer goes on from its part: every unseen sample trained once
        buffer = make_buffer(policy, 8, watermark=2, seed=0)
        buffer.load_state_dict(part["buffer"])
        trained = buffer.metrics()["trained"]
        buffer.close()
        while buffer.ready():
            buffer.get_batch(2)
        assert buffer.metrics()["trained"] - trained == np.count_nonzero(part["buffer"]["uses"] == 0)


class Recording:
    """A sampler that hands out fixed points and keeps what it is told; it fails on its fourth draw."""

    def __init__(self, space):
        self.space, self.points, self.told = space, lhs(space, 3, seed=0), []

    def ask(self, n):
        if not len(self.points):
            raise LookupError("no point left")
        point, self.points = self.points[:n], self.points[n:]
        return point

    def tell(self, params, losses):
        self.told.append((params.copy(), losses.copy()))

    def state_dict(self):
        return {"left": len(self.points)}


def test_ranks_draw_numbered_points_from_one_sampler_and_tell_it_their_losses():
    space = Heat2D(n=8, steps=4).space
    sampler = Recording(space)
    expected = lhs(space, 3, seed=0)
    with SamplerService(sampler, space, "127.0.0.1", next_id=7) as service:
        ranks = [RemoteDraws(service.address, timeout=10) for _ in range(2)]
        drawn = [ranks[0].draw(), ranks[1].draw(), ranks[0].draw()]
        ranks[1].tell(expected[:2], np.array([0.5, 0.25]))
        with pytest.raises(RuntimeError, match="LookupError: no point left"):
            ranks[1].draw()
        for rank in ranks:
            rank.close()
    assert [sim_id for sim_id, _, _ in drawn] == [7, 8, 9] and [seed for _, _, seed in drawn] == [7, 8, 9]
    np.testing.assert_array_equal(np.stack([params for _, params, _ in drawn]), expected)
    ((params, losses),) = sampler.told
    np.testing.assert_array_equal(params, expected[:2])
    np.testing.assert_array_equal(losses, [0.5, 0.25])
    assert service.next_id == 10 and service.error is None


def test_draws_not_launched_by_a_checkpoint_are_offered_first_and_kept_in_snapshots_until_handed_out():
    space = Heat2D(n=8, steps=4).space
    sampler = Recording(space)
    left = (4, np.full(5, 300.0), 4)  # drawn before a checkpoint, launched by no rank
    with SamplerService(sampler, space, "127.0.0.1", next_id=5, offered=[left]) as service:
        rank = RemoteDraws(service.address, timeout=10)
        state, _, before = rank.snapshot()
        first, second = rank.draw(), rank.draw()
        _, next_id, fresh = rank.snapshot()
        _, _, after = rank.snapshot()
        rank.close()
    assert state == {"left": 3} and [d[0] for d in before] == [4]  # not handed out yet: in every snapshot
    assert first[0] == 4 and first[2] == 4 and np.array_equal(first[1], left[1])
    assert second[0] == 5 and next_id == 6
    assert [d[0] for d in fresh] == [4, 5] and after == []  # each draw once, in the snapshot after it


def test_rank_shares_add_up_round_robin():
    assert [share(7, rank, 3) for rank in range(3)] == [3, 2, 2]
    assert sum(share(100, rank, 8) for rank in range(8)) == 100


@pytest.mark.parametrize(
    ("options", "culprit"),
    [
        ({"trainers": 3, "n_simulations": 2}, "n_simulations"),
        ({"trainers": 2, "backend": "nccl"}, "backend 'nccl'"),  # not in a CPU build; else needs device cuda
        ({"trainers": 2, "data_address": "tcp://127.0.0.1:5555"}, "data_address"),
        ({"trainers": 0}, "trainers"),
        ({"trainers": 2, "rank_timeout": 0}, "rank_timeout"),
    ],
)
def test_what_several_ranks_cannot_do_is_refused_by_name(options, culprit):
    with pytest.raises(ValueError, match=culprit):
        OnlineStudy(Heat2D(n=8, steps=4), **{"n_simulations": 4, **options})


def test_a_model_with_nothing_to_train_is_refused():
    frozen = torch.nn.Linear(6, 64)
    frozen.requires_grad_(False)
    model = torch.nn.Sequential(frozen, torch.nn.Unflatten(1, (8, 8)))
    with pytest.raises(ValueError, match="model Sequential has no parameter"):
        OnlineStudy(Heat2D(n=8, steps=4), model=model, trainers=2)


def test_more_ranks_than_workers_with_the_resource_is_an_error_naming_it(client):
    study = OnlineStudy(Heat2D(n=8, steps=4), n_simulations=4, client=client, trainers=2, trainer_resources={"GPU": 1})
    with pytest.raises(ValueError, match=r"trainers=2 needs 2 dask workers with resources \{'GPU': 1\}.* has 0"):
        study.run(progress=False)


def test_a_rank_that_dies_ends_the_study_naming_it_and_its_checkpoint_resumes(tmp_path):
    path = tmp_path / "study.ckpt"
    options = dict(
        n_simulations=400,
        capacity=64,
        watermark=8,
        batch_size=8,
        chunk_steps=1,
        seed=3,
        checkpoint=path,
        checkpoint_every=2,
        rank_timeout=60,
    )  # 400 simulations: it runs until killed
    simulator = Heat2D(n=12, steps=400)
    with connect(None, n_workers=4) as client:
        study = OnlineStudy(simulator, client=client, trainers=2, **options)
        errors = []

        def run():
            try:
                study.run(progress=False)
            except Exception as exc:
                errors.append(exc)

        thread = threading.Thread(target=run)
        thread.start()
        deadline = time.monotonic() + 120
        while not path.exists() and thread.is_alive() and time.monotonic() < deadline:  # both ranks trained
            time.sleep(0.2)
        assert path.exists(), errors
        processing = client.processing()
        rank1 = next((w for w, keys in processing.items() for k in keys if str(k).startswith("train-rank-1")), None)
        assert rank1 is not None, processing
        with contextlib.suppress(Exception):
            client.run(os._exit, 1, workers=[rank1])
        thread.join(timeout=120)
        assert not thread.is_alive()
        assert len(errors) == 1 and isinstance(errors[0], StudyError), errors
        assert f"rank 1 (worker {rank1}) died" in str(errors[0])
        saved = pickle.loads(path.read_bytes())["trainer"]["batches"]
        resumed = OnlineStudy(simulator, client=client, max_batches=saved + 2, **options).run(progress=False)
    assert list(resumed.metrics.batch.values[-3:]) == [saved, saved + 1, saved + 2]
    assert resumed.accounting["balanced"] == 1, resumed.accounting


def test_a_rank_that_cannot_reach_the_store_fails_instead_of_waiting():
    with pytest.raises((RuntimeError, TimeoutError, dist.DistStoreError)):
        Group(Rendezvous("127.0.0.1", 1, "none", 2, "gloo", 1.0, ""), 0)
