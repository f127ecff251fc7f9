"""Factor studies of replays: platform scaling, and Sobol'/Morris indices that are exact where they can be."""

import numpy as np
import pytest

from kit.replay import Task, Trace
from kit.replay.factors import factor_study, replay_scenario, scaled
from kit.replay.platform import example


def chain_trace():
    """Two tasks of 2 s and 1 s, the second reading 1e6 bytes from the first."""
    return Trace("chain", [Task("a", "a", 0.0, 2.0, "w", output_bytes=10**6), Task("b", "b", 2.0, 3.0, "w", ("a",))])


def test_scaling_a_platform_by_factor_and_tier():
    base = example("continuum")
    out = scaled(base, {"speed.edge": 2.0, "bandwidth": 0.5, "latency.cloud": 3.0, "hosts.cloud": 3})
    assert out.hosts["edge-1"].speed == pytest.approx(0.6) and out.hosts["fog-1"].speed == pytest.approx(0.8)
    by_name = {link.name: link for link in out.links}
    assert by_name["edge-1--fog-1"].bandwidth == pytest.approx(1.25e7 / 2) and by_name["edge-1--fog-1"].latency == 0.005
    assert by_name["fog-1--cloud-1"].latency == pytest.approx(0.09)  # touches a cloud host
    assert sorted(h for h in out.hosts if out.hosts[h].tier == "cloud") == ["cloud-1", "cloud-1#2", "cloud-2"]
    assert out.route("edge-1", "cloud-1#2")  # the copy is linked like the first cloud host
    fewer = scaled(base, {"hosts.edge": 1})
    assert sorted(fewer.hosts) == ["cloud-1", "cloud-2", "edge-1", "fog-1"]
    assert all("edge-2" not in link.ends for link in fewer.links)
    for bad, match in [("speed.moon", "unknown factor 'speed.moon'"), ("hosts", "unknown factor 'hosts'"),
                       ("memory", "unknown factor 'memory'"), ("speed.hpc", "no 'hpc' host")]:  # fmt: skip
        with pytest.raises(ValueError, match=match):
            scaled(base, {bad: 1.0})


@pytest.mark.parametrize("method", ["sobol", "morris"])
def test_factors_that_cannot_matter_get_zero_and_the_one_that_does_gets_it_all(cluster_client, method):
    # Both tasks on edge-1: the makespan is 3 s / its speed, whatever the links and the cloud do.
    scenario = replay_scenario(chain_trace(), example("continuum"), "edge-1")
    factors = {"speed.edge": (1.0, 3.0), "bandwidth": (0.1, 10.0), "speed.cloud": (0.5, 2.0)}
    data = factor_study(scenario, factors, method=method, n=64 if method == "sobol" else 16, client=cluster_client,
                        progress=False)  # fmt: skip
    assert list(data.metric.values) == ["bytes_moved", "makespan"]
    speeds = data.design.sel(factor="speed.edge").values * 0.3
    np.testing.assert_allclose(data.outputs.sel(metric="makespan"), 3.0 / speeds)  # every point replayed
    makespan = data.sel(metric="makespan")
    if method == "sobol":
        assert float(makespan.ST.sel(factor="bandwidth")) == 0 and float(makespan.ST.sel(factor="speed.cloud")) == 0
        assert float(makespan.S1.sel(factor="speed.edge")) == pytest.approx(1.0, abs=0.1)
        assert float(makespan.ST.sel(factor="speed.edge")) == pytest.approx(1.0, abs=0.1)
    else:
        assert float(makespan.mu_star.sel(factor="bandwidth")) == 0 == float(makespan.sigma.sel(factor="speed.cloud"))
        assert float(makespan.mu_star.sel(factor="speed.edge")) > 0
    assert data.attrs["points"] == data.sizes["point"]


def test_a_study_moving_data_sees_the_link(cluster_client):
    # The second task on cloud-1: 1e6 bytes cross Wi-Fi and the WAN, so bandwidth matters and edge speed a bit.
    placement = {"a": "edge-1", "b": "cloud-1"}
    scenario = replay_scenario(chain_trace(), example("continuum"), placement)
    data = factor_study(scenario, {"bandwidth": (0.01, 0.1), "speed.fog": (0.5, 2.0)}, n=32, client=cluster_client,
                        progress=False)  # fmt: skip
    makespan = data.sel(metric="makespan")
    assert float(makespan.ST.sel(factor="speed.fog")) == 0  # nothing runs on the fog gateway
    assert float(makespan.S1.sel(factor="bandwidth")) > 0.9
    assert (data.outputs.sel(metric="bytes_moved") == 10**6).all()


