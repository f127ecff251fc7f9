"""The online-training engine on real dask clusters: streaming, backpressure, faults, accounting, resume."""

import collections
import os
import pickle
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from conftest import pick_freeze_fields
from distributed import Client

from kit.cluster import connect
from kit.online import OnlineStudy, ValidationSet, sharedmem
from kit.online.producer import epoch_of
from kit.simulators import Heat2D
from kit.simulators.faulty import Faulty


@pytest.fixture
def client(cluster_client):
    cluster_client.wait_for_workers(2, timeout=60)  # the module's tests kill no worker of it: both are there
    yield cluster_client


@pytest.fixture
def own_client():
    """A LocalCluster of its own, for a test that kills or restarts a worker: dask's LocalCluster closes a
    worker for good when it is down again when the check of an earlier loss of it comes (15 s later), so
    such tests must not share a cluster."""
    with connect(None, n_workers=2) as client:
        yield client


def small_study(simulator, client, **options):
    settings = dict(n_simulations=4, capacity=64, watermark=8, batch_size=8, chunk_steps=2, seed=5, client=client)
    return OnlineStudy(simulator, **{**settings, **options})


def assert_every_step_accounted(result, simulator):
    accounting = result.accounting
    assert accounting["balanced"] == 1, accounting
    ok = result.simulations.status.isin(["ok", "retried"])
    assert (result.simulations.steps_received[ok] == simulator.steps).all()
    keys = list(zip(result.arrivals.simulation.values, result.arrivals.step.values, strict=True))
    assert len(keys) == len(set(keys)), "a (simulation, step) arrived twice in the log"


@pytest.mark.parametrize("shared_memory", [True, False], ids=["shared", "tcp"])
def test_steps_train_while_the_first_simulation_runs(client, shared_memory):
    # 200 steps cannot fit in the buffer (32) and queue: the simulation can only end after training started.
    # A 128x128 float32 step is 64 KiB: a message (at most 256 KiB) holds one chunk of 4 steps.
    sim = Heat2D(n=128, steps=200)
    study = OnlineStudy(
        sim,
        n_simulations=1,
        buffer="fifo",
        capacity=32,
        watermark=8,
        batch_size=8,
        chunk_steps=4,
        queue_size=2,
        in_flight=1,
        client=client,
        seed=1,
        shared_memory=shared_memory,
    )
    result = study.run(progress=False)
    assert study.run_stats["chunks"] == 50 and study.run_stats["rejected"] == 0
    arrivals = result.arrivals
    last = arrivals.where(arrivals.step == sim.steps, drop=True)
    assert int(last.batch[0]) > 0, "the last step arrived before any training batch: nothing was streamed"
    # Memory is bounded by the buffer plus the one message the study may hold before the buffer takes it.
    assert result.metrics.occupancy.max() <= 1.0
    assert result.metrics.pending.max() <= 4
    assert result.accounting == {"produced": 200, "trained": 200, "evicted_unseen": 0, "balanced": 1}


def test_study_trains_and_reports_metrics(client):
    sim = Heat2D(n=12, steps=10)
    validation = ValidationSet.simulate(sim, 4, seed=2, client=client)
    # The rate limit fixes the training per simulation (10 batches), whatever the machine's speed.
    study = small_study(
        sim, client, n_simulations=10, validation=validation, validate_every=5, batches_per_simulation=10
    )
    result = study.run(progress=False)
    metrics = result.metrics
    assert {"loss", "produced_per_second", "consumed_per_second", "occupancy", "age_mean"} <= set(metrics)
    assert metrics.sizes["batch"] >= 100
    assert (result.simulations.status == "ok").all()
    checks = result.validation
    assert checks.check_batch.values[-1] == metrics.batch.values[-1]
    loss = metrics.loss.values
    assert loss[-5:].mean() < 0.75 * loss[:5].mean(), "training did not lower the loss"
    assert (checks.val_mean <= checks.val_p99).all()
    assert_every_step_accounted(result, sim)
    data = result.to_dataset()
    assert data.attrs["study_seed"] == "5" and data.attrs["accounting_balanced"] == 1
    assert data.sizes["arrival"] == 10 * sim.steps


