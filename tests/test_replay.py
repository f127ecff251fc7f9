"""Traces of real dask runs, their WfFormat round trip, public WfCommons instances, and bad traces."""

import json
import time

import numpy as np
import pytest

from kit.replay import Task, Trace, load_trace, record, replay


def simulate(i):
    time.sleep(0.02)
    return bytes(1000 * (i + 1))


def train(*chunks):
    return sum(len(c) for c in chunks)


def fail():
    raise RuntimeError("boom")


@pytest.fixture
def client(cluster_client):
    return cluster_client


# The tests share one cluster: tasks are submitted impure, so that no test's keys meet an earlier test's
# results still held by the scheduler (which would run nothing, and record nothing).


def test_a_recorded_run_has_every_task_with_its_dependencies_sizes_and_workers(client):
    with record(client, name="fork-join") as recording:
        chunks = client.map(simulate, range(4), pure=False)
        assert client.submit(train, *chunks, pure=False).result() == 10000
    trace = recording.trace
    assert len(trace.tasks) == 5 and trace.name == "fork-join"
    sims = [t for t in trace.tasks if t.name == "simulate"]
    (trainer,) = [t for t in trace.tasks if t.name == "train"]
    assert {t.component for t in sims} == {"simulation"} and trainer.component == "training"
    assert set(trainer.parents) == {t.id for t in sims}
    assert sorted(t.output_bytes for t in sims) == [1000, 2000, 3000, 4000] and trainer.input_bytes == 10000
    assert set(trace.hosts) <= set(client.scheduler_info()["workers"])
    assert all(t.end > t.start >= 0 for t in sims)
    # No assertion on order in time: dask corrects each worker's clock by an estimated offset, and under load a
    # task may appear to start a few ms before a parent on another worker ended.
    assert trace.makespan == pytest.approx(max(t.end for t in trace.tasks) - min(t.start for t in trace.tasks))


def test_failed_tasks_are_counted_not_dropped_silently(client):
    with record(client, components={"fail": "inference"}) as recording:
        future = client.submit(fail, pure=False)
        with pytest.raises(RuntimeError):
            future.result()
    assert recording.trace.attrs["erred"] == 1 and "fail" in recording.trace.attrs["erred_keys"][0]


def test_wfformat_round_trip_keeps_everything(client, tmp_path):
    with record(client) as recording:
        client.submit(train, *client.map(simulate, range(2), pure=False), pure=False).result()
    trace = recording.trace
    path = trace.save(tmp_path / "trace.json")
    content = json.loads(path.read_text())
    assert content["schemaVersion"] == "1.5"
    spec = {t["id"]: t for t in content["workflow"]["specification"]["tasks"]}
    for task in trace.tasks:  # parents and children describe the same edges
        assert all(task.id in spec[p]["children"] for p in task.parents)
    back = load_trace(path)
    assert back.tasks == trace.tasks and back.name == trace.name and back.makespan == trace.makespan


PUBLIC = {
    "name": "public",
    "schemaVersion": "1.5",
    "workflow": {
        "specification": {
            "tasks": [
                {"name": "split", "id": "ID01", "parents": [], "children": ["ID02"], "outputFiles": ["a.txt"]},
                {"name": "analyze", "id": "ID02", "parents": ["ID01"], "children": [], "inputFiles": ["a.txt"]},
            ],
            "files": [{"id": "a.txt", "sizeInBytes": 512}],
        },
        "execution": {
            "makespanInSeconds": 14.2,
            "executedAt": "2020-04-01T15:10:53-08:00",
            "tasks": [
                {"id": "ID01", "runtimeInSeconds": 4.2, "executedAt": "2020-04-01T15:10:53-08:00", "machines": ["n1"]},
                {"id": "ID02", "runtimeInSeconds": 10.0, "executedAt": "2020-04-01T15:10:57.2-08:00"},
            ],
        },
    },
}


def test_public_wfcommons_instances_are_read(tmp_path):
    path = tmp_path / "public.json"
    path.write_text(json.dumps(PUBLIC))
    trace = load_trace(path)
    split, analyze = trace.tasks
    assert (split.start, split.end, split.host, split.output_bytes) == (0.0, 4.2, "n1", 512)
    assert analyze.start == pytest.approx(4.2) and analyze.input_bytes == 512 and analyze.host == "unknown"
    assert trace.makespan == pytest.approx(14.2) and analyze.component == "other"


@pytest.mark.parametrize(
    ("tasks", "match"),
    [
        ([Task("a", "x", 0, 1, "h", parents=("b",)), Task("b", "x", 0, 1, "h", parents=("a",))], "cycle"),
        ([Task("a", "x", 0, 1, "h", parents=("z",))], r"task 'a': parent\(s\) \['z'\] are not tasks"),
        ([Task("a", "x", 0, 1, "h"), Task("a", "x", 0, 1, "h")], "task 'a' appears twice"),
        ([Task("a b", "x", 0, 1, "h")], "task id 'a b' has characters WfFormat does not allow"),
        ([Task("a", "x", 2, 1, "h")], "task 'a': end 1 is before start 2"),
        ([Task("a", "x", 0, 1, "h", component="gpu")], "task 'a': unknown component 'gpu'"),
    ],
)
def test_bad_traces_name_the_task(tasks, match):
    with pytest.raises(ValueError, match=match):
        Trace("bad", tasks)