def test_bad_studies_name_the_culprit(cluster_client):
    scenario = replay_scenario(chain_trace(), example("continuum"), "edge-1")
    with pytest.raises(ValueError, match="unknown method 'anova'"):
        factor_study(scenario, {"bandwidth": (0.1, 1.0)}, method="anova", client=cluster_client)
    with pytest.raises(ValueError, match="a power of 2"):
        factor_study(scenario, {"bandwidth": (0.1, 1.0)}, n=10, client=cluster_client)
    with pytest.raises(RuntimeError, match=r"point \{'memory': .*unknown factor 'memory'"):
        factor_study(scenario, {"memory": (0.1, 1.0)}, n=2, client=cluster_client, progress=False)


def test_layered_dags_and_the_speed_benchmark_count_what_they_should():
    from kit.replay.speed import replay_speed
    from kit.replay.workloads import layered_dag

    trace = layered_dag(250, width=100, fan_in=3, seed=1)
    assert len(trace.tasks) == 250 and trace.tasks[0].parents == () and len(trace.tasks[100].parents) == 3
    assert all(int(p[1:]) // 100 == int(t.id[1:]) // 100 - 1 for t in trace.tasks for p in t.parents)
    assert layered_dag(250, width=100, fan_in=3, seed=1).tasks == trace.tasks  # seeded
    data = replay_speed((150, 300), placements=("cloud-1", "round-robin"), repeats=1)
    # On one host nothing moves: one event per task end.
    np.testing.assert_array_equal(data.events.sel(placement="cloud-1"), [150, 300])
    assert (data.events.sel(placement="round-robin") > data.events.sel(placement="cloud-1")).all()
    assert (data.events_per_second > 0).all()
    with pytest.raises(ValueError, match="tasks must be an int >= 1"):
        layered_dag(0)


def test_an_online_training_workload_streams_chunks_to_batches_in_order():
    from kit.replay import replay
    from kit.replay.projection import PLACEMENT, gpu_platform
    from kit.replay.workloads import online_training

    trace = online_training(simulations=6, in_flight=2, steps=20, chunk_steps=5, step_seconds=0.01,
                            receive_seconds=0.0, batch_size=8, batch_seconds=0.001, watermark=10)  # fmt: skip
    by_id = {t.id: t for t in trace.tasks}
    assert by_id["sim2-c0"].parents == ("sim0-c3",)  # run 2 waits for a core freed by run 0 (two in flight)
    batches = [t for t in trace.tasks if t.component == "training"]
    assert trace.attrs["samples"] == 120 and len(batches) == (120 - 10) // 8 + 1
    # The first batch waits for the watermark: 10 samples are two chunks of 5.
    assert sorted(p for p in batches[0].parents) == ["recv0-c0", "recv1-c0"]
    assert all(b.parents[0] == a.id for a, b in zip(batches, batches[1:], strict=False))
    # Every chunk reaches a batch once, none twice.
    fed = [p for b in batches for p in b.parents if p.startswith("recv")]
    assert len(fed) == len(set(fed))
    # Two cores, free streaming and a fast link: the runs take 3 waves of 20 steps x 0.01 s.
    result = replay(trace, gpu_platform(2, bandwidth=1e15, latency=0.0), PLACEMENT)
    assert max(result.ends[t.id] for t in trace.tasks if t.component == "simulation") == pytest.approx(0.6)
    with pytest.raises(ValueError, match="in_flight must be an int >= 1"):
        online_training(in_flight=0)


def test_the_scale_projection_finds_the_bottleneck_it_is_given():
    from kit.replay.projection import scale_projection

    scenarios = {"slow link": {"bandwidth": 4e5, "receive_seconds": 0.0}, "slow stream": {"receive_seconds": 0.05}}
    data = scale_projection((2, 8), scenarios, steps=20, chunk_steps=5, step_seconds=0.01, step_bytes=1000,
                            batch_size=8, batch_seconds=1e-4, watermark=8)  # fmt: skip
    # 8 cores make 800 steps/s: a 400 kB/s link carries 400 steps/s of 1 kB, a 50 ms receive 100 chunks/s of 5.
    assert float(data.link_busy.sel(scenario="slow link", cores=8)) > 0.8
    assert float(data.stream_busy.sel(scenario="slow stream", cores=8)) > 0.8
    assert float(data.produced_per_second.sel(scenario="slow stream", cores=8)) <= 500 * 1.01
    assert (data.trainer_busy < 0.2).all()  # a fast trainer starves in both


def test_scaling_a_link_scales_its_bandwidth_profile_too():
    from kit.replay.platform import Platform

    base = Platform.from_dict({"hosts": {"a": {"tier": "edge", "cores": 1}, "b": {"tier": "cloud", "cores": 1}},
                               "links": [{"ends": ["a", "b"], "bandwidth": [[0, 100.0], [5, 10.0]]}]})  # fmt: skip
    (link,) = scaled(base, {"bandwidth": 3.0}).links
    assert link.bandwidth == 300.0 and link.changes == ((5.0, 30.0),)