def test_same_seed_same_parameters_and_seeds_on_any_cluster(client):
    sim = Heat2D(n=8, steps=6)
    a = small_study(sim, client, sampler="lhs", seed=11).run(progress=False).simulations
    b = small_study(sim, None, sampler="lhs", seed=11, n_workers=1).run(progress=False).simulations
    np.testing.assert_array_equal(a.params, b.params)
    np.testing.assert_array_equal(a.seed, b.seed)


def test_max_batches_stops_the_study_and_accounts_for_what_was_left(client):
    sim = Heat2D(n=8, steps=50)
    result = small_study(sim, client, n_simulations=6, max_batches=3, in_flight=2).run(progress=False)
    assert result.metrics.sizes["batch"] == 3
    assert "cancelled" in result.simulations.status.values
    accounting = result.accounting
    assert accounting["balanced"] == 1 and accounting["discarded_study_ended"] > 0
    arrived = len(np.unique(result.arrivals.simulation * 1000 + result.arrivals.step))
    # Every step that arrived was trained on or discarded as the study ended; chunks that reach the study after
    # it closed are discarded too without arriving, more of them the busier the machine.
    assert accounting["trained"] <= arrived <= accounting["trained"] + accounting["discarded_study_ended"]


@pytest.mark.parametrize("fault", ["exception", "nan"])
def test_failed_simulation_is_retried_with_the_same_parameters(client, tmp_path, fault):
    sim = Heat2D(n=8, steps=6)
    faulty = Faulty(sim, fault, tmp_path / "markers", at_step=3, times=1)
    result = small_study(faulty, client, sampler="sobol").run(progress=False)
    sims = result.simulations
    assert (sims.status == "retried").all(), sims.status.values
    assert (sims.attempts == 2).all()
    expected = "RuntimeError: injected fault at step 3" if fault == "exception" else "NonFiniteField: simulation"
    assert all(reason.startswith(expected) and ";" not in reason for reason in sims.reasons.values), sims.reasons
    assert result.accounting["discarded_duplicate"] == 4 * 2  # steps 1-2 of each, received again on retry
    assert_every_step_accounted(result, sim)


def test_always_failing_parameters_are_redrawn(client, tmp_path):
    sim = Heat2D(n=8, steps=4)
    from kit.seeding import simulation_seed

    faulty = Faulty(sim, "exception", tmp_path / "m", at_step=1, times=None, only=[simulation_seed(5, 0)])
    result = small_study(faulty, client, n_simulations=3, retries=1).run(progress=False)
    sims = result.simulations
    assert sims.status.sel(simulation=0) == "redrawn"
    assert sims.attempts.sel(simulation=0) == 2
    assert (sims.status.sel(simulation=[1, 2, 3]) == "ok").all()
    assert not np.allclose(sims.params.sel(simulation=0), sims.params.sel(simulation=3))
    assert_every_step_accounted(result, sim)


def test_too_many_failures_stop_the_study_naming_them(client, tmp_path):
    from kit.online import StudyError

    faulty = Faulty(Heat2D(n=8, steps=4), "exception", tmp_path / "m", at_step=1, times=None)
    with pytest.raises(StudyError, match=r"3 simulations failed \(max_failures=2\):\n  simulation \d "):
        small_study(faulty, client, retries=0, max_failures=2).run(progress=False)


def test_hung_simulation_times_out_and_is_retried(own_client, tmp_path):
    sim = Heat2D(n=8, steps=6)
    faulty = Faulty(sim, "hang", tmp_path / "m", at_step=2, times=1, only=[_seed(5, 0)], hang_seconds=60)
    result = small_study(faulty, own_client, n_simulations=2, timeout=3.0).run(progress=False)
    sims = result.simulations
    assert sims.status.sel(simulation=0) == "retried"
    assert "hung" in str(sims.reasons.sel(simulation=0).values)
    assert_every_step_accounted(result, sim)


def test_simulations_queued_behind_busy_workers_are_not_hung(client, tmp_path):
    # Four simulations of 2.5 s or more on two worker threads: two wait as long for a thread, longer than
    # the 2 s timeout. The hang clock starts with a simulation's first message, not with its submission.
    sim = Heat2D(n=8, steps=5)
    slow = Faulty(sim, "slow", tmp_path / "m", at_step=1, times=None, hang_seconds=0.5)
    result = small_study(slow, client, in_flight=4, chunk_steps=1, timeout=2.0).run(progress=False)
    sims = result.simulations
    assert (sims.status == "ok").all() and (sims.attempts == 1).all(), sims.reasons.values
    assert_every_step_accounted(result, sim)