def test_bad_files_name_the_field_and_task(tmp_path):
    broken = json.loads(json.dumps(PUBLIC))
    del broken["workflow"]["execution"]["tasks"][1]["runtimeInSeconds"]
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken))
    with pytest.raises(ValueError, match=r"task 'ID02': missing field 'runtimeInSeconds'"):
        load_trace(path)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not a readable WfFormat JSON file"):
        load_trace(path)
    broken = json.loads(json.dumps(PUBLIC))
    broken["schemaVersion"] = "0.9"
    path.write_text(json.dumps(broken))
    with pytest.raises(ValueError, match=r"schemaVersion '0.9' is not one of"):
        load_trace(path)


def test_replay_never_imports_torch_and_loads_dask_only_to_record():
    import subprocess
    import sys

    code = "import sys, kit.replay; print(','.join(m for m in ('torch', 'distributed') if m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == ""


def platform(**overrides):
    from kit.replay.platform import Platform

    content = {
        "hosts": {
            "edge": {"tier": "edge", "cores": 2, "speed": 1.0},
            "cloud": {"tier": "cloud", "cores": 4, "speed": 2.0},
            "hpc": {"tier": "hpc", "cores": 8, "speed": 4.0},
        },
        "links": [
            {"ends": ["edge", "cloud"], "bandwidth": 1000.0, "latency": 0.5},
            {"ends": ["cloud", "hpc"], "bandwidth": 4000.0, "latency": 0.25},
        ],
    }
    content.update(overrides)
    return Platform.from_dict(content)


def task(task_id, runtime, parents=(), out=0, component="other"):
    return Task(
        task_id, task_id, 0.0, runtime, "recorder", parents=tuple(parents), output_bytes=out, component=component
    )


def test_a_chain_on_one_host_takes_the_sum_of_its_runtimes_over_the_speed():
    from kit.replay.simulate import replay

    trace = Trace("chain", [task("a", 1.0, out=100), task("b", 2.0, ["a"], out=100), task("c", 3.0, ["b"])])
    assert replay(trace, platform(), "edge").makespan == pytest.approx(6.0)
    assert replay(trace, platform(), "cloud").makespan == pytest.approx(3.0)  # twice as fast, data moves free


def test_fork_join_uses_the_cores_of_the_host():
    from kit.replay.simulate import replay

    trace = Trace("fork", [task("a", 1.0), task("b", 1.0), task("c", 1.0), task("join", 0.5, ["a", "b", "c"])])
    # Two cores on the edge host: two tasks, then the third, then the join.
    assert replay(trace, platform(), "edge").makespan == pytest.approx(2.5)


def test_a_transfer_pays_latency_and_bytes_over_bandwidth_on_every_link_of_its_route():
    from kit.replay.simulate import replay

    trace = Trace("move", [task("sim", 1.0, out=2000), task("train", 1.0, ["sim"])])
    result = replay(trace, platform(), {"sim": "edge", "train": "hpc"})
    # edge -> cloud -> hpc: latency 0.5 + 0.25; the slowest link (1000 B/s) limits the rate: 2 s.
    assert result.makespan == pytest.approx(1.0 + 0.75 + 2.0 + 1.0 / 4.0)
    assert result.bytes_moved == 2000


def test_flows_on_one_link_share_its_bandwidth_max_min_fairly():
    from kit.replay.simulate import replay

    tasks = [task("s1", 1.0, out=1000), task("s2", 1.0, out=1000), task("t1", 0.0, ["s1"]), task("t2", 0.0, ["s2"])]
    result = replay(Trace("share", tasks), platform(), {"s1": "edge", "s2": "edge", "t1": "cloud", "t2": "cloud"})
    # Both flows start together on the 1000 B/s link: 500 B/s each, 2 s for 1000 bytes.
    assert result.ends["t1"] == pytest.approx(1.0 + 0.5 + 2.0) and result.ends["t2"] == pytest.approx(3.5)
    lone = replay(Trace("lone", tasks[::2]), platform(), {"s1": "edge", "t1": "cloud"})
    assert lone.makespan == pytest.approx(1.0 + 0.5 + 1.0)


def test_placement_by_component_and_per_task_result():
    from kit.replay.simulate import replay

    trace = Trace("mix", [task("s", 1.0, out=0, component="simulation"), task("t", 1.0, ["s"], component="training")])
    result = replay(trace, platform(), {"simulation": "edge", "training": "hpc"})
    data = result.tasks
    assert list(data.host.values) == ["edge", "hpc"] and float(data.end.sel(task="t")) == pytest.approx(result.makespan)
    assert result.makespan == pytest.approx(1.0 + 0.75 + 0.25) and result.events >= 3


def test_a_recorded_trace_replays_on_its_own_model(client):
    from kit.replay.platform import Platform
    from kit.replay.simulate import replay

    with record(client) as recording:
        client.submit(train, *client.map(simulate, range(6), pure=False), pure=False).result()
    trace = recording.trace
    hosts = {h: {"tier": "hpc", "cores": 1, "speed": 1.0} for h in trace.hosts}
    links = [{"ends": trace.hosts[:2], "bandwidth": 1e9, "latency": 0.0}] if len(trace.hosts) > 1 else []
    model = Platform.from_dict({"hosts": hosts, "links": links})
    result = replay(trace, model, {t.id: t.host for t in trace.tasks})
    check_replay_of_recording(trace, model, result)


def check_replay_of_recording(trace, model, result):
    """What a replay of a recorded run keeps whatever the load was while it was recorded: each task's recorded
    runtime, its parents before it, and a makespan between the longest chain of runtimes and all runtimes,
    transfers and per-task overheads one after the other."""
    tasks = {t.id: t for t in trace.tasks}
    for t in trace.tasks:
        assert result.ends[t.id] - result.starts[t.id] == pytest.approx(t.runtime, abs=1e-9)
        assert all(result.starts[t.id] >= result.ends[p] - 1e-9 for p in t.parents)
    chain = {}
    for t in trace.tasks:  # parents come first
        chain[t.id] = t.runtime + max((chain[p] for p in t.parents), default=0.0)
    moved = [tasks[p].output_bytes for t in trace.tasks for p in t.parents if tasks[p].host != t.host]
    link = model.links[0] if model.links else None
    transfers = sum(link.latency + size / link.bandwidth for size in moved) if link else 0.0
    serial = sum(t.runtime for t in trace.tasks) + transfers + len(trace.tasks) * model.overhead
    assert max(chain.values()) - 1e-9 <= result.makespan <= serial + 1e-9


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ({"hosts": {}}, "needs a 'hosts' mapping"),
        ({"hosts": {"a": {"tier": "moon", "cores": 1}}}, "host 'a': tier 'moon' is not one of"),
        ({"hosts": {"a": {"tier": "edge"}}}, "host 'a': missing field 'cores'"),
        ({"hosts": {"a": {"tier": "edge", "cores": 1, "gpu": 2}}}, r"host 'a': unknown field\(s\) \['gpu'\]"),
        (
            {"hosts": {"a": {"tier": "edge", "cores": 1}}, "links": [{"ends": ["a", "b"], "bandwidth": 1}]},
            "link 0 .*: end 'b' is not a host",
        ),
        (
            {"hosts": {"a": {"tier": "edge", "cores": 1}}, "links": [{"ends": ["a", "a"]}]},
            "link 0: missing field 'bandwidth'",
        ),
    ],
)
def test_bad_platforms_name_the_entry_and_field(content, match):
    from kit.replay.platform import Platform

    with pytest.raises(ValueError, match=match):
        Platform.from_dict(content)


def test_unreachable_host_and_unknown_placement_are_errors():
    from kit.replay.simulate import replay

    lonely = platform(hosts={"a": {"tier": "edge", "cores": 1}, "b": {"tier": "cloud", "cores": 1}}, links=[])
    trace = Trace("t", [task("x", 1.0, out=10), task("y", 1.0, ["x"])])
    with pytest.raises(ValueError, match="no route from host 'a' to host 'b'"):
        replay(trace, lonely, {"x": "a", "y": "b"})
    with pytest.raises(ValueError, match="placement 'mars' is neither a host"):
        replay(trace, lonely, "mars")
    with pytest.raises(ValueError, match="placement puts task 'x' on 'mars', not a host"):
        replay(trace, lonely, {"x": "mars", "y": "a"})
    with pytest.raises(ValueError, match="placement names no host for task 'y'"):
        replay(trace, lonely, {"x": "a"})


def two_hosts(bandwidth=1e9):
    from kit.replay.platform import Platform

    return Platform.from_dict(
        {
            "hosts": {
                "slow": {"tier": "edge", "cores": 1, "speed": 1.0},
                "fast": {"tier": "cloud", "cores": 1, "speed": 2.0},
            },
            "links": [{"ends": ["slow", "fast"], "bandwidth": bandwidth, "latency": 0.0}],
        }
    )


def test_heft_and_min_min_choose_as_their_definitions_say():
    from kit.replay.simulate import replay
    from kit.replay.strategies import place

    trace = Trace("pair", [task("A", 4.0), task("B", 2.0)])
    # HEFT: A has the larger rank and takes the fast host (finish 2); B then finishes first on the slow one.
    assert place(trace, two_hosts(), "heft") == {"A": "fast", "B": "slow"}
    assert replay(trace, two_hosts(), "heft").makespan == pytest.approx(2.0)
    # min-min: B has the least completion (1 on the fast host) and goes first; A follows there (3 < 4).
    assert place(trace, two_hosts(), "min-min") == {"A": "fast", "B": "fast"}
    assert replay(trace, two_hosts(), "min-min").makespan == pytest.approx(3.0)