def test_a_simulation_that_makes_fewer_steps_than_declared_is_retried_then_redrawn(client, tmp_path):
    sim = Heat2D(n=8, steps=6)
    short = Faulty(sim, "short", tmp_path / "m", at_step=4, times=None, only=[_seed(5, 0)])
    result = small_study(short, client, n_simulations=2, retries=1).run(progress=False)
    sims = result.simulations
    assert sims.status.sel(simulation=0) == "redrawn" and sims.attempts.sel(simulation=0) == 2
    assert str(sims.reasons.sel(simulation=0).values).count("it made 3 steps, the simulator declares 6") == 2
    assert result.accounting["discarded_duplicate"] == 3  # steps 1-3, received again from the retry
    assert_every_step_accounted(result, sim)


class FallsOver:
    """A model factory whose module raises at its ``at``-th forward."""

    def __new__(cls, at: int):
        import torch

        class Module(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.layer, self.calls = torch.nn.Linear(6, 64), 0

            def forward(self, x):
                self.calls += 1
                if self.calls == at:
                    raise RuntimeError("the trainer fell over")
                return self.layer(x).reshape(-1, 8, 8)

        return Module()


def workers_executing(client) -> list:
    running = client.run(lambda dask_worker: [str(key) for key in dask_worker.state.executing])
    return [key for keys in running.values() for key in keys]


def test_a_trainer_that_falls_over_stops_its_simulations(client, tmp_path):
    # Simulations of 200 s (4,000 steps of 0.05 s): only the study's stop can end them within the deadline,
    # which is shorter than filling one message (1,024 8x8 steps: 51 s) while the study no longer reads.
    slow = Faulty(Heat2D(n=8, steps=4000), "slow", tmp_path / "m", at_step=1, times=None, hang_seconds=0.05)
    with pytest.raises(RuntimeError, match="the trainer fell over"):
        small_study(slow, client, n_simulations=2, model=FallsOver(at=3), send_timeout=600.0).run(progress=False)
    deadline = time.monotonic() + 30
    while workers_executing(client) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not workers_executing(client)


def test_a_checkpoint_holds_the_state_not_the_history(client, tmp_path):
    from kit.online.study import METRICS

    sim, path, sizes = Heat2D(n=8, steps=50), tmp_path / "c.ckpt", {}

    def note(result):  # every 20 batches: the checkpoint in writing is finished, so that the next one is written
        study.checkpoint.wait()  # (training skips checkpoints while one is being written, as on a busy machine)
        if path.exists():
            sizes.setdefault("early", path.stat().st_size)

    study = small_study(sim, client, n_simulations=2, capacity=16, watermark=8, batches_per_simulation=100,
                        checkpoint=path, checkpoint_every=1)  # fmt: skip
    study.run(progress=False, callback=note, callback_every=20)
    state = pickle.loads(path.read_bytes())
    rows = state["logs"]["metrics"]["rows"]
    assert rows >= 150 and "metrics" not in state and "arrivals" not in state["ledger"]
    # 150+ batches later, the checkpoint has not grown: its logs went to their own files, row by row.
    assert path.stat().st_size <= 1.02 * sizes["early"] + 512
    logged = np.fromfile(f"{path}.metrics").reshape(-1, len(METRICS))
    assert len(logged) >= rows and (logged[:rows, 0] == np.arange(1, rows + 1)).all()


def test_killed_worker_is_detected_and_the_simulation_rerun(own_client, tmp_path):
    sim = Heat2D(n=8, steps=6)
    faulty = Faulty(sim, "kill", tmp_path / "m", at_step=4, times=1, only=[_seed(5, 1)])
    result = small_study(faulty, own_client, n_simulations=3, chunk_steps=1).run(progress=False)
    sims = result.simulations
    assert sims.status.sel(simulation=1) == "retried"
    assert "worker lost while running" in str(sims.reasons.sel(simulation=1).values)
    assert (sims.status.sel(simulation=[0, 2]) != "redrawn").all()
    assert_every_step_accounted(result, sim)


def _seed(study, sim):
    from kit.seeding import simulation_seed

    return simulation_seed(study, sim)


@pytest.fixture
def scheduler(tmp_path):
    """A real ``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1."""
    dask = shutil.which("dask", path=os.path.dirname(sys.executable)) or "dask"
    file = tmp_path / "scheduler.json"
    procs = [
        subprocess.Popen(
            [dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard", "--scheduler-file", str(file)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    try:
        for _ in range(200):
            if file.exists() and file.stat().st_size:
                break
            time.sleep(0.1)
        for _ in range(2):
            procs.append(
                subprocess.Popen(
                    [
                        dask,
                        "worker",
                        "--scheduler-file",
                        str(file),
                        "--nthreads",
                        "1",
                        "--host",
                        "127.0.0.1",
                        "--no-dashboard",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        import json

        address = json.loads(file.read_text())["address"]
        with Client(address, timeout=30) as probe:
            probe.wait_for_workers(2, timeout=60)
        yield address
    finally:
        for proc in reversed(procs):
            proc.send_signal(signal.SIGINT)
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def test_study_on_a_real_scheduler_by_address(scheduler, client):
    sim = Heat2D(n=8, steps=6)
    remote = small_study(sim, scheduler, sampler="random", seed=3).run(progress=False)
    local = small_study(sim, client, sampler="random", seed=3).run(progress=False)
    assert (remote.simulations.status == "ok").all()
    np.testing.assert_array_equal(remote.simulations.params, local.simulations.params)
    assert_every_step_accounted(remote, sim)


RESUMABLE = textwrap.dedent(
    """\
    import sys
    from distributed import Client, LocalCluster
    from kit.online import OnlineStudy
    from kit.simulators import Heat2D

    if __name__ == "__main__":
        checkpoint, out, where, send_timeout = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
        study = dict(buffer="fifo", capacity=40, watermark=8, batch_size=8, chunk_steps=4, checkpoint=checkpoint,
                     checkpoint_every=5, seed=9, send_timeout=send_timeout)
        if where.startswith("local:"):  # a cluster of this many threads, inside this process
            with LocalCluster(n_workers=1, threads_per_worker=int(where[6:]), processes=False,
                              dashboard_address=None) as cluster, Client(cluster) as client:
                study = OnlineStudy(Heat2D(n=24, steps=40), n_simulations=10, client=client, **study)
                result = study.run(progress=False)
        else:  # a persistent cluster, by address; the first two simulations' 6.5 MB cannot fit in the buffers
            study = OnlineStudy(Heat2D(n=64, steps=400), n_simulations=3, in_flight=2, client=where, **study)
            result = study.run(progress=False)
        result.to_dataset().to_netcdf(out, engine="h5netcdf")
        print("accounting", result.accounting)
    """
)


def run_and_kill(script, checkpoint, out, where, send_timeout=60.0):
    """Start the study script and SIGKILL it once its first checkpoint is written; the metrics saved then."""
    from kit.online.study import METRICS

    first = subprocess.Popen([sys.executable, str(script), str(checkpoint), str(out), where, str(send_timeout)],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)  # fmt: skip
    for _ in range(1200):
        if checkpoint.exists() or first.poll() is not None:
            break
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert checkpoint.exists() and not out.exists(), "the study ended before it could be killed"
    rows = pickle.loads(checkpoint.read_bytes())["logs"]["metrics"]["rows"]
    metrics = np.fromfile(f"{checkpoint}.metrics").reshape(-1, len(METRICS))[:rows]
    return dict(zip(METRICS, metrics.T, strict=True))


def resume(script, checkpoint, out, where, send_timeout=60.0):
    second = subprocess.run([sys.executable, str(script), str(checkpoint), str(out), where, str(send_timeout)],
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert second.returncode == 0, second.stderr[-3000:]
    import xarray as xr

    return xr.open_dataset(out, engine="h5netcdf").load(), second.stdout


def test_killed_study_resumes_from_its_checkpoint_on_a_cluster_of_another_size(tmp_path):
    script = tmp_path / "study.py"
    script.write_text(RESUMABLE)
    checkpoint, out = tmp_path / "study.ckpt", tmp_path / "sims.nc"
    before = run_and_kill(script, checkpoint, out, "local:2")
    sims, stdout = resume(script, checkpoint, out, "local:1")
    assert sims.sizes["simulation"] == 10
    # The batches trained before the kill are kept as they were (a fresh start would redo them).
    resumed = sims.sel(batch=before["batch"].astype(int))
    np.testing.assert_array_equal(resumed.seconds, before["seconds"])
    np.testing.assert_array_equal(resumed.loss, before["loss"])
    assert set(sims.status.values) <= {"ok", "retried"}
    assert (sims.steps_received == 40).all()
    # FIFO trains every sample exactly once: 10 x 40 unique steps, nothing twice, nothing lost.
    assert "'trained': 400" in stdout and "'balanced': 1" in stdout


def executing(address) -> list:
    """The tasks the workers of the scheduler at ``address`` are running now."""
    with Client(address, timeout=30) as probe:
        running = probe.run(lambda dask_worker: [str(key) for key in dask_worker.state.executing])
    return [key for keys in running.values() for key in keys]


def test_a_killed_study_leaves_no_simulation_running_on_a_persistent_cluster(scheduler, tmp_path):
    script = tmp_path / "study.py"
    script.write_text(RESUMABLE)
    checkpoint, out = tmp_path / "study.ckpt", tmp_path / "sims.nc"
    run_and_kill(script, checkpoint, out, scheduler, send_timeout=2.0)
    assert executing(scheduler), "no simulation was left running: the test shows nothing"
    for _ in range(600):  # its simulations lost their study: they give up after the send timeout
        if not executing(scheduler):
            break
        time.sleep(0.1)
    assert not executing(scheduler), "simulations of the killed study still run"
    for name in pickle.loads(checkpoint.read_bytes())["epochs"]:  # its marker in shared memory, never resumed
        sharedmem.clean(epoch_of(name))


def test_a_resumed_study_ends_the_simulations_its_killed_run_left_behind(scheduler, tmp_path):
    script = tmp_path / "study.py"
    script.write_text(RESUMABLE)
    checkpoint, out = tmp_path / "study.ckpt", tmp_path / "sims.nc"
    # Orphans would hold both worker threads for 600 s (the send timeout) and the resume would time out,
    # unless the resumed study ends them (the killed run's epoch) at once.
    run_and_kill(script, checkpoint, out, scheduler, send_timeout=600.0)
    assert executing(scheduler), "no simulation was left running: the test shows nothing"
    killed = [epoch_of(name) for name in pickle.loads(checkpoint.read_bytes())["epochs"]]
    sims, stdout = resume(script, checkpoint, out, scheduler, send_timeout=600.0)
    assert set(sims.status.values) <= {"ok", "retried"} and (sims.steps_received == 400).all()
    assert (sims.attempts == 1).all(), "the resumed study burnt retries on the orphans"
    assert not any("hung" in reason for reason in sims.reasons.values)
    assert "'balanced': 1" in stdout
    assert not executing(scheduler)
    left = [name for name in os.listdir(sharedmem.DIRECTORY) if name.startswith(tuple(map(sharedmem.prefix, killed)))]
    assert not left, f"files of the killed run left in shared memory: {left}"


def test_parameter_outside_the_space_is_an_error_naming_it():
    with pytest.raises(ValueError, match=r"parameter 'left' = 900.0 is outside its bounds \[100, 500\]"):
        OnlineStudy(Heat2D(n=8, steps=4), sampler=[[300.0, 900.0, 300.0, 300.0, 300.0]])


def test_buffer_capacity_below_batch_size_is_an_error():
    with pytest.raises(ValueError, match="buffer capacity 8 is below the batch size 16"):
        OnlineStudy(Heat2D(n=8, steps=4), capacity=8, watermark=8, batch_size=16)


def test_watermark_above_capacity_is_an_error():
    with pytest.raises(ValueError, match="watermark"):
        OnlineStudy(Heat2D(n=8, steps=4), capacity=32, watermark=64, batch_size=8)


def test_unreachable_scheduler_is_a_clear_error_not_a_hang():
    study = OnlineStudy(
        Heat2D(n=8, steps=4), client="tcp://127.0.0.1:9", connect_timeout=3.0, capacity=32, batch_size=8
    )
    with pytest.raises(ConnectionError, match=r"no dask scheduler answered at 'tcp://127.0.0.1:9' within 3 s"):
        study.run(progress=False)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("n_simulations", 0),
        ("in_flight", 0),
        ("chunk_steps", -1),
        ("max_batches", 0),
        ("batches_per_simulation", 0),
        ("batches_per_simulation", True),
    ],
)
def test_bad_study_options_name_the_option(option, value):
    with pytest.raises(ValueError, match=rf"{option} must be"):
        OnlineStudy(Heat2D(n=8, steps=4), **{option: value})


def test_absent_device_is_an_error():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(ValueError, match="device 'cuda' is not available here"):
        OnlineStudy(Heat2D(n=8, steps=4), device="cuda")


def test_one_simulation_budget_gives_the_surrogate_and_the_sobol_maps(client, tmp_path):
    from kit.sensitivity import FieldSobol, IterativeSobol

    sim = Heat2D(n=8, steps=4)
    d = sim.space.dim
    maps = FieldSobol(d, (8, 8), steps=[2, 4])
    study = small_study(
        sim,
        client,
        n_simulations=4 * (d + 2),
        sampler="pick_freeze",
        sensitivity=maps,
        checkpoint=tmp_path / "c.pt",
        checkpoint_every=1,
    )
    result = study.run(progress=False)
    assert result.accounting["balanced"] == 1 and study.trainer.batches > 0
    assert maps.n_groups == 4 and maps.pending == 0
    seeds = np.array([study.ledger.simulations[i].seed for i in range(4 * (d + 2))]).reshape(4, d + 2)
    assert (seeds == seeds[:, :1]).all() and len(set(seeds[:, 0])) == 4  # one seed a pick-freeze group
    batch = IterativeSobol(d, (8, 8))
    batch.update(pick_freeze_fields(sim, 5, 4, step=4))
    np.testing.assert_allclose(result.sensitivity.ST.sel(step=4), batch.total_order, atol=1e-10)
    np.testing.assert_allclose(result.sensitivity.time, [0.05, 0.1])

    saved = pickle.loads((tmp_path / "c.pt").read_bytes())["sensitivity"]
    assert FieldSobol(d, (8, 8), steps=[2, 4]).load_state_dict(saved).n_groups <= 4


def test_a_redrawn_pick_freeze_simulation_drops_its_group(client, tmp_path):
    from kit.seeding import simulation_seed
    from kit.sensitivity import FieldSobol

    sim = Heat2D(n=8, steps=3)
    d = sim.space.dim
    # The rows of group 0 share its seed: the fault strikes the first of them to run, once.
    faulty = Faulty(sim, "exception", tmp_path / "m", at_step=1, times=1, only=[simulation_seed(5, 0)])
    maps = FieldSobol(d, (8, 8), steps=[3])
    study = small_study(faulty, client, n_simulations=2 * (d + 2), sampler="pick_freeze", sensitivity=maps, retries=0)
    result = study.run(progress=False)
    redrawn = result.simulations.simulation.values[result.simulations.status.values == "redrawn"]
    assert len(redrawn) == 1 and redrawn[0] < d + 2
    assert maps.discarded == {0} and maps.n_groups == 1  # group 1 complete, group 2 holds one simulation
    assert result.sensitivity.attrs["discarded_groups"] == 1


def test_sensitivity_needs_pick_freeze_simulations_of_the_right_shape():
    from kit.sensitivity import FieldSobol

    sim = Heat2D(n=8, steps=3)
    with pytest.raises(ValueError, match="sensitivity needs pick-freeze simulations: pass sampler='pick_freeze'"):
        OnlineStudy(sim, sampler="sobol", sensitivity=FieldSobol(5, (8, 8), [1]))
    with pytest.raises(ValueError, match=r"sensitivity is for 5 parameters and fields \(4, 4\)"):
        OnlineStudy(sim, sampler="pick_freeze", sensitivity=FieldSobol(5, (4, 4), [1]))


def test_rate_limit_holds_simulations_back_until_enough_batches_are_trained(client):
    sim = Heat2D(n=8, steps=10)
    rate = 6.0
    result = small_study(sim, client, n_simulations=6, batches_per_simulation=rate, queue_size=2).run(progress=False)
    metrics = result.metrics
    # Before the watermark (8) the study takes what comes; then at most one message beyond the limit, and a
    # sender coalesces chunks, so a message may hold a whole simulation (10 steps): 7 + 10 <= slack + 10 / 6.
    slack = 16
    assert (metrics.produced <= sim.steps * metrics.batch / rate + slack).all()
    assert int(metrics.batch[-1]) >= rate * 6
    assert result.accounting["balanced"] == 1


def test_samplers_compared_at_equal_budget(client):
    from kit.online.sampler_comparison import compare_samplers

    sim = Heat2D(n=8, steps=4)
    data = compare_samplers(
        sim,
        samplers=("random", "lhs", "breed", "loss_density"),
        seeds=(0, 1),
        n_simulations=6,
        n_validation=4,
        capacity=64,
        batch_size=8,
        batches_per_simulation=4,
        client=client,
        progress=False,
    )
    assert list(data.sampler.values) == ["random", "lhs", "breed", "loss_density"] and data.sizes["seed"] == 2
    assert data.attrs["n_importance"] == 16 and "'lhs': {'block': 6}" in data.attrs["sampler_options"]
    np.testing.assert_array_equal(data.p99_ratio.sel(sampler="random"), 1.0)
    # Non-adaptive points have density 1: the weighted estimate is the plain mean at the training points.
    np.testing.assert_allclose(
        data.weighted_error.sel(sampler="random"), data.sampler_point_error.sel(sampler="random")
    )
    assert (data.p99_ratio_low <= data.p99_ratio).all() and (data.p99_ratio <= data.p99_ratio_high).all()
    sim.space.validate(data.points.values.reshape(-1, 5))
    assert np.isfinite(data.val_p99).all() and (data.batches >= 4 * 5).all()
    with pytest.raises(ValueError, match="samplers must include the baseline 'random'"):
        compare_samplers(sim, samplers=("breed",), client=client)


def test_sobol_maps_survive_a_checkpoint_and_resume(client, tmp_path):
    from kit.sensitivity import FieldSobol, IterativeSobol

    sim = Heat2D(n=8, steps=4)
    d, path = sim.space.dim, tmp_path / "study.ckpt"
    options = dict(n_simulations=3 * (d + 2), sampler="pick_freeze", checkpoint=path, checkpoint_every=1)
    first = small_study(sim, client, max_batches=2, sensitivity=FieldSobol(d, (8, 8), [2, 4]), **options)
    first.run(progress=False)  # stops at batch 2, cancelling what still runs
    assert first.ledger.ended["ok"] < 3 * (d + 2)
    maps = FieldSobol(d, (8, 8), [2, 4])
    resumed = small_study(sim, client, sensitivity=maps, **options)
    result = resumed.run(progress=False)
    assert resumed.trainer.batches > 2 and maps.n_groups == 3 and maps.pending == 0
    batch = IterativeSobol(d, (8, 8))
    batch.update(pick_freeze_fields(sim, 5, 3, step=2))
    np.testing.assert_allclose(result.sensitivity.S1.sel(step=2), batch.first_order, atol=1e-10)


def test_a_recorded_study_labels_its_simulations(client):
    from kit.replay import record

    sim = Heat2D(n=8, steps=4)
    with record(client, name="study") as recording:
        result = small_study(sim, client, n_simulations=3).run(progress=False)
    simulations = [t for t in recording.trace.tasks if t.component == "simulation"]
    assert len(simulations) == 3 == int((result.simulations.status == "ok").sum())
    assert all(t.host in client.scheduler_info()["workers"] for t in simulations)


def test_a_study_records_its_own_trace_of_chunks_and_batches(client, tmp_path):
    from kit.replay import load_trace
    from kit.replay.calibrate import fidelity

    sim = Heat2D(n=8, steps=5)
    result = small_study(sim, client, n_simulations=3, chunk_steps=2, record=True).run(progress=False)
    trace = result.trace("recorded-study")
    chunks = [t for t in trace.tasks if t.component == "simulation"]
    batches = [t for t in trace.tasks if t.component == "training"]
    # 5 steps of 8x8 float32 per simulation in chunks of 2: one to three messages (fast chunks share one)
    sent = collections.Counter(t.id.rsplit("-c", 1)[0] for t in chunks)
    assert len(sent) == 3 and set(sent.values()) <= {1, 2, 3}
    assert sum(t.output_bytes for t in chunks) == 3 * 5 * 8 * 8 * 4
    assert len(batches) == result.trainer.batches and {t.host for t in batches} == {"client"}
    assert {t.host for t in chunks} <= set(client.scheduler_info()["workers"])
    by_id = {t.id: t for t in trace.tasks}
    for task in chunks:  # a simulation's chunks follow each other on one worker; a later run follows the one
        for parent in task.parents:  # whose end freed its slot
            assert by_id[parent].end <= task.start + 1e-6
            if parent.rsplit("-c", 1)[0] == task.id.rsplit("-c", 1)[0]:
                assert by_id[parent].host == task.host
    later = [t for t in chunks if t.id.endswith("-c0") and t.parents]
    assert len(later) == 1  # three simulations, two in flight: the third waits for one to end
    for previous, batch in zip(batches, batches[1:], strict=False):
        assert batch.parents[0] == previous.id and batch.start >= previous.end
    for batch in batches:  # a batch follows the chunks that arrived before its draw
        assert all(by_id[p].end <= batch.start for p in batch.parents if p.startswith("sim"))
    used = [p for b in batches for p in b.parents if p.startswith("sim")]
    assert len(used) == len(set(used))  # each chunk is first seen by one batch
    assert batches[0].input_bytes == sum(by_id[p].output_bytes for p in batches[0].parents)
    trace.save(tmp_path / "study.json")
    assert [t.id for t in load_trace(tmp_path / "study.json").tasks] == [t.id for t in trace.tasks]
    check = fidelity(trace)
    assert np.isfinite(float(check.makespan_error))
    with pytest.raises(ValueError, match="record=True"):
        small_study(sim, client, n_simulations=1).run(progress=False).trace()


def test_a_recorded_study_traces_its_validations_between_batches(client):
    sim = Heat2D(n=8, steps=6)
    validation = ValidationSet.simulate(sim, 2, seed=2, client=client)
    study = small_study(sim, client, n_simulations=3, validation=validation, validate_every=2, record=True)
    result = study.run(progress=False)
    trace = result.trace("validated")
    by_id = {t.id: t for t in trace.tasks}
    checks = [t for t in trace.tasks if t.component == "validation"]
    # every 2 batches, and once more at the end unless the last batch was just checked
    assert [t.id for t in checks] == [f"validate{b}" for b in result.validation.check_batch.values.tolist()]
    assert {t.host for t in checks} == {"client"} and trace.attrs["validations"] == len(checks)
    for check in checks:
        number = int(check.id.removeprefix("validate"))
        assert check.parents == (f"train{number}",) and by_id[f"train{number}"].end <= check.start
        if f"train{number + 1}" in by_id:  # the next batch waits for it
            assert by_id[f"train{number + 1}"].parents[0] == check.id
    assert max(t.end for t in trace.tasks) == checks[-1].end  # the final check ends the study


def test_a_validation_before_any_batch_follows_the_chunks_received_by_then():
    from types import SimpleNamespace

    from kit.online.timeline import Timeline, trace

    timeline = Timeline()
    for k, arrived in enumerate((10.0, 12.0)):
        message = SimpleNamespace(sim_id=0, attempt=0, run=7, steps=[k], started=arrived - 1, made=arrived - 0.5,
                                  fields=np.zeros(4, np.float32))  # fmt: skip
        timeline.chunk(message, "w", used=True)
        timeline.chunks[-1]["arrived"] = arrived
    timeline.validation(0, 11.0, 11.5)  # a study that ended before its first batch checks the model once
    (check,) = [t for t in trace([timeline], "none").tasks if t.component == "validation"]
    assert check.id == "validate0" and check.parents == ("sim0-a0-00000000-c0",)


def test_stop_from_a_callback_ends_the_study_at_that_batch(client):
    study = small_study(Heat2D(n=8, steps=50), client, n_simulations=6, in_flight=2)
    seen = []

    def callback(result):
        seen.append(result.metrics.sizes["batch"])
        study.stop()

    result = study.run(progress=False, callback=callback, callback_every=3)
    assert seen == [3] and result.metrics.sizes["batch"] == 3  # the loop asks before its next batch
    assert "cancelled" in result.simulations.status.values and result.accounting["balanced"] == 1


def test_a_study_not_run_yet_has_empty_results():
    result = OnlineStudy(Heat2D(n=8, steps=4), n_simulations=2).result()
    assert result.simulations.sizes == {"simulation": 0, "parameter": 5}
    assert result.to_dataset().sizes["simulation"] == 0 and result.accounting["balanced"] == 1