def test_heft_keeps_a_child_beside_its_parent_when_moving_the_data_costs_more():
    from kit.replay.strategies import place

    trace = Trace("heavy", [task("a", 1.0, out=10**6), task("b", 1.0, ["a"])])
    assert place(trace, two_hosts(bandwidth=1e3), "heft") == {"a": "fast", "b": "fast"}


def pair_of_hosts(cores, bandwidth=1e3):
    from kit.replay.platform import Platform

    hosts = {name: {"tier": "cloud", "cores": cores} for name in ("a", "b")}
    return Platform.from_dict({"hosts": hosts, "links": [{"ends": ["a", "b"], "bandwidth": bandwidth}]})


def test_heft_prices_only_the_files_a_child_reads():
    from kit.replay.strategies import place

    # p writes 10^6 bytes and 10^3 bytes; c1 and c2 read only the small file (1 s over the link). c1 stays on
    # a (finish 3); c2 finishes at 4 on b instead of 5 on a. Priced as p's whole output, b would cost 1001 s.
    tasks = [
        Task("p", "p", 0, 1, "r", writes=("big", "small"), output_bytes=10**6 + 10**3),  # as WfFormat loads it
        Task("c1", "c1", 0, 2, "r", ("p",), reads=("small",)),
        Task("c2", "c2", 0, 2, "r", ("p",), reads=("small",)),
    ]
    trace = Trace("files", tasks, files={"big": 10**6, "small": 10**3})
    assert place(trace, pair_of_hosts(1), "heft") == {"p": "a", "c1": "a", "c2": "b"}
    assert replay(trace, pair_of_hosts(1), "heft").makespan == pytest.approx(4.0)


def test_heft_and_min_min_plan_a_wide_task_on_all_its_cores():
    from kit.replay.strategies import place

    trace = Trace("wide", [Task("x", "x", 0, 2, "r"), Task("w", "w", 0, 1, "r", cores=2)])
    # HEFT places x first (on a); w would wait for x's core there, so it goes to b.
    assert place(trace, pair_of_hosts(2), "heft") == {"x": "a", "w": "b"}
    # min-min places w first (on a, both cores); x then finishes sooner on b than beside it.
    assert place(trace, pair_of_hosts(2), "min-min") == {"w": "a", "x": "b"}
    assert replay(trace, pair_of_hosts(2), "min-min").makespan == pytest.approx(2.0)


def test_heft_orders_by_what_tasks_wait_for_files_and_ends_included():
    from kit.replay.strategies import place

    # r reads f, which w (listed after it, not its parent) writes; z takes no time and hands b nothing but
    # its end: equal ranks, and b must still be planned after z.
    tasks = [Task("r", "r", 0, 1, "x", reads=("f",)), Task("w", "w", 0, 1, "x", writes=("f",)),
             Task("z", "z", 0, 0, "x"), Task("b", "b", 0, 1, "x", ("z",))]  # fmt: skip
    trace = Trace("order", tasks, files={"f": 10})
    placement = place(trace, pair_of_hosts(1), "heft")
    assert set(placement) == {"r", "w", "z", "b"}
    replayed = replay(trace, pair_of_hosts(1), placement)
    assert replayed.starts["r"] >= replayed.ends["w"] and replayed.starts["b"] >= replayed.ends["z"]
    with pytest.raises(ValueError, match="task 'big' fits on no host: none has its 3 core"):
        place(Trace("wide", [Task("big", "big", 0, 1, "x", cores=3)]), pair_of_hosts(2), "heft")


def test_tier_round_robin_and_random_strategies():
    from kit.replay.strategies import place

    trace = Trace(
        "mix",
        [task("s1", 1.0, component="simulation"), task("s2", 1.0, component="simulation"),
         task("t", 1.0, ["s1", "s2"], component="training")],
    )  # fmt: skip
    assert set(place(trace, platform(), "all-cloud").values()) == {"cloud"}
    assert set(place(trace, platform(), "all-edge").values()) == {"edge"}
    assert place(trace, platform(), "edge-ward") == {"s1": "edge", "s2": "edge", "t": "cloud"}
    assert place(trace, platform(), "round-robin") == {"s1": "cloud", "s2": "edge", "t": "hpc"}
    assert place(trace, platform(), "random", seed=3) == place(trace, platform(), "random", seed=3)
    with pytest.raises(ValueError, match=r"no host in tier 'fog'; its tiers are \['cloud', 'edge', 'hpc'\]"):
        from kit.replay.strategies import fastest

        fastest(platform(), "fog")
    with pytest.raises(ValueError, match="unknown strategy 'best'"):
        place(trace, platform(), "best")


@pytest.mark.parametrize("name", ["laptop", "continuum", "hpc-cloud"])
def test_example_platforms_load_and_connect_every_host(name):
    from kit.replay.platform import example

    shipped = example(name)
    for a in shipped.hosts:
        for b in shipped.hosts:
            shipped.route(a, b)  # raises when no route exists
    with pytest.raises(ValueError, match="unknown example platform 'mars'"):
        example("mars")


def test_a_run_replayed_on_its_calibrated_model_keeps_what_the_load_cannot_change(client):
    from kit.replay.calibrate import calibrate, fidelity
    from kit.replay.simulate import replay

    with record(client) as recording:
        joins = [client.map(simulate, range(4 * i, 4 * i + 4), pure=False) for i in range(3)]
        client.gather([client.submit(train, *chunks, pure=False) for chunks in joins])
    trace = recording.trace
    model = calibrate(trace)
    assert set(model.hosts) == set(trace.hosts) and all(h.cores == 1 for h in model.hosts.values())
    data = fidelity(trace, model)
    assert data.sizes["task"] == 15 and float(data.makespan_recorded) == pytest.approx(trace.makespan)
    # How close the makespan lands depends on the load while recording (figure replay-fidelity measures it);
    # what holds whatever the load: runtimes, dependencies, and the makespan between its two bounds.
    result = replay(trace, model, {t.id: t.host for t in trace.tasks})
    assert float(data.makespan_replayed) == pytest.approx(result.makespan)
    check_replay_of_recording(trace, model, result)
    sims = [t.id for t in trace.tasks if not t.parents]
    took = data.sel(task=sims)
    assert len(sims) == 12
    np.testing.assert_allclose(took.replayed_end - took.replayed_start, took.recorded_end - took.recorded_start,
                               atol=1e-9)  # fmt: skip


def test_critical_path_and_latency_split_add_up_to_the_makespan():
    from kit.replay.analysis import critical_path, latency_split
    from kit.replay.simulate import replay

    moved = replay(
        Trace("move", [task("sim", 1.0, out=2000), task("train", 1.0, ["sim"])]),
        platform(),
        {"sim": "edge", "train": "hpc"},
    )
    split = latency_split(moved)
    assert critical_path(moved) == ["sim", "train"]
    assert split.transfer_time.values.tolist() == pytest.approx([0.0, 0.75 + 2.0])
    assert split.compute_time.values.tolist() == pytest.approx([1.0, 0.25])
    fork = replay(
        Trace("fork", [task("a", 1.0), task("b", 1.0), task("c", 1.0), task("join", 0.5, ["a", "b", "c"])]),
        platform(),
        "edge",
    )
    split = latency_split(fork)
    assert critical_path(fork) == ["c", "join"] and split.waiting_time.values.tolist() == pytest.approx([1.0, 0.0])
    for result in (moved, fork):
        parts = latency_split(result)
        assert float((parts.compute_time + parts.transfer_time + parts.waiting_time).sum()) == pytest.approx(
            result.makespan
        )


def gpu_platform(memory=1000):
    from kit.replay.platform import Platform

    return Platform.from_dict(
        {
            "hosts": {
                "gpu": {
                    "tier": "cloud",
                    "cores": 1,
                    "speed": 1.0,
                    "gpus": {"count": 1, "speed": 4.0, "memory": memory},
                },
                "cpu": {"tier": "edge", "cores": 1, "speed": 2.0},
            },
            "links": [{"ends": ["gpu", "cpu"], "bandwidth": 1000.0, "latency": 0.0}],
        }
    )


def gpu_trace(memory=0):
    return Trace(
        "gpu",
        [task("s", 2.0, component="simulation"), task("s2", 1.0, ["s"], component="simulation"),
         Task("t1", "t1", 0.0, 4.0, "r", ("s",), "training", memory=memory),
         Task("t2", "t2", 0.0, 4.0, "r", ("s",), "training")],
    )  # fmt: skip


def test_training_runs_on_gpu_slots_beside_the_cores_and_on_cores_without_gpus():
    from kit.replay import replay

    result = replay(gpu_trace(), gpu_platform(), "gpu")
    # s on the core [0, 2]; then s2 on the core [2, 3] while t1 and t2 share the one GPU at speed 4: [2, 3], [3, 4].
    assert result.makespan == pytest.approx(4.0)
    assert result.ends == pytest.approx({"s": 2.0, "s2": 3.0, "t1": 3.0, "t2": 4.0})
    assert list(result.tasks.device.values) == ["cpu", "cpu", "gpu", "gpu"]
    # Without GPUs, training takes a core at the host's speed (2): (2 + 1 + 4 + 4) / 2 on one core.
    assert replay(gpu_trace(), gpu_platform(), "cpu").makespan == pytest.approx(5.5)


def test_gpu_memory_is_checked_and_strategies_plan_with_gpus():
    from kit.replay import replay
    from kit.replay.strategies import place
    from kit.replay.wfformat import from_wfformat

    assert from_wfformat(gpu_trace(memory=2000).to_wfformat()).tasks == gpu_trace(memory=2000).tasks  # memoryInBytes
    with pytest.raises(ValueError, match=r"task 't1' needs 2000 bytes of GPU memory, host 'gpu' has 1000"):
        replay(gpu_trace(memory=2000), gpu_platform(), "gpu")
    lone = Trace("one", [task("t", 8.0, component="training")])
    assert place(lone, gpu_platform(), "heft") == {"t": "gpu"}  # 8 / 4 = 2 s on the GPU, 4 s on the CPU host
    big = Trace("big", [Task("t", "t", 0.0, 8.0, "r", component="training", memory=2000)])
    assert place(big, gpu_platform(), "heft") == place(big, gpu_platform(), "min-min") == {"t": "cpu"}
    assert replay(big, gpu_platform(), "heft").makespan == pytest.approx(4.0)


def profile_platform(bandwidth):
    return platform(links=[{"ends": ["edge", "cloud"], "bandwidth": bandwidth, "latency": 0.0}])


def test_bandwidth_profiles_recompute_the_fair_shares_at_each_change():
    from kit.replay import replay

    moved = Trace("move", [task("s", 1.0, out=2000), task("t", 2.0, ["s"])])
    result = replay(moved, profile_platform([[0, 1000], [2, 250]]), {"s": "edge", "t": "cloud"})
    # 1000 bytes in [1, 2] at 1000 B/s, the other 1000 at 250 B/s: 4 s; then t takes 2 / 2 s.
    assert result.makespan == pytest.approx(1.0 + 1.0 + 4.0 + 1.0)
    tasks = [task("s1", 1.0, out=1000), task("s2", 1.0, out=1000), task("t1", 0.0, ["s1"]), task("t2", 0.0, ["s2"])]
    shared = replay(
        Trace("share", tasks),
        profile_platform([[0, 1000], [2, 500]]),
        {"s1": "edge", "s2": "edge", "t1": "cloud", "t2": "cloud"},
    )
    # Two flows from 1 s: 500 B/s each until 2 s (500 bytes left each), then 250 B/s each: 2 s more.
    assert shared.ends["t1"] == pytest.approx(4.0) and shared.ends["t2"] == pytest.approx(4.0)


@pytest.mark.parametrize(
    ("bandwidth", "match"),
    [
        ([[1, 100]], r"link 0: bandwidth: entry 0 must be at time 0, got 1.0"),
        ([[0, 100], [5, 200], [3, 100]], r"link 0 \(edge--cloud\): bandwidth entry 2 at time 3.0 must come after 5.0"),
        ([[0, 100], [5, -1]], r"link 0 \(edge--cloud\): bandwidth entry 1 must be > 0 bytes/s, got -1.0"),
        ([[0]], r"link 0: bandwidth: entry 0 must be \[time, bytes/s\], got \[0\]"),
        ([], r"link 0: bandwidth: a profile needs at least one \[time, bytes/s\] entry"),
    ],
)
def test_bad_bandwidth_profiles_name_the_link_and_entry(bandwidth, match):
    with pytest.raises(ValueError, match=match):
        profile_platform(bandwidth)


def test_platform_files_with_gpus_and_profiles_load_and_errors_give_the_line(tmp_path):
    from kit.replay.platform import Platform

    path = tmp_path / "p.yaml"
    path.write_text(
        "hosts:\n"
        "  a: {tier: edge, cores: 2}\n"
        "  b: {tier: cloud, cores: 4, speed: 2, gpus: {count: 2, speed: 8, memory: 1.6e10}}\n"
        "links:\n"
        "  - {ends: [a, b], bandwidth: [[0, 1.0e6], [60, 2.5e5]], latency: 0.01}\n"
    )
    loaded = Platform.from_yaml(path)
    assert (loaded.hosts["b"].gpus, loaded.hosts["b"].gpu_speed, loaded.hosts["b"].gpu_memory) == (2, 8.0, 1.6e10)
    assert loaded.links[0].bandwidth == 1e6 and loaded.links[0].changes == ((60.0, 2.5e5),)
    path.write_text(path.read_text().replace("[60, 2.5e5]", "[60, fast]"))
    with pytest.raises(ValueError, match=r"p.yaml, line 5: link 0: bandwidth: entry 1: expected a number, got 'fast'"):
        Platform.from_yaml(path)
    path.write_text(path.read_text().replace("cores: 4", "cores: 0"))
    with pytest.raises(ValueError, match=r"p.yaml, line 3: host 'b': cores must be an int >= 1, got 0"):
        Platform.from_yaml(path)


@pytest.mark.parametrize(
    ("gpus", "match"),
    [
        ({"speed": 2.0}, r"host 'a': gpus: expected a mapping \{count, speed, memory\}"),
        ({"count": 1, "fast": True}, r"host 'a': gpus: unknown field\(s\) \['fast'\]"),
        ({"count": -1}, r"host 'a': gpus count must be an int >= 0, got -1"),
        ({"count": 1, "memory": 0}, r"host 'a': gpus memory must be > 0 bytes, got 0.0"),
    ],
)
def test_bad_gpus_name_the_host_and_field(gpus, match):
    from kit.replay.platform import Platform

    with pytest.raises(ValueError, match=match):
        Platform.from_dict({"hosts": {"a": {"tier": "edge", "cores": 1, "gpus": gpus}}})


def test_a_failed_host_loses_its_running_task_which_reruns_on_the_fallback_host():
    from kit.replay import replay

    chain = Trace("chain", [task("a", 4.0), task("b", 2.0, ["a"])])
    result = replay(chain, platform(), "cloud", failures={"cloud": 1.0})
    # a runs [0, 1) on cloud (speed 2) and fails; no other cloud host: the fastest alive host, hpc (speed 4),
    # runs a [1, 2] and b [2, 2.5].
    assert result.makespan == pytest.approx(2.5) and set(result.hosts.values()) == {"hpc"}
    attempts = result.attempts
    assert attempts.task.values.tolist() == ["a"] and attempts.host.values.tolist() == ["cloud"]
    assert attempts.start.values.tolist() == [0.0] and attempts.end.values.tolist() == [1.0]
    assert attempts.reason.values.tolist() == ["host failed"]
    down = replay(chain, platform(), "cloud", failures={"cloud": 0.0})  # down from the start: nothing lost
    assert down.makespan == pytest.approx(1.5) and down.attempts.sizes["attempt"] == 0


def test_an_output_lost_with_its_host_is_produced_again_and_sent_again():
    from kit.replay import replay

    trace = Trace("move", [task("s", 4.0, out=4000), task("t", 1.0, ["s"])])
    assert replay(trace, platform(), {"s": "hpc", "t": "edge"}).makespan == pytest.approx(1.0 + 0.75 + 4.0 + 1.0)
    result = replay(trace, platform(), {"s": "hpc", "t": "edge"}, failures={"hpc": 2.0})
    # s ended at 1 on hpc; its transfer (latency to 1.75, 4 s at 1000 B/s) dies with hpc at 2. s runs again on the
    # fastest alive host, cloud: [2, 4]; cloud -> edge: 0.5 s latency, 4 s of bytes; t [8.5, 9.5].
    assert result.makespan == pytest.approx(9.5)
    assert result.hosts["s"] == "cloud" and result.starts["s"] == pytest.approx(2.0)
    assert result.attempts.reason.values.tolist() == ["output lost"]
    assert float(result.attempts.end[0]) == pytest.approx(1.0)


def test_failures_that_leave_no_host_or_name_no_host_are_errors():
    from kit.replay import replay

    trace = Trace("t", [task("x", 1.0), task("y", 1.0, ["x"])])
    everything = {"edge": 0.5, "cloud": 0.5, "hpc": 0.5}
    with pytest.raises(
        RuntimeError, match=r"no host is left to run task 'x'; task\(s\) that could not run: \['x', 'y'\]"
    ):
        replay(trace, platform(), "edge", failures=everything)
    with pytest.raises(ValueError, match="failures name 'mars', not a host"):
        replay(trace, platform(), "edge", failures={"mars": 1.0})
    with pytest.raises(ValueError, match="failures: host 'edge' fails at -1, a time must be >= 0 s"):
        replay(trace, platform(), "edge", failures={"edge": -1})


def test_request_streams_report_throughput_and_latency():
    from kit.replay import Stream, replay

    requests = Stream("cam", work=1.0, rate=2.0, count=3, source="edge", bytes_in=250, bytes_out=100)
    result = replay(Trace("none", []), platform(), {"inference": "cloud"}, streams=[requests])
    # Request k arrives at k / 2 on edge: 0.5 s latency + 0.25 s of bytes to cloud, 0.5 s of work (speed 2),
    # 0.5 s latency + 0.1 s of bytes back: 1.85 s each.
    data = result.streams.sel(stream="cam")
    assert int(data.completed) == 3 and float(data.throughput) == pytest.approx(3 / (1.0 + 1.85))
    for name in ("latency_mean", "latency_p50", "latency_p99", "latency_max"):
        assert float(data[name]) == pytest.approx(1.85)
    assert result.hosts["cam:1"] == "cloud" and result.hosts["cam:1:request"] == "edge"
    assert result.tasks.device.sel(task="cam:1:response").item() == ""
    # On the source host itself with 2 cores at rate 4: arrivals 0, 0.25, 0.5; the third waits for a core at 2.
    local = Stream("cam", work=2.0, rate=4.0, duration=0.75, source="edge")
    data = replay(Trace("none", []), platform(), "edge", streams=[local]).streams.sel(stream="cam")
    assert float(data.latency_mean) == pytest.approx(2.5) and float(data.latency_p50) == pytest.approx(2.0)
    assert float(data.latency_p99) == pytest.approx(2.0 + 0.98 * 1.5) and float(data.latency_max) == pytest.approx(3.5)
    assert float(data.throughput) == pytest.approx(3 / 4.0)


def test_training_steps_consume_simulation_outputs_in_batches():
    from kit.replay import Stream, replay

    sims = Trace("sims", [task(f"s{i}", 1.0, out=100, component="simulation") for i in range(1, 5)])
    steps = Stream("train", work=1.0, component="training", consumes="simulation", batch=2)
    result = replay(sims, platform(), {"simulation": "edge", "training": "cloud"}, streams=[steps])
    # s1, s2 on edge [0, 1], s3, s4 [1, 2]; each batch crosses the link in 0.5 s latency + 200 bytes at 1000 B/s
    # shared by two flows (0.2 s); a step takes 0.5 s on cloud: step 0 [1.7, 2.2], step 1 [2.7, 3.2].
    assert result.ends["train:0"] == pytest.approx(2.2) and result.ends["train:1"] == pytest.approx(3.2)
    data = result.streams.sel(stream="train")
    assert float(data.latency_mean) == pytest.approx(1.2) and float(data.throughput) == pytest.approx(2 / 2.2)
    assert result.trace.tasks[-1].parents == ("s3", "s4", "train:0")


@pytest.mark.parametrize(
    ("arguments", "match"),
    [
        ({"work": 1.0, "rate": 1.0, "consumes": "simulation"}, "give either rate .* or consumes"),
        ({"work": 1.0, "rate": 1.0, "count": 2}, "stream 's': a request stream needs a source host"),
        ({"work": 1.0, "rate": 1.0, "source": "edge"}, "stream 's': give either count or duration"),
        ({"work": 1.0, "rate": 0.0, "count": 1, "source": "edge"}, "stream 's': rate must be > 0"),
        ({"work": 1.0, "rate": 1.0, "count": 0, "source": "edge"}, "stream 's': sends no request"),
        ({"work": 1.0, "consumes": "simulation", "batch": 0}, "stream 's': batch must be an int >= 1, got 0"),
        ({"work": 1.0, "consumes": "robots"}, "stream 's': consumes 'robots' is not one of"),
    ],
)
def test_bad_streams_name_the_stream_and_field(arguments, match):
    from kit.replay import Stream

    with pytest.raises(ValueError, match=match):
        Stream("s", **arguments)


def test_a_stream_from_no_host_twice_or_consuming_nothing_is_an_error():
    from kit.replay import Stream, replay

    with pytest.raises(ValueError, match=r"stream 'cam': source 'mars' is not a host; hosts are \['cloud', 'edge'"):
        replay(Trace("none", []), platform(), "edge", streams=[Stream("cam", 1.0, rate=1.0, count=1, source="mars")])
    with pytest.raises(ValueError, match="stream names must be unique"):
        cam = Stream("cam", 1.0, rate=1.0, count=1, source="edge")
        replay(Trace("none", []), platform(), "edge", streams=[cam, cam])
    with pytest.raises(ValueError, match="stream 'train' consumes 'simulation', but the trace has no such task"):
        replay(
            Trace("none", [task("x", 1.0)]), platform(), "edge", streams=[Stream("train", 1.0, consumes="simulation")]
        )


def test_a_stream_survives_the_failure_of_its_gpu_host():
    from kit.replay import Stream, replay

    requests = Stream("cam", work=4.0, rate=1.0, count=3, source="cpu")
    result = replay(Trace("none", []), gpu_platform(), {"inference": "gpu"}, failures={"gpu": 1.5}, streams=[requests])
    # On the GPU (speed 4) request k takes [k, k + 1]; the GPU host fails at 1.5, cutting request 1; requests 1 and 2
    # move to the CPU host (speed 2, one core): [1.5, 3.5] and [3.5, 5.5]. Latencies 1, 2.5, 3.5.
    assert result.failed == [("cam:1", "gpu", 1.0, 1.5, "host failed")]
    assert result.ends["cam:2"] == pytest.approx(5.5) and result.devices["cam:2"] == "cpu"
    data = result.streams.sel(stream="cam")
    assert float(data.latency_mean) == pytest.approx(7 / 3) and float(data.throughput) == pytest.approx(3 / 5.5)


def test_a_recorded_tsqr_is_a_reduction_tree_that_computes_the_r_of_the_whole_matrix(client):
    from kit.replay.calibrate import fidelity
    from kit.replay.tsqr import block, tsqr

    trace, r = tsqr(client, blocks=8, n=6, seed=3, name="tsqr")
    assert len(trace.tasks) == 15 and trace.attrs["erred"] == 0
    assert sorted(len(t.parents) for t in trace.tasks) == [0] * 8 + [2] * 7  # 8 blocks, 7 combines
    roots = [t for t in trace.tasks if not any(t.id in other.parents for other in trace.tasks)]
    assert len(roots) == 1 and roots[0].output_bytes == r.nbytes
    rng_blocks = [np.random.default_rng([3, i]).standard_normal((6, 6)) for i in range(8)]
    whole = np.linalg.qr(np.vstack(rng_blocks), mode="r")  # R is unique up to the signs of its rows
    np.testing.assert_allclose(np.abs(r), np.abs(whole), atol=1e-10)
    np.testing.assert_allclose(np.abs(block(0, 6, 3)), np.abs(np.linalg.qr(rng_blocks[0], mode="r")), atol=1e-12)
    assert np.isfinite(float(fidelity(trace).makespan_error))
    with pytest.raises(ValueError, match="blocks must be a power of 2"):
        tsqr(client, blocks=6)
